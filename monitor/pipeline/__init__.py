"""Orchestration: the only package that knows the order of stages and owns transactions.

``runtime`` opens what a process needs (config, database, worker id); ``cycle`` chains the
stages; ``polling``, ``matching`` and ``delivery`` each drive one stage against the database.
"""

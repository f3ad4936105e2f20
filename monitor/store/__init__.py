"""Persistence: the schema (models), engine and sessions (db), and the queries stages need."""

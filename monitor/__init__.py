"""monitor: watches RSS/Atom feeds and alerts when new articles match the topics you follow."""

__version__ = "0.1.0"

"""Alembic migrations; shipped inside the package as ``monitor._migrations`` (see pyproject.toml)."""

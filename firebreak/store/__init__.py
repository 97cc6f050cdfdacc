"""Persistence: SQLAlchemy models, the database handle and Alembic migrations."""

from firebreak.store import models
from firebreak.store.db import Database, get_database

__all__ = ["Database", "get_database", "models"]

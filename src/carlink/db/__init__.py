"""Engine, sessions, base model and migrations."""

from carlink.db.base import Base, Database, utcnow

__all__ = ["Base", "Database", "utcnow"]

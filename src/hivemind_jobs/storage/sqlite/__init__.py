"""SQLite backend (embedded default)."""

from hivemind_jobs.storage.sqlite.backend import SQLiteStorage

__all__ = ["SQLiteStorage"]

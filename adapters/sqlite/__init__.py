"""The SQLite store, tidings' embedded default."""

from adapters.sqlite.store import SqliteStore

__all__ = ["SqliteStore"]

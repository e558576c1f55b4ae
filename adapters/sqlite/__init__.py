"""The SQLite store, tidings' embedded default."""

from tidings.adapters.sqlite.store import SqliteStore

__all__ = ["SqliteStore"]

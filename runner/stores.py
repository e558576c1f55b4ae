"""Open the store a database URL names. The runner is the only place that connects.

Each store's module is imported only when its URL is used: a short-lived CLI command
on SQLite should not pay for loading the PostgreSQL driver. The same URL also names the
migrations its store applies (``migrations_for``), so a schema check can tell an empty
database from one that is behind, and ``tidings migrate`` can name what it applied.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from tidings.adapters.migrations import Migration, load_migrations
from tidings.core.ports import Store
from tidings.runner.config import ConfigError
from tidings.runner.telemetry import scheme_of

_POSTGRES = ("postgresql://", "postgres://")
_SQLITE = "sqlite:///"
_MEMORY = "memory://"


def sqlite_path(url: str) -> str | None:
    """The file a ``sqlite:///`` URL names (``:memory:`` included), None for other URLs."""
    if not url.startswith(_SQLITE):
        return None
    path = url.removeprefix(_SQLITE)
    if not path:
        raise ConfigError("database URL sqlite:/// needs a file path")
    return path


def open_store(url: str, clock: Callable[[], datetime], lease: timedelta, pool_size: int) -> Store:
    """``sqlite:///relative.db``, ``sqlite:////absolute.db``, ``postgresql://...`` or
    ``memory://``. PostgreSQL keeps time by its own clock, shared by every runner, and
    opens at most ``pool_size`` pooled connections. Nothing connects yet: the first call
    on the store does."""
    if url.startswith(_POSTGRES):
        from tidings.adapters.postgres import PostgresStore

        return PostgresStore(url, lease=lease, pool_size=pool_size)
    if (path := sqlite_path(url)) is not None:
        from tidings.adapters.sqlite import SqliteStore

        return SqliteStore(path, clock=clock, lease=lease)
    if url == _MEMORY:
        from tidings.adapters.memory import MemoryStore

        return MemoryStore(clock=clock, lease=lease)
    raise ConfigError(
        f"database URL scheme {scheme_of(url)} is not supported"
        " (use sqlite:///PATH, postgresql://... or memory://)"
    )


def migrations_for(url: str) -> tuple[Migration, ...]:
    """The migrations the store for ``url`` applies, in order (none for ``memory://``,
    which is born with its schema)."""
    if url.startswith(_POSTGRES):
        return load_migrations("tidings.adapters.postgres")
    if url.startswith(_SQLITE):
        return load_migrations("tidings.adapters.sqlite")
    return ()

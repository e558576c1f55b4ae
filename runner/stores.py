"""Open the store a database URL names. The runner is the only place that connects.

Each store's module is imported only when its URL is used: a short-lived CLI command
on SQLite should not pay for loading the PostgreSQL driver.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from tidings.core.ports import Store
from tidings.runner.config import ConfigError
from tidings.runner.redaction import scheme_of


def open_store(url: str, clock: Callable[[], datetime], lease: timedelta) -> Store:
    """``sqlite:///relative.db``, ``sqlite:////absolute.db``, ``postgresql://...`` or
    ``memory://``. PostgreSQL keeps time by its own clock, shared by every runner."""
    if url.startswith(("postgresql://", "postgres://")):
        from tidings.adapters.postgres import PostgresStore

        return PostgresStore(url, lease=lease)
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        if not path:
            raise ConfigError("database URL sqlite:/// needs a file path")
        from tidings.adapters.sqlite import SqliteStore

        return SqliteStore(path, clock=clock, lease=lease)
    if url == "memory://":
        from tidings.adapters.memory import MemoryStore

        return MemoryStore(clock=clock, lease=lease)
    raise ConfigError(
        f"database URL scheme {scheme_of(url)} is not supported"
        " (use sqlite:///PATH, postgresql://... or memory://)"
    )

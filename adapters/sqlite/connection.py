"""The embedded default store: one SQLite file, WAL mode, zero setup.

sqlite3 blocks, so every call runs on one dedicated thread that owns the connection:
the event loop never waits on the disk, and calls are serialised as SQLite wants.
Each write is one ``BEGIN IMMEDIATE`` transaction, so several processes sharing the
file take turns instead of failing to upgrade a read lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import TypeVar

from tidings.adapters.migrations import load_migrations
from tidings.adapters.sqlite import rows
from tidings.core.ports import StoreUnavailable
from tidings.core.records import (
    DEFAULT_LEASE,
)

_T = TypeVar("_T")

DUE = "status IN ('pending', 'failed') AND next_attempt_at <= :now"
"""Deliveries whose next attempt has come (SQL, with a ``:now`` parameter)."""


class SqliteConnection:
    """What every part of the store shares: the file, its thread, its schema.
    ``clock`` gives "now"; the runner owns it."""

    def __init__(
        self, path: str, clock: Callable[[], datetime], lease: timedelta = DEFAULT_LEASE
    ) -> None:
        self._path = path
        self._clock = clock
        self._lease = lease
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tidings-sqlite")
        self._connection: sqlite3.Connection | None = None

    async def _call(self, function: Callable[..., _T], *args: object) -> _T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, function, *args)
        except sqlite3.OperationalError as error:
            # Locked past the busy timeout, disk full, file gone: the runner waits.
            raise StoreUnavailable(f"SQLite unavailable: {error}") from error

    def _conn(self) -> sqlite3.Connection:
        if self._connection is None:
            _create_private(self._path)
            connection = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            connection.row_factory = sqlite3.Row
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute("PRAGMA synchronous = NORMAL")
            connection.execute("PRAGMA busy_timeout = 10000")
            connection.execute("PRAGMA foreign_keys = ON")
            self._connection = connection
        return self._connection

    def _now(self) -> str:
        return rows.time_text(self._clock())

    def _write(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        connection = self._conn()
        connection.execute("BEGIN IMMEDIATE")
        try:
            result = work(connection)
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")
        return result

    async def close(self) -> None:
        def close_connection() -> None:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

        await self._call(close_connection)
        self._executor.shutdown(wait=True)

    # -- schema --------------------------------------------------------------------

    async def migrate(self) -> int:
        return await self._call(self._write, self._migrate)

    def _migrate(self, connection: sqlite3.Connection) -> int:
        connection.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations"
            " (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
        applied = {row[0] for row in connection.execute("SELECT version FROM schema_migrations")}
        pending = [
            m for m in load_migrations("tidings.adapters.sqlite") if m.version not in applied
        ]
        for migration in pending:
            for statement in _statements(migration.sql):
                connection.execute(statement)
            connection.execute(
                "INSERT INTO schema_migrations VALUES (?, ?, ?)",
                (migration.version, migration.name, self._now()),
            )
        return len(pending)


def _create_private(path: str) -> None:
    """Create the database file readable by its owner alone (0600), if it is new.

    It holds webhook secrets and every user's inbox. SQLite gives the ``-wal`` and
    ``-shm`` files it adds the main file's permissions, so they follow. An existing
    file keeps the mode its owner chose.
    """
    if path == ":memory:" or path.startswith("file:"):
        return
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))


def _statements(script: str) -> list[str]:
    """Split a migration into statements (our migrations hold no ';' inside literals)."""
    lines = [line.split("--", 1)[0] for line in script.splitlines()]
    return [part.strip() for part in "\n".join(lines).split(";") if part.strip()]

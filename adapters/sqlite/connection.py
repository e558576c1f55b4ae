"""What every part of the SQLite store shares: the file, the one thread that owns its
connection, the clock and the delivery lease.

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

from tidings.adapters.sqlite import rows
from tidings.core.ports import StoreUnavailable

_T = TypeVar("_T")

DUE = "status IN ('pending', 'failed') AND next_attempt_at <= :now"
"""Deliveries whose next attempt has come (SQL, with a ``:now`` parameter)."""


class SqliteDatabase:
    """One SQLite file, opened on first use. ``clock`` gives "now"; the runner owns it."""

    def __init__(self, path: str, clock: Callable[[], datetime], lease: timedelta) -> None:
        self.path = path
        self.clock = clock
        self.lease = lease
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tidings-sqlite")
        self._connection: sqlite3.Connection | None = None

    async def read(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run ``work`` on the store's thread, outside any explicit transaction."""
        return await self._call(lambda: work(self._conn()))

    async def write(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run ``work`` on the store's thread in one ``BEGIN IMMEDIATE`` transaction,
        rolled back if it raises."""
        return await self._call(lambda: self._in_transaction(work))

    def now(self) -> str:
        """The clock's reading as stored."""
        return rows.time_text(self.clock())

    def is_opened_or_exists(self) -> bool:
        """Whether looking into the database can change nothing on disk: a connection is
        open already, or the file exists (opening creates a missing one)."""
        return self._connection is not None or self.path == ":memory:" or os.path.exists(self.path)

    async def close(self) -> None:
        def close_connection() -> None:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

        await self._call(close_connection)
        self._executor.shutdown(wait=True)

    async def _call(self, function: Callable[[], _T]) -> _T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, function)
        except sqlite3.OperationalError as error:
            # Locked past the busy timeout, disk full, file gone: the runner waits.
            raise StoreUnavailable(f"SQLite unavailable: {error}") from error

    def _conn(self) -> sqlite3.Connection:
        if self._connection is None:
            _create_private(self.path)
            connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            connection.row_factory = sqlite3.Row
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute("PRAGMA synchronous = NORMAL")
            connection.execute("PRAGMA busy_timeout = 10000")
            connection.execute("PRAGMA foreign_keys = ON")
            self._connection = connection
        return self._connection

    def _in_transaction(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        connection = self._conn()
        connection.execute("BEGIN IMMEDIATE")
        try:
            result = work(connection)
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")
        return result


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

"""Retention on SQLite: settled rows older than a horizon removed in small chunks, and
the space they took given back (``core.ports.Retention`` says what is kept).

A pass walks each table oldest first through an index, a window of at most ``chunk``
rows at a time, and removes what the window holds that may go, in one short
``BEGIN IMMEDIATE`` transaction per window: the one writer is held for milliseconds,
so a drain sharing the file (or the store's thread) waits at most one window. Windows
go on from where the last one ended, so a pass looks at each old row once, kept ones
included. Deliveries go before their notification (a foreign key), and a notification
before its event and digest, which stay while it does.

Space: SQLite keeps the pages of removed rows in the file and fills them with new rows,
so a file under retention stops growing once the horizon is reached. To hand them back
to the file system the file must be in incremental auto-vacuum, which only a ``VACUUM``
(a rewrite of the file, with writers waiting) can switch an existing file to: ``vacuum``
does both, once, and from then on every window returns the pages it freed
(``PRAGMA incremental_vacuum``).
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import AsyncIterator, Mapping
from datetime import timedelta
from functools import partial

from tidings.adapters import retention_rules as rules
from tidings.adapters.sqlite import rows
from tidings.adapters.sqlite.connection import SqliteDatabase
from tidings.core.ports import PRUNED_TABLES

_H = ":h"
"""The horizon's placeholder in this store's statements."""


_COUNT_PRUNABLE = rules.count_prunable(_H)

_WINDOW = "(SELECT value FROM json_each(:window))"
"""The ids (or seqs) of the window being pruned, passed as one JSON array."""

_NOTIFICATIONS_WINDOW = (
    "SELECT id, created_at FROM notifications WHERE created_at < :h"
    " AND (created_at, id) > (:at, :id) ORDER BY created_at, id LIMIT :chunk"
)
_DELETE_DELIVERIES = (
    f"DELETE FROM deliveries WHERE notification_id IN {_WINDOW}"
    f" AND {rules.settled_before('deliveries', _H)}"
)
_DELETE_NOTIFICATIONS = (
    f"DELETE FROM notifications WHERE id IN {_WINDOW} AND created_at < :h"
    f" AND {rules.superseded('notifications')}"
    " AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.notification_id = notifications.id)"
)
_EVENTS_WINDOW = "SELECT seq, enqueued_at FROM events WHERE seq > :seq ORDER BY seq LIMIT :chunk"
_DELETE_EVENTS = (
    f"DELETE FROM events WHERE seq IN {_WINDOW} AND status IN {rules.TERMINAL} AND decided_at < :h"
    " AND NOT EXISTS (SELECT 1 FROM notifications n WHERE n.id = events.notification_id)"
    f" AND {rules.not_held_for_pending_digest('events')}"
)
_DIGESTS_WINDOW = (
    f"SELECT id, decided_at FROM digests WHERE status IN {rules.DECIDED_DIGEST} AND decided_at < :h"
    " AND (decided_at, id) > (:at, :id) ORDER BY decided_at, id LIMIT :chunk"
)
_DELETE_DIGESTS = (
    f"DELETE FROM digests WHERE id IN {_WINDOW}"
    " AND NOT EXISTS (SELECT 1 FROM notifications n WHERE n.id = digests.notification_id)"
    " AND NOT EXISTS (SELECT 1 FROM events e WHERE e.digest_id = digests.id)"
)

_INCREMENTAL = 2
"""``PRAGMA auto_vacuum``'s answer for incremental auto-vacuum."""
_PAGES_PER_STEP = 2000
"""Free pages handed back after a window, at most (8 MB of 4 KiB pages): a window of
rows frees far fewer, so each window returns what it freed and the rest of any older
free list, a step at a time."""


class SqliteRetention:
    """Prunes one SQLite file, a window at a time, and gives its free pages back."""

    def __init__(self, database: SqliteDatabase) -> None:
        self._db = database

    async def prunable(self, older_than: timedelta) -> Mapping[str, int]:
        horizon = rows.time_text(self._db.clock() - older_than)

        def count(connection: sqlite3.Connection) -> dict[str, int]:
            found = connection.execute(_COUNT_PRUNABLE, {"h": horizon}).fetchone()
            return {table: found[table] for table in PRUNED_TABLES}

        return await self._db.read(count)

    async def prune(
        self, older_than: timedelta, *, chunk: int = 1000
    ) -> AsyncIterator[Mapping[str, int]]:
        horizon = rows.time_text(self._db.clock() - older_than)
        incremental = await self._db.read(_is_incremental)
        for step in (_notifications_window, _events_window, _digests_window):
            cursor: _Cursor = None
            while True:
                removed, cursor = await self._db.write(partial(step, horizon, cursor, chunk))
                if cursor is None:
                    break
                yield removed
                if incremental:
                    await self._db.read(_incremental_vacuum)

    async def vacuum(self) -> tuple[int, int]:
        before = self._size()
        await self._db.read(_vacuum)
        return before, self._size()

    def _size(self) -> int:
        """The file and its write-ahead log, in bytes (0 for an in-memory database)."""
        if self._db.path == ":memory:":
            return 0
        return sum(
            os.path.getsize(name)
            for name in (self._db.path, f"{self._db.path}-wal")
            if os.path.exists(name)
        )


_Cursor = tuple[object, ...] | None
"""Where a table's walk stands: the last window's last key; None before the first
window, and again once the walk is over."""
_Step = tuple[dict[str, int], _Cursor]


def _notifications_window(
    horizon: str, cursor: _Cursor, chunk: int, connection: sqlite3.Connection
) -> _Step:
    """The next window of old notifications: their settled deliveries, then those of
    them that may go."""
    at, last_id = cursor or ("", "")
    window = connection.execute(
        _NOTIFICATIONS_WINDOW, {"h": horizon, "at": at, "id": last_id, "chunk": chunk}
    ).fetchall()
    if not window:
        return _removed(), None
    ids = json.dumps([row["id"] for row in window])
    removed = _removed(
        deliveries=_delete(connection, _DELETE_DELIVERIES, ids, horizon),
        notifications=_delete(connection, _DELETE_NOTIFICATIONS, ids, horizon),
    )
    return removed, (window[-1]["created_at"], window[-1]["id"])


def _events_window(
    horizon: str, cursor: _Cursor, chunk: int, connection: sqlite3.Connection
) -> _Step:
    """The next window of events by seq, until one holds none stored before the horizon
    (an event decided before it was stored before it). Events are stored in seq order
    but for a producer's transaction still open: an event it stored before the horizon,
    behind one stored after it, goes in a later pass."""
    (seq,) = cursor or (0,)
    window = connection.execute(_EVENTS_WINDOW, {"seq": seq, "chunk": chunk}).fetchall()
    if not window or min(row["enqueued_at"] for row in window) >= horizon:
        return _removed(), None
    seqs = json.dumps([row["seq"] for row in window])
    return _removed(events=_delete(connection, _DELETE_EVENTS, seqs, horizon)), (window[-1]["seq"],)


def _digests_window(
    horizon: str, cursor: _Cursor, chunk: int, connection: sqlite3.Connection
) -> _Step:
    """The next window of digests decided before the horizon."""
    at, last_id = cursor or ("", "")
    window = connection.execute(
        _DIGESTS_WINDOW, {"h": horizon, "at": at, "id": last_id, "chunk": chunk}
    ).fetchall()
    if not window:
        return _removed(), None
    ids = json.dumps([row["id"] for row in window])
    removed = _removed(digests=_delete(connection, _DELETE_DIGESTS, ids, horizon))
    return removed, (window[-1]["decided_at"], window[-1]["id"])


def _delete(connection: sqlite3.Connection, statement: str, window: str, horizon: str) -> int:
    return connection.execute(statement, {"window": window, "h": horizon}).rowcount


def _removed(**counts: int) -> dict[str, int]:
    return {table: counts.get(table, 0) for table in PRUNED_TABLES}


def _is_incremental(connection: sqlite3.Connection) -> bool:
    return bool(connection.execute("PRAGMA auto_vacuum").fetchone()[0] == _INCREMENTAL)


def _incremental_vacuum(connection: sqlite3.Connection) -> None:
    # Python's sqlite3 steps a statement once, and this pragma frees one page per step:
    # a script runs it to the end (in its own short write transaction).
    connection.executescript(f"PRAGMA incremental_vacuum({_PAGES_PER_STEP});")


def _vacuum(connection: sqlite3.Connection) -> None:
    connection.execute("PRAGMA auto_vacuum = INCREMENTAL")
    connection.execute("VACUUM")
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")

"""Retention on PostgreSQL: settled rows older than a horizon removed in small chunks,
by any number of runners at once (``core.ports.Retention`` says what is kept).

A pass walks each table oldest first through an index, a window of at most ``chunk``
rows at a time, and removes what the window holds that may go, in one short
transaction per window. Each delete takes its rows through a ``FOR UPDATE SKIP
LOCKED`` subselect: rows another runner's pass holds, or that a decision, a settle or
a ``mark_read`` is changing, are passed over (a later pass takes them), so passes
never wait for each other or hold up the drain, and their conditions are checked again
on the row as it stands once locked. Nothing a decision reads is ever removed (a key's
latest notification, a pending digest and its held events), so a pass needs no key
lock. The horizon is the database clock's, like every decision's.

Space: deleted rows become dead tuples that autovacuum reclaims for new rows; the
files do not shrink (README, "Retention", says what to watch).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta

from psycopg import AsyncCursor

from tidings.adapters import retention_rules as rules
from tidings.adapters.postgres.connection import PostgresDatabase
from tidings.adapters.postgres.rows import Row
from tidings.core.ports import PRUNED_TABLES

_H = "%(h)s"
"""The horizon's placeholder in this store's statements."""


_HORIZON = "SELECT {now} - %(age)s::interval AS h"
_COUNT_PRUNABLE = rules.count_prunable(_H)

_NOTIFICATIONS_WINDOW = (
    "SELECT id, created_at FROM notifications WHERE created_at < %(h)s"
    " AND (created_at, id) > (%(at)s, %(id)s) ORDER BY created_at, id LIMIT %(chunk)s"
)
_DELETE_DELIVERIES = (
    "DELETE FROM deliveries WHERE id = ANY(ARRAY(SELECT d.id FROM deliveries d"
    f" WHERE d.notification_id = ANY(%(window)s::text[]) AND {rules.settled_before('d', _H)}"
    " FOR UPDATE SKIP LOCKED))"
)
_DELETE_NOTIFICATIONS = (
    "DELETE FROM notifications WHERE id = ANY(ARRAY(SELECT n.id FROM notifications n"
    " WHERE n.id = ANY(%(window)s::text[]) AND n.created_at < %(h)s"
    f" AND {rules.superseded('n')}"
    " AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.notification_id = n.id)"
    " FOR UPDATE SKIP LOCKED))"
)
_EVENTS_WINDOW = (
    "SELECT seq, enqueued_at FROM events WHERE seq > %(seq)s ORDER BY seq LIMIT %(chunk)s"
)
_DELETE_EVENTS = (
    "DELETE FROM events WHERE seq = ANY(ARRAY(SELECT e.seq FROM events e"
    f" WHERE e.seq = ANY(%(window)s::bigint[]) AND e.status IN {rules.TERMINAL}"
    " AND e.decided_at < %(h)s"
    " AND NOT EXISTS (SELECT 1 FROM notifications n WHERE n.id = e.notification_id)"
    f" AND {rules.not_held_for_pending_digest('e')}"
    " FOR UPDATE SKIP LOCKED))"
)
_DIGESTS_WINDOW = (
    f"SELECT id, decided_at FROM digests WHERE status IN {rules.DECIDED_DIGEST}"
    " AND decided_at < %(h)s AND (decided_at, id) > (%(at)s, %(id)s)"
    " ORDER BY decided_at, id LIMIT %(chunk)s"
)
_DELETE_DIGESTS = (
    "DELETE FROM digests WHERE id = ANY(ARRAY(SELECT g.id FROM digests g"
    f" WHERE g.id = ANY(%(window)s::text[]) AND g.status IN {rules.DECIDED_DIGEST}"
    " AND NOT EXISTS (SELECT 1 FROM notifications n WHERE n.id = g.notification_id)"
    " AND NOT EXISTS (SELECT 1 FROM events e WHERE e.digest_id = g.id)"
    " FOR UPDATE SKIP LOCKED))"
)
_VACUUM = "VACUUM (ANALYZE) deliveries, notifications, events, digests"
_SIZE = "SELECT pg_database_size(current_database()) AS size"

_EARLIEST = datetime(1, 1, 1, tzinfo=UTC)
"""Before every stored time: where the walks of notifications and digests start."""

_Cursor = tuple[object, ...] | None
"""Where a table's walk stands: the last window's last key; None before the first
window, and again once the walk is over."""


class PostgresRetention:
    """Prunes the tables of one database a window at a time, beside other runners."""

    def __init__(self, database: PostgresDatabase) -> None:
        self._db = database

    async def _horizon(self, cursor: AsyncCursor[Row], older_than: timedelta) -> datetime:
        await self._db.execute(cursor, _HORIZON, age=older_than)
        found = await cursor.fetchone()
        assert found is not None
        horizon: datetime = found["h"]
        return horizon

    async def prunable(self, older_than: timedelta) -> Mapping[str, int]:
        async with self._db.cursor() as cursor:
            horizon = await self._horizon(cursor, older_than)
            await cursor.execute(_COUNT_PRUNABLE.encode(), {"h": horizon})
            found = await cursor.fetchone()
        assert found is not None
        return {table: found[table] for table in PRUNED_TABLES}

    async def prune(
        self, older_than: timedelta, *, chunk: int = 1000
    ) -> AsyncIterator[Mapping[str, int]]:
        async with self._db.cursor() as cursor:
            horizon = await self._horizon(cursor, older_than)
        for step in (self._notifications_window, self._events_window, self._digests_window):
            position: _Cursor = None
            while True:
                async with self._db.cursor() as cursor:
                    removed, position = await step(cursor, horizon, position, chunk)
                if position is None:
                    break
                yield removed

    async def _notifications_window(
        self, cursor: AsyncCursor[Row], horizon: datetime, position: _Cursor, chunk: int
    ) -> tuple[dict[str, int], _Cursor]:
        """The next window of old notifications: their settled deliveries, then those of
        them that may go."""
        at, last_id = position or (_EARLIEST, "")
        values = {"h": horizon, "at": at, "id": last_id, "chunk": chunk}
        await cursor.execute(_NOTIFICATIONS_WINDOW.encode(), values)
        window = await cursor.fetchall()
        if not window:
            return _removed(), None
        ids = {"h": horizon, "window": [row["id"] for row in window]}
        await cursor.execute(_DELETE_DELIVERIES.encode(), ids)
        deliveries = cursor.rowcount
        await cursor.execute(_DELETE_NOTIFICATIONS.encode(), ids)
        removed = _removed(deliveries=deliveries, notifications=cursor.rowcount)
        return removed, (window[-1]["created_at"], window[-1]["id"])

    async def _events_window(
        self, cursor: AsyncCursor[Row], horizon: datetime, position: _Cursor, chunk: int
    ) -> tuple[dict[str, int], _Cursor]:
        """The next window of events by seq, until one holds none stored before the
        horizon (an event decided before it was stored before it). Events are stored in
        seq order but for a producer's transaction still open: an event it stored
        before the horizon, behind one stored after it, goes in a later pass."""
        (seq,) = position or (0,)
        await cursor.execute(_EVENTS_WINDOW.encode(), {"seq": seq, "chunk": chunk})
        window = await cursor.fetchall()
        if not window or min(row["enqueued_at"] for row in window) >= horizon:
            return _removed(), None
        seqs = {"h": horizon, "window": [row["seq"] for row in window]}
        await cursor.execute(_DELETE_EVENTS.encode(), seqs)
        return _removed(events=cursor.rowcount), (window[-1]["seq"],)

    async def _digests_window(
        self, cursor: AsyncCursor[Row], horizon: datetime, position: _Cursor, chunk: int
    ) -> tuple[dict[str, int], _Cursor]:
        """The next window of digests decided before the horizon."""
        at, last_id = position or (_EARLIEST, "")
        values = {"h": horizon, "at": at, "id": last_id, "chunk": chunk}
        await cursor.execute(_DIGESTS_WINDOW.encode(), values)
        window = await cursor.fetchall()
        if not window:
            return _removed(), None
        ids = {"window": [row["id"] for row in window]}
        await cursor.execute(_DELETE_DIGESTS.encode(), ids)
        return _removed(digests=cursor.rowcount), (window[-1]["decided_at"], window[-1]["id"])

    async def vacuum(self) -> tuple[int, int]:
        async with self._db.cursor(transaction=False) as cursor:
            before = await _size(cursor)
            await cursor.execute(_VACUUM.encode())
            return before, await _size(cursor)


async def _size(cursor: AsyncCursor[Row]) -> int:
    await cursor.execute(_SIZE.encode())
    found = await cursor.fetchone()
    assert found is not None
    size: int = found["size"]
    return size


def _removed(**counts: int) -> dict[str, int]:
    return {table: counts.get(table, 0) for table in PRUNED_TABLES}

"""Recorded decisions read back: an event's record, dry runs and replays."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from tidings.adapters import rowmaps
from tidings.adapters.postgres import decisions
from tidings.adapters.postgres.connection import PostgresDatabase
from tidings.adapters.postgres.rows import POSTGRES
from tidings.core import Preference
from tidings.core.decision import DecisionInputs
from tidings.core.records import DecidedEvent, EventRecord


class PostgresHistory:
    """Past decisions and current inputs, read for ``explain``, dry runs and replays."""

    def __init__(self, database: PostgresDatabase) -> None:
        self._db = database

    async def event_record(self, event_id: str) -> EventRecord | None:
        async with self._db.cursor(transaction=False) as cursor:
            await cursor.execute("SELECT * FROM events WHERE event_id = %s", (event_id,))
            row = await cursor.fetchone()
        return rowmaps.event_record(row, POSTGRES) if row else None

    async def decision_inputs(self, user_id: str, kind: str) -> tuple[DecisionInputs, datetime]:
        key = (user_id, kind)
        async with self._db.connection() as connection:
            clock = self._db.clock
            now, batch = await decisions.load_inputs(connection, {key}, clock() if clock else None)
        return batch.for_key(key, batch.last_sent.get(key)), now

    async def decided_events(
        self, since: datetime, after: tuple[datetime, int] | None, limit: int
    ) -> Sequence[DecidedEvent]:
        start = after or (since, -1)
        async with self._db.cursor(transaction=False) as cursor:
            await cursor.execute(
                "SELECT seq, event_id, user_id, kind, severity, title, body, payload_json,"
                " status, decided_at FROM events WHERE status IN ('notified', 'skipped')"
                " AND decided_at >= %s AND (decided_at, seq) > (%s, %s)"
                " ORDER BY decided_at, seq LIMIT %s",
                (since, start[0], start[1], limit),
            )
            found = await cursor.fetchall()
        return [rowmaps.decided_event(row, POSTGRES) for row in found]

    async def last_notified_before(self, moment: datetime) -> Mapping[tuple[str, str], datetime]:
        async with self._db.cursor(transaction=False) as cursor:
            await cursor.execute(
                "SELECT user_id, kind, max(created_at) AS last FROM notifications"
                " WHERE created_at < %s GROUP BY user_id, kind",
                (moment,),
            )
            found = await cursor.fetchall()
        return {(row["user_id"], row["kind"]): row["last"] for row in found}

    async def all_preferences(self) -> Mapping[tuple[str, str], Preference]:
        async with self._db.cursor(transaction=False) as cursor:
            await cursor.execute(
                "SELECT user_id, kind, channels, min_severity, digest FROM notification_preferences"
            )
            found = await cursor.fetchall()
        return {(row["user_id"], row["kind"]): rowmaps.preference(row, POSTGRES) for row in found}

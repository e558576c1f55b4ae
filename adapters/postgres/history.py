"""Recorded decisions read back: an event's record, dry runs and replays."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from tidings.adapters import rowmaps
from tidings.adapters.postgres import decisions
from tidings.adapters.postgres.connection import PostgresDatabase
from tidings.adapters.postgres.rows import POSTGRES
from tidings.core import Preference
from tidings.core.decision import DecisionInputs
from tidings.core.digest import HeldEvent
from tidings.core.quiet_hours import QuietHours
from tidings.core.records import DecidedEvent, EventRecord
from tidings.core.values import Severity

"""Breaks a tie between notifications of one key recorded at the same instant: only an
escalation follows another inside its cooldown, and it is the more severe."""


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
        last = await self.last_notifications_before(moment)
        return {key: at for key, (at, _) in last.items()}

    async def last_notifications_before(
        self, moment: datetime
    ) -> Mapping[tuple[str, str], tuple[datetime, Severity]]:
        async with self._db.cursor(transaction=False) as cursor:
            await cursor.execute(
                "SELECT DISTINCT ON (user_id, kind) user_id, kind, created_at, severity"
                " FROM notifications WHERE created_at < %s"
                f" ORDER BY user_id, kind, created_at DESC, {rowmaps.SEVERITY_RANK_SQL} DESC",
                (moment,),
            )
            found = await cursor.fetchall()
        return {
            (row["user_id"], row["kind"]): (
                row["created_at"].astimezone(UTC),
                Severity(row["severity"]),
            )
            for row in found
        }

    async def held_for_digests_at(
        self, moment: datetime
    ) -> Mapping[tuple[str, str], Sequence[HeldEvent]]:
        async with self._db.cursor(transaction=False) as cursor:
            await cursor.execute(
                "SELECT d.user_id, d.kind, e.event_id, e.severity, e.title, e.decided_at"
                " FROM digests d JOIN events e ON e.digest_id = d.id"
                " WHERE (d.decided_at IS NULL OR d.decided_at >= %(at)s)"
                " AND e.decided_at < %(at)s ORDER BY e.seq",
                {"at": moment},
            )
            found = await cursor.fetchall()
        held: dict[tuple[str, str], list[HeldEvent]] = {}
        for row in found:
            held.setdefault((row["user_id"], row["kind"]), []).append(
                HeldEvent(
                    event_id=row["event_id"],
                    severity=Severity(row["severity"]),
                    title=row["title"],
                    held_at=row["decided_at"].astimezone(UTC),
                )
            )
        return held

    async def digests_notified_since(self, moment: datetime) -> Mapping[tuple[str, str], int]:
        async with self._db.cursor(transaction=False) as cursor:
            await cursor.execute(
                "SELECT user_id, kind, count(*) AS sent FROM digests"
                " WHERE status = 'notified' AND decided_at >= %s GROUP BY user_id, kind",
                (moment,),
            )
            found = await cursor.fetchall()
        return {(row["user_id"], row["kind"]): row["sent"] for row in found}

    async def all_preferences(self) -> Mapping[tuple[str, str], Preference]:
        async with self._db.cursor(transaction=False) as cursor:
            await cursor.execute(
                "SELECT user_id, kind, channels, min_severity, digest FROM notification_preferences"
            )
            found = await cursor.fetchall()
        return {(row["user_id"], row["kind"]): rowmaps.preference(row, POSTGRES) for row in found}

    async def all_quiet_hours(self) -> Mapping[str, QuietHours]:
        async with self._db.cursor(transaction=False) as cursor:
            await cursor.execute("SELECT user_id, starts, ends, zone FROM quiet_hours")
            found = await cursor.fetchall()
        return {
            row["user_id"]: window
            for row in found
            if (window := rowmaps.quiet_hours(row)) is not None
        }

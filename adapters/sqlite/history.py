"""Recorded decisions read back: an event's record, dry runs and replays."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from datetime import datetime

from tidings.adapters import rowmaps
from tidings.adapters.sqlite import decisions, rows
from tidings.adapters.sqlite.connection import SqliteDatabase
from tidings.adapters.sqlite.rows import SQLITE
from tidings.core import Preference
from tidings.core.decision import DecisionInputs
from tidings.core.digest import HeldEvent
from tidings.core.quiet_hours import QuietHours
from tidings.core.records import DecidedEvent, EventRecord
from tidings.core.values import Severity

"""Breaks a tie between notifications of one key recorded at the same instant: only an
escalation follows another inside its cooldown, and it is the more severe."""

_LastNotifications = dict[tuple[str, str], tuple[datetime, Severity]]


class SqliteHistory:
    """Past decisions and current inputs, read for ``explain``, dry runs and replays."""

    def __init__(self, database: SqliteDatabase) -> None:
        self._db = database

    async def event_record(self, event_id: str) -> EventRecord | None:
        def read(connection: sqlite3.Connection) -> EventRecord | None:
            row = connection.execute(
                "SELECT *, decision_json AS decision FROM events WHERE event_id = ?", (event_id,)
            ).fetchone()
            return rowmaps.event_record(row, SQLITE) if row else None

        return await self._db.read(read)

    async def decision_inputs(self, user_id: str, kind: str) -> tuple[DecisionInputs, datetime]:
        def read(connection: sqlite3.Connection) -> tuple[DecisionInputs, datetime]:
            now = self._db.clock()
            batch = decisions.load_inputs(connection, {(user_id, kind)}, now)
            return batch.for_key((user_id, kind), batch.last_sent.get((user_id, kind))), now

        return await self._db.read(read)

    async def decided_events(
        self, since: datetime, after: tuple[datetime, int] | None, limit: int
    ) -> Sequence[DecidedEvent]:
        start = after or (since, -1)

        def read(connection: sqlite3.Connection) -> list[DecidedEvent]:
            found = connection.execute(
                "SELECT seq, event_id, user_id, kind, severity, title, body, payload_json,"
                " status, decided_at FROM events WHERE status IN ('notified', 'skipped')"
                " AND decided_at >= ? AND (decided_at > ? OR (decided_at = ? AND seq > ?))"
                " ORDER BY decided_at, seq LIMIT ?",
                (rows.time_text(since), rows.time_text(start[0]), rows.time_text(start[0]),
                 start[1], limit),
            )  # fmt: skip
            return [rowmaps.decided_event(row, SQLITE) for row in found]

        return await self._db.read(read)

    async def last_notified_before(self, moment: datetime) -> Mapping[tuple[str, str], datetime]:
        last = await self.last_notifications_before(moment)
        return {key: at for key, (at, _) in last.items()}

    async def last_notifications_before(
        self, moment: datetime
    ) -> Mapping[tuple[str, str], tuple[datetime, Severity]]:
        def read(connection: sqlite3.Connection) -> _LastNotifications:
            found = connection.execute(
                "SELECT user_id, kind, created_at, severity FROM (SELECT user_id, kind,"
                " created_at, severity, row_number() OVER (PARTITION BY user_id, kind"
                f" ORDER BY created_at DESC, {rowmaps.SEVERITY_RANK_SQL} DESC) AS place"
                " FROM notifications WHERE created_at < ?) WHERE place = 1",
                (rows.time_text(moment),),
            )
            return {
                (row["user_id"], row["kind"]): (
                    datetime.fromisoformat(row["created_at"]),
                    Severity(row["severity"]),
                )
                for row in found
            }

        return await self._db.read(read)

    async def held_for_digests_at(
        self, moment: datetime
    ) -> Mapping[tuple[str, str], Sequence[HeldEvent]]:
        def read(connection: sqlite3.Connection) -> dict[tuple[str, str], list[HeldEvent]]:
            held: dict[tuple[str, str], list[HeldEvent]] = {}
            at = rows.time_text(moment)
            for row in connection.execute(
                "SELECT d.user_id, d.kind, e.event_id, e.severity, e.title, e.decided_at"
                " FROM digests d JOIN events e ON e.digest_id = d.id"
                " WHERE (d.decided_at IS NULL OR d.decided_at >= ?) AND e.decided_at < ?"
                " ORDER BY e.seq",
                (at, at),
            ):
                held.setdefault((row["user_id"], row["kind"]), []).append(
                    HeldEvent(
                        event_id=row["event_id"],
                        severity=Severity(row["severity"]),
                        title=row["title"],
                        held_at=datetime.fromisoformat(row["decided_at"]),
                    )
                )
            return held

        return await self._db.read(read)

    async def digests_notified_since(self, moment: datetime) -> Mapping[tuple[str, str], int]:
        def read(connection: sqlite3.Connection) -> dict[tuple[str, str], int]:
            found = connection.execute(
                "SELECT user_id, kind, count(*) AS sent FROM digests"
                " WHERE status = 'notified' AND decided_at >= ? GROUP BY user_id, kind",
                (rows.time_text(moment),),
            )
            return {(row["user_id"], row["kind"]): row["sent"] for row in found}

        return await self._db.read(read)

    async def all_preferences(self) -> Mapping[tuple[str, str], Preference]:
        def read(connection: sqlite3.Connection) -> dict[tuple[str, str], Preference]:
            found = connection.execute(
                "SELECT user_id, kind, channels, min_severity, digest FROM notification_preferences"
            )
            return {(row["user_id"], row["kind"]): rowmaps.preference(row, SQLITE) for row in found}

        return await self._db.read(read)

    async def all_quiet_hours(self) -> Mapping[str, QuietHours]:
        def read(connection: sqlite3.Connection) -> dict[str, QuietHours]:
            found = connection.execute("SELECT user_id, starts, ends, zone FROM quiet_hours")
            return {
                row["user_id"]: window
                for row in found
                if (window := rowmaps.quiet_hours(row)) is not None
            }

        return await self._db.read(read)

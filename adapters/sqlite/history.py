"""Recorded decisions read back: replays and dry runs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from tidings.adapters import rowmaps
from tidings.adapters.sqlite import decisions, rows
from tidings.adapters.sqlite.connection import SqliteConnection
from tidings.adapters.sqlite.rows import SQLITE
from tidings.core import GLOBAL_KIND, Preference
from tidings.core.decision import DecisionInputs
from tidings.core.records import (
    DecidedEvent,
)


class HistoryTables(SqliteConnection):
    """Past decisions and current inputs, read for replays and dry runs."""

    async def decision_inputs(self, user_id: str, kind: str) -> tuple[DecisionInputs, datetime]:
        def read() -> tuple[DecisionInputs, datetime]:
            preferences, last_sent = decisions.load_inputs(self._conn(), {(user_id, kind)})
            inputs = DecisionInputs(
                kind_preference=preferences.get((user_id, kind)),
                global_preference=preferences.get((user_id, GLOBAL_KIND)),
                last_sent_at=last_sent.get((user_id, kind)),
            )
            return inputs, self._clock()

        return await self._call(read)

    async def decided_events(
        self, since: datetime, after: tuple[datetime, int] | None, limit: int
    ) -> Sequence[DecidedEvent]:
        start = after or (since, -1)

        def read() -> list[DecidedEvent]:
            found = self._conn().execute(
                "SELECT seq, event_id, user_id, kind, severity, title, body, payload_json,"
                " status, decided_at FROM events WHERE status IN ('notified', 'skipped')"
                " AND decided_at >= ? AND (decided_at > ? OR (decided_at = ? AND seq > ?))"
                " ORDER BY decided_at, seq LIMIT ?",
                (rows.time_text(since), rows.time_text(start[0]), rows.time_text(start[0]),
                 start[1], limit),
            )  # fmt: skip
            return [rowmaps.decided_event(row, SQLITE) for row in found]

        return await self._call(read)

    async def last_notified_before(self, moment: datetime) -> Mapping[tuple[str, str], datetime]:
        def read() -> dict[tuple[str, str], datetime]:
            found = self._conn().execute(
                "SELECT user_id, kind, max(created_at) AS last FROM notifications"
                " WHERE created_at < ? GROUP BY user_id, kind",
                (rows.time_text(moment),),
            )
            return {
                (row["user_id"], row["kind"]): datetime.fromisoformat(row["last"]) for row in found
            }

        return await self._call(read)

    async def all_preferences(self) -> Mapping[tuple[str, str], Preference]:
        def read() -> dict[tuple[str, str], Preference]:
            found = self._conn().execute(
                "SELECT user_id, kind, channels, min_severity FROM notification_preferences"
            )
            return {(row["user_id"], row["kind"]): rowmaps.preference(row, SQLITE) for row in found}

        return await self._call(read)

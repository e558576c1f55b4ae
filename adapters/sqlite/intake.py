"""The durable intake and the decisions recorded against it."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence

from tidings.adapters import rowmaps
from tidings.adapters.recording import CLAIMED_COLUMNS, BatchRecorder, validate_rows
from tidings.adapters.sqlite import decisions, rows
from tidings.adapters.sqlite.connection import DUE, SqliteConnection
from tidings.adapters.sqlite.rows import SQLITE
from tidings.core import Event
from tidings.core.ports import DecideFn
from tidings.core.records import (
    Backlog,
    DecidedClaim,
    EventRecord,
    IntakeItem,
    RecordedEvent,
)
from tidings.core.validation import InvalidEvent, is_valid

# The oldest claimable events: pending, or claimed under an expired lease. Two ordered
# walks of the open-events index, each stopping at the limit, so a claim reads about
# ``:limit`` rows however long the backlog (one condition would sort it all).
_CLAIMABLE_SEQS = (
    "SELECT seq FROM (SELECT seq FROM events WHERE status IN ('pending', 'claimed')"
    "  AND status = 'pending' ORDER BY seq LIMIT :limit)"
    " UNION ALL SELECT seq FROM (SELECT seq FROM events WHERE status IN ('pending', 'claimed')"
    "  AND status = 'claimed' AND lease_until <= :now ORDER BY seq LIMIT :limit)"
    " ORDER BY seq LIMIT :limit"
)


class IntakeTables(SqliteConnection):
    """Events in: enqueue, claim under a lease, reject, and decide-and-record."""

    async def enqueue(self, events: Sequence[Event]) -> int:
        return await self._call(self._write, lambda c: self._enqueue(c, events))

    def _enqueue(self, connection: sqlite3.Connection, events: Sequence[Event]) -> int:
        now = self._now()
        before = connection.total_changes
        connection.executemany(
            "INSERT OR IGNORE INTO events (event_id, user_id, kind, severity, title, body,"
            " payload_json, enqueued_at, validated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    e.event_id,
                    e.user_id,
                    e.kind,
                    e.severity.value,
                    e.title,
                    e.body,
                    e.payload_json,
                    now,
                    is_valid(e),
                )
                for e in events
            ],
        )
        return connection.total_changes - before

    async def claim_events(self, worker_id: str, limit: int) -> Sequence[IntakeItem]:
        def claim(connection: sqlite3.Connection) -> list[IntakeItem]:
            now = self._clock()
            found = connection.execute(
                "UPDATE events SET status = 'claimed', claimed_by = :worker, lease_until = :lease"
                f" WHERE seq IN ({_CLAIMABLE_SEQS})"
                " RETURNING seq, event_id, user_id, kind, severity, title, body, payload_json",
                {
                    "worker": worker_id,
                    "lease": rows.time_text(now + self._lease),
                    "now": rows.time_text(now),
                    "limit": limit,
                },
            ).fetchall()
            found.sort(key=lambda row: row["seq"])
            return [rowmaps.intake_item(row) for row in found]

        return await self._call(self._write, claim)

    async def reject_event(self, worker_id: str, event_id: str, error: InvalidEvent) -> None:
        await self._call(
            self._write,
            lambda c: c.execute(
                "UPDATE events SET status = 'rejected', error = ?, decided_at = ?,"
                " claimed_by = NULL, lease_until = NULL"
                " WHERE event_id = ? AND status = 'claimed' AND claimed_by = ?",
                (str(error), self._now(), event_id, worker_id),
            ),
        )

    async def backlog(self) -> Backlog:
        def count() -> Backlog:
            connection = self._conn()
            now = {"now": self._now()}
            events = connection.execute(
                "SELECT count(*) FROM events WHERE status IN ('pending', 'claimed')"
            ).fetchone()[0]
            due = connection.execute(f"SELECT count(*) FROM deliveries WHERE {DUE}", now)
            return Backlog(events=events, due_deliveries=due.fetchone()[0])

        return await self._call(count)

    async def renew_claims(self, worker_id: str) -> None:
        def renew(connection: sqlite3.Connection) -> None:
            values = (rows.time_text(self._clock() + self._lease), worker_id)
            connection.execute(
                # The IN term lets SQLite use the partial index of open events.
                "UPDATE events SET lease_until = ? WHERE status IN ('pending', 'claimed')"
                " AND status = 'claimed' AND claimed_by = ?",
                values,
            )
            connection.execute(
                "UPDATE deliveries SET lease_until = ? WHERE status IN ('pending', 'failed')"
                " AND claimed_by = ?",
                values,
            )

        await self._call(self._write, renew)

    async def wait_for_events(self, at_most: float) -> None:
        # SQLite has no notifications; the runner's poll interval is the wait.
        await asyncio.sleep(at_most)

    # -- decisions -----------------------------------------------------------------

    async def record_decisions(
        self, worker_id: str, events: Sequence[Event], decide: DecideFn
    ) -> Sequence[RecordedEvent]:
        return await self._call(self._write, lambda c: self._record(c, worker_id, events, decide))

    def _record(
        self,
        connection: sqlite3.Connection,
        worker_id: str,
        events: Sequence[Event],
        decide: DecideFn,
    ) -> list[RecordedEvent]:
        mine = decisions.claimed_by(connection, worker_id, events)
        return self._decide(connection, worker_id, events, mine, decide) if mine else []

    def _decide(
        self,
        connection: sqlite3.Connection,
        worker_id: str,
        events: Sequence[Event],
        rows_of: dict[str, int],
        decide: DecideFn,
    ) -> list[RecordedEvent]:
        """Decide and record, in order, the ``events`` found in ``rows_of`` (event id
        to row number): the ones this transaction may settle."""
        keys = {(e.user_id, e.kind) for e in events if e.event_id in rows_of}
        preferences, last_sent = decisions.load_inputs(connection, keys)
        now = self._clock()
        recorder = BatchRecorder(
            worker_id=worker_id,
            decide=decide,
            now=now,
            lease=self._lease,
            preferences=preferences,
            last_sent=last_sent,
        )
        recorded = recorder.record_claimed(events, set(rows_of))
        decisions.write(connection, recorder, rows_of)
        return recorded

    max_lanes = 1
    """One writer: a second lane would only wait for the first."""

    async def decide_claimable(
        self, worker_id: str, limit: int, decide: DecideFn, *, lane: int = 0, lanes: int = 1
    ) -> DecidedClaim:
        if (lane, lanes) != (0, 1):
            raise ValueError(f"SQLite decides in one lane, not lane {lane} of {lanes}")
        return await self._call(
            self._write, lambda c: self._decide_claimable(c, worker_id, limit, decide)
        )

    def _decide_claimable(
        self, connection: sqlite3.Connection, worker_id: str, limit: int, decide: DecideFn
    ) -> DecidedClaim:
        """Claim, validate, decide and record in this one write transaction: SQLite's
        single writer already excludes every other claimer until it commits."""
        found = connection.execute(
            f"SELECT {CLAIMED_COLUMNS} FROM events WHERE seq IN ({_CLAIMABLE_SEQS}) ORDER BY seq",
            {"now": self._now(), "limit": limit},
        ).fetchall()
        claimed = validate_rows(found)
        connection.executemany(
            "UPDATE events SET status = 'rejected', error = ?, decided_at = ?,"
            " claimed_by = NULL, lease_until = NULL WHERE seq = ?",
            [(str(error), self._now(), seq) for seq, _, error in claimed.rejected],
        )
        recorded = (
            self._decide(connection, worker_id, claimed.events, claimed.row_of, decide)
            if claimed.events
            else []
        )
        return DecidedClaim(
            recorded=tuple(recorded),
            rejected=tuple((event_id, error) for _, event_id, error in claimed.rejected),
        )

    async def event_record(self, event_id: str) -> EventRecord | None:
        def read() -> EventRecord | None:
            row = (
                self._conn()
                .execute(
                    "SELECT *, decision_json AS decision FROM events WHERE event_id = ?",
                    (event_id,),
                )
                .fetchone()
            )
            return rowmaps.event_record(row, SQLITE) if row else None

        return await self._call(read)

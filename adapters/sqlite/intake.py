"""Events in, and decided: enqueue (marking the valid events, ``intake_mark``), then
claim, validate, decide and record in one transaction.

SQLite's single writer and ``BEGIN IMMEDIATE`` already exclude every other claimer
until the transaction commits, so claiming needs no lease and one lane is all there is.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Mapping, Sequence

from tidings.adapters.intake_mark import MARK, MARKED_COLUMNS
from tidings.adapters.recording import BatchRecorder, validate_rows
from tidings.adapters.sqlite import decisions, rows
from tidings.adapters.sqlite.connection import DUE, SqliteDatabase
from tidings.core import Channel, Event
from tidings.core.ports import DecideFn
from tidings.core.records import Backlog, DecidedClaim
from tidings.core.validation import is_valid

OPEN_EVENTS = "status IN ('pending', 'claimed') AND status = 'pending'"
"""Events not decided yet. The IN term is the open-events index's own condition
(migration 0001 also allowed a 'claimed' status, which nothing writes any more): it
lets SQLite walk that index instead of the table."""


class SqliteIntake:
    """The durable intake and the claim-and-decide transaction."""

    max_lanes = 1
    """One writer: a second lane would only wait for the first."""

    def __init__(self, database: SqliteDatabase) -> None:
        self._db = database

    async def enqueue(self, events: Sequence[Event]) -> int:
        return await self._db.write(lambda c: self._enqueue(c, events))

    def _enqueue(self, connection: sqlite3.Connection, events: Sequence[Event]) -> int:
        now = self._db.now()
        before = connection.total_changes
        [mark] = connection.execute(f"SELECT {MARK}").fetchone()
        connection.executemany(
            "INSERT OR IGNORE INTO events (event_id, user_id, kind, severity, title, body,"
            " payload_json, enqueued_at, intake_mark) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (e.event_id, e.user_id, e.kind, e.severity.value, e.title, e.body,
                 e.payload_json, now, mark if is_valid(e) else None)
                for e in events
            ],
        )  # fmt: skip
        return connection.total_changes - before

    async def backlog(self) -> Backlog:
        """One statement (one snapshot). Each count walks a partial index of open rows
        (``events_open``, ``deliveries_due`` on either side of now, ``digests_due``:
        migrations 0001 and 0007), looking up only open deliveries' rows, so it costs
        what is open, however long the history."""

        def count(connection: sqlite3.Connection) -> Backlog:
            events, due, waiting, digests = connection.execute(
                f"SELECT (SELECT count(*) FROM events WHERE {OPEN_EVENTS}),"
                f" (SELECT count(*) FROM deliveries WHERE {DUE}),"
                " (SELECT count(*) FROM deliveries WHERE status IN ('pending', 'failed')"
                "  AND next_attempt_at > :now),"
                " (SELECT count(*) FROM digests WHERE status = 'pending' AND due_at <= :now)",
                {"now": self._db.now()},
            ).fetchone()
            return Backlog(
                events=events,
                due_deliveries=due,
                due_digests=digests,
                waiting_deliveries=waiting,
            )

        return await self._db.read(count)

    async def wait_for_events(self, at_most: float) -> None:
        # SQLite has no notifications; the runner's poll interval is the wait.
        await asyncio.sleep(at_most)

    async def decide_claimable(
        self,
        worker_id: str,
        limit: int,
        decide: DecideFn,
        *,
        lane: int = 0,
        lanes: int = 1,
        take: Mapping[Channel, int] | None = None,
    ) -> DecidedClaim:
        if (lane, lanes) != (0, 1):
            raise ValueError(f"SQLite decides in one lane, not lane {lane} of {lanes}")
        return await self._db.write(
            lambda c: self._decide_claimable(c, worker_id, limit, decide, take)
        )

    def _decide_claimable(
        self,
        connection: sqlite3.Connection,
        worker_id: str,
        limit: int,
        decide: DecideFn,
        take: Mapping[Channel, int] | None,
    ) -> DecidedClaim:
        """Claim, validate, decide and record in this one write transaction."""
        found = connection.execute(
            f"SELECT {MARKED_COLUMNS} FROM events WHERE {OPEN_EVENTS} ORDER BY seq LIMIT ?",
            (limit,),
        ).fetchall()
        claimed = validate_rows(found)
        now = self._db.clock()
        connection.executemany(
            "UPDATE events SET status = 'rejected', error = ?, decided_at = ? WHERE seq = ?",
            [(str(error), rows.time_text(now), seq) for seq, _, error in claimed.rejected],
        )
        recorded = []
        if claimed.events:
            keys = {(e.user_id, e.kind) for e in claimed.events}
            recorder = BatchRecorder(
                worker_id=worker_id,
                decide=decide,
                now=now,
                lease=self._db.lease,
                inputs=decisions.load_inputs(connection, keys, now),
                take=take,
            )
            recorded = recorder.record_each(claimed.events, claimed.enqueued_at)
            decisions.write(connection, recorder, claimed.row_of)
        return DecidedClaim(
            recorded=tuple(recorded),
            rejected=tuple((event_id, error) for _, event_id, error in claimed.rejected),
        )

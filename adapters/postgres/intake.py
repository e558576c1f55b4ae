"""The durable intake and the decisions recorded against it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import psycopg

from tidings.adapters import rowmaps
from tidings.adapters.postgres.connection import PostgresConnection
from tidings.adapters.postgres.decisions import claim_and_decide, record_batch
from tidings.adapters.postgres.rows import POSTGRES
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

_WAKE_CHANNEL = "tidings_events"
_RESTART_EVERY = 16
"""A lane's claims start from the oldest event at least once every this many batches."""


class IntakeTables(PostgresConnection):
    """Events in: enqueue, claim under a lease, reject, and decide-and-record."""

    async def enqueue(self, events: Sequence[Event]) -> int:
        async with self._cursor() as cursor:
            await self._execute(
                cursor,
                "INSERT INTO events (event_id, user_id, kind, severity, title, body,"
                " payload_json, validated, enqueued_at)"
                " SELECT *, {now} FROM unnest(%(ids)s::text[], %(users)s::text[],"
                " %(kinds)s::text[], %(severities)s::text[], %(titles)s::text[],"
                " %(bodies)s::text[], %(payloads)s::text[], %(validated)s::boolean[])"
                " ON CONFLICT (event_id) DO NOTHING",
                ids=[e.event_id for e in events],
                users=[e.user_id for e in events],
                kinds=[e.kind for e in events],
                severities=[e.severity.value for e in events],
                titles=[e.title for e in events],
                bodies=[e.body for e in events],
                payloads=[e.payload_json for e in events],
                validated=[is_valid(e) for e in events],
            )
            return cursor.rowcount

    async def claim_events(self, worker_id: str, limit: int) -> Sequence[IntakeItem]:
        async with self._cursor() as cursor:
            await self._execute(
                cursor,
                "UPDATE events SET status = 'claimed', claimed_by = %(worker)s,"
                # ANY(ARRAY(...)): walk the open-events index in order and stop at
                # the limit, instead of sorting every open event first.
                " lease_until = {now} + %(lease)s WHERE seq = ANY(ARRAY(SELECT seq FROM events"
                "  WHERE status IN ('pending', 'claimed')"
                "  AND (status = 'pending' OR lease_until <= {now})"
                "  ORDER BY seq LIMIT %(limit)s FOR UPDATE SKIP LOCKED))"
                " RETURNING seq, event_id, user_id, kind, severity, title, body, payload_json",
                worker=worker_id,
                limit=limit,
            )
            found = sorted(await cursor.fetchall(), key=lambda row: int(row["seq"]))
        return [rowmaps.intake_item(row) for row in found]

    async def reject_event(self, worker_id: str, event_id: str, error: InvalidEvent) -> None:
        async with self._cursor() as cursor:
            await self._execute(
                cursor,
                "UPDATE events SET status = 'rejected', error = %(error)s, decided_at = {now},"
                " claimed_by = NULL, lease_until = NULL WHERE event_id = %(event)s"
                " AND status = 'claimed' AND claimed_by = %(worker)s",
                error=str(error),
                event=event_id,
                worker=worker_id,
            )

    async def backlog(self) -> Backlog:
        async with self._cursor() as cursor:
            await self._execute(
                cursor,
                "SELECT (SELECT count(*) FROM events WHERE status IN ('pending', 'claimed'))"
                " AS events, (SELECT count(*) FROM deliveries WHERE status IN"
                " ('pending', 'failed') AND next_attempt_at <= {now}) AS due",
            )
            row = await cursor.fetchone()
        assert row is not None
        return Backlog(events=row["events"], due_deliveries=row["due"])

    async def renew_claims(self, worker_id: str) -> None:
        # SKIP LOCKED: rows being recorded right now are about to be released anyway,
        # and waiting on them could deadlock with that very transaction.
        async with self._cursor() as cursor:
            await self._execute(
                cursor,
                "UPDATE events SET lease_until = {now} + %(lease)s WHERE seq IN"
                " (SELECT seq FROM events WHERE status = 'claimed' AND claimed_by = %(worker)s"
                " FOR UPDATE SKIP LOCKED)",
                worker=worker_id,
            )
            await self._execute(
                cursor,
                "UPDATE deliveries SET lease_until = {now} + %(lease)s WHERE id IN"
                " (SELECT id FROM deliveries WHERE status IN ('pending', 'failed')"
                " AND claimed_by = %(worker)s FOR UPDATE SKIP LOCKED)",
                worker=worker_id,
            )

    async def wait_for_events(self, at_most: float) -> None:
        """Sleep until a NOTIFY on new events or ``at_most`` seconds; polling covers
        any wake-up lost while the listening connection was down."""
        try:
            if self._listener is None or self._listener.closed:
                self._listener = await psycopg.AsyncConnection.connect(self._url, autocommit=True)
                await self._listener.execute(f"LISTEN {_WAKE_CHANNEL}")
            async for _ in self._listener.notifies(timeout=at_most, stop_after=1):
                break
        except psycopg.OperationalError:
            self._listener = None
            await asyncio.sleep(at_most)

    # -- decisions -----------------------------------------------------------------

    async def record_decisions(
        self, worker_id: str, events: Sequence[Event], decide: DecideFn
    ) -> Sequence[RecordedEvent]:
        async with self._connection() as connection:
            now = self._clock() if self._clock is not None else None
            return await record_batch(
                connection, worker_id, events, decide, now=now, lease=self._lease
            )

    @property
    def max_lanes(self) -> int:
        """Lanes run as concurrent transactions; a few pooled connections stay free
        for deliveries and renewals."""
        return max(1, self._pool.max_size - 2)

    async def decide_claimable(
        self, worker_id: str, limit: int, decide: DecideFn, *, lane: int = 0, lanes: int = 1
    ) -> DecidedClaim:
        """While its batches come full, each lane goes on from the last event it took,
        so a claim does not walk again over what it and the other lanes decided (whose
        index entries linger until vacuum). It starts again from the oldest event, for
        events stored or released behind it since (a rolled-back batch, a producer's
        late commit, an expired lease): once a batch comes short (it has caught up), at
        once when nothing is left past where it stood, and at least every
        ``_RESTART_EVERY`` batches, however long the backlog."""
        if not 0 <= lane < lanes <= self.max_lanes:
            raise ValueError(f"lane {lane} of {lanes} (at most {self.max_lanes} lanes)")
        after, since_start = self._lane_positions.get((lane, lanes), (0, 0))
        if since_start >= _RESTART_EVERY:
            after = 0
        claim, resume = await self._decide_past(worker_id, limit, decide, (lane, lanes), after)
        if after and not (claim.recorded or claim.rejected):
            after = 0
            claim, resume = await self._decide_past(worker_id, limit, decide, (lane, lanes), 0)
        self._lane_positions[lane, lanes] = (resume, since_start + 1 if after else 0)
        return claim

    async def _decide_past(
        self, worker_id: str, limit: int, decide: DecideFn, lane: tuple[int, int], after: int
    ) -> tuple[DecidedClaim, int]:
        async with self._connection() as connection:
            now = self._clock() if self._clock is not None else None
            return await claim_and_decide(
                connection, worker_id, limit, decide, now=now, lease=self._lease, lane=lane,
                after=after,
            )  # fmt: skip

    async def event_record(self, event_id: str) -> EventRecord | None:
        async with self._cursor(transaction=False) as cursor:
            await cursor.execute("SELECT * FROM events WHERE event_id = %s", (event_id,))
            row = await cursor.fetchone()
        return rowmaps.event_record(row, POSTGRES) if row else None

"""Events in, and decided: enqueue, then claim, validate, decide and record in one
transaction per batch (``decisions``), in lanes of keys that run side by side."""

from __future__ import annotations

from collections.abc import Sequence

from tidings.adapters.postgres.connection import PostgresDatabase
from tidings.adapters.postgres.decisions import claim_and_decide
from tidings.core import Event
from tidings.core.ports import DecideFn
from tidings.core.records import Backlog, DecidedClaim
from tidings.core.validation import is_valid

_WAKE_CHANNEL = "tidings_events"
"""Notified by a trigger on every insert into ``events`` (migration 0001)."""
_RESTART_EVERY = 16
"""A lane's claims start from the oldest event at least once every this many batches."""


class PostgresIntake:
    """The durable intake and the claim-and-decide transactions of each lane."""

    def __init__(self, database: PostgresDatabase) -> None:
        self._db = database
        # Where each (lane, lane count) of this runner resumes claiming, and how many
        # batches ago it last started from the oldest event.
        self._lane_positions: dict[tuple[int, int], tuple[int, int]] = {}

    @property
    def max_lanes(self) -> int:
        """Lanes run as concurrent transactions; a few pooled connections stay free
        for deliveries and renewals."""
        return max(1, self._db.pool_size - 2)

    async def enqueue(self, events: Sequence[Event]) -> int:
        async with self._db.cursor() as cursor:
            await self._db.execute(
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

    async def backlog(self) -> Backlog:
        async with self._db.cursor() as cursor:
            await self._db.execute(
                cursor,
                "SELECT (SELECT count(*) FROM events WHERE status = 'pending') AS events,"
                " (SELECT count(*) FROM deliveries WHERE status IN ('pending', 'failed')"
                " AND next_attempt_at <= {now}) AS due",
            )
            row = await cursor.fetchone()
        assert row is not None
        return Backlog(events=row["events"], due_deliveries=row["due"])

    async def wait_for_events(self, at_most: float) -> None:
        await self._db.wait_for_notify(_WAKE_CHANNEL, at_most)

    async def decide_claimable(
        self, worker_id: str, limit: int, decide: DecideFn, *, lane: int = 0, lanes: int = 1
    ) -> DecidedClaim:
        """While its batches come full, each lane goes on from the last event it took,
        so a claim does not walk again over what it and the other lanes decided (whose
        index entries linger until vacuum). It starts again from the oldest event, for
        events stored or released behind it since (a batch another runner rolled back,
        a producer's late commit): once a batch comes short (it has caught up), at once
        when nothing is left past where it stood, and at least every ``_RESTART_EVERY``
        batches, however long the backlog."""
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
        async with self._db.connection() as connection:
            now = self._db.clock() if self._db.clock is not None else None
            return await claim_and_decide(
                connection, worker_id, limit, decide, now=now, lease=self._db.lease, lane=lane,
                after=after,
            )  # fmt: skip

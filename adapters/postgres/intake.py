"""Events in, and decided: enqueue (marking the valid events, ``intake_mark``), then
claim, validate, decide and record in one transaction per batch (``claims``,
``decisions``), in lanes of keys that run side by side."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from functools import partial

from tidings.adapters.intake_mark import MARK
from tidings.adapters.postgres.claims import START, LanePosition, StaleClaim
from tidings.adapters.postgres.connection import PostgresDatabase
from tidings.adapters.postgres.decisions import claim_and_decide
from tidings.core import Channel, Event
from tidings.core.ports import DecideFn
from tidings.core.records import Backlog, DecidedClaim
from tidings.core.validation import is_valid

_WAKE_CHANNEL = "tidings_events"
"""Notified by a trigger on every insert into ``events`` (migration 0001)."""
_RESTART_EVERY = 16
"""A lane's claims start from the oldest event at least once every this many batches."""
_STALE_ATTEMPTS = 3
"""How many times in a row a claim is made again when it read events in the moment their
key changed hands (``claims.StaleClaim``): once is all it takes but for bad luck."""


class PostgresIntake:
    """The durable intake and the claim-and-decide transactions of each lane."""

    def __init__(self, database: PostgresDatabase) -> None:
        self._db = database
        # Where each (lane, lane count) of this runner resumes claiming, and the lanes
        # whose last claim found nothing: they look again without hurry (``connection``).
        self._lane_positions: dict[tuple[int, int], LanePosition] = {}
        self._idle_lanes: set[tuple[int, int]] = set()

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
                " payload_json, intake_mark, enqueued_at)"
                " SELECT i, u, k, s, t, b, p,"
                f" CASE WHEN valid THEN {MARK} END, {{now}}"
                " FROM unnest(%(ids)s::text[], %(users)s::text[], %(kinds)s::text[],"
                " %(severities)s::text[], %(titles)s::text[], %(bodies)s::text[],"
                " %(payloads)s::text[], %(valid)s::boolean[]) AS e(i, u, k, s, t, b, p, valid)"
                " ON CONFLICT (event_id) DO NOTHING",
                ids=[e.event_id for e in events],
                users=[e.user_id for e in events],
                kinds=[e.kind for e in events],
                severities=[e.severity.value for e in events],
                titles=[e.title for e in events],
                bodies=[e.body for e in events],
                payloads=[e.payload_json for e in events],
                valid=[is_valid(e) for e in events],
            )
            return cursor.rowcount

    async def backlog(self) -> Backlog:
        """One statement, one reading of the clock. Each count is an index-only scan of a
        partial index of open rows (migrations 0001 and 0008), so it costs what is open,
        however long the history: ``events_open``, whose own condition the count repeats
        word for word so that the index alone answers ('claimed', which nothing writes
        since migration 0005, is not terminal either), ``deliveries_due`` on either side
        of now, and ``digests_due``."""
        async with self._db.cursor() as cursor:
            await self._db.execute(
                cursor,
                "WITH moment AS (SELECT {now} AS now) SELECT"
                " (SELECT count(*) FROM events WHERE status IN ('pending', 'claimed')) AS events,"
                " (SELECT count(*) FROM deliveries WHERE status IN ('pending', 'failed')"
                "  AND next_attempt_at <= (SELECT now FROM moment)) AS due,"
                " (SELECT count(*) FROM deliveries WHERE status IN ('pending', 'failed')"
                "  AND next_attempt_at > (SELECT now FROM moment)) AS waiting,"
                " (SELECT count(*) FROM digests WHERE status = 'pending'"
                "  AND due_at <= (SELECT now FROM moment)) AS digests",
            )
            row = await cursor.fetchone()
        assert row is not None
        return Backlog(
            events=row["events"],
            due_deliveries=row["due"],
            due_digests=row["digests"],
            waiting_deliveries=row["waiting"],
        )

    async def wait_for_events(self, at_most: float) -> None:
        await self._db.wait_for_notify(_WAKE_CHANNEL, at_most)

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
        """While its candidates come full, each lane goes on past the last of them, so a
        claim does not walk again over what it and the other lanes decided (whose index
        entries linger until vacuum), passing over the keys it left behind (``claims``).
        It starts again from the oldest event, for events stored or released behind it
        since (a batch another runner rolled back, a producer's late commit): once its
        candidates come short (it has caught up), at once when it took nothing past
        where it stood, and at least every ``_RESTART_EVERY`` batches, however long the
        backlog."""
        if not 0 <= lane < lanes <= self.max_lanes:
            raise ValueError(f"lane {lane} of {lanes} (at most {self.max_lanes} lanes)")
        position = self._lane_positions.get((lane, lanes), START)
        if position.batches >= _RESTART_EVERY:
            position = START
        decide_from = partial(self._decide_from, worker_id, limit, decide, (lane, lanes), take=take)
        claim, resume = await decide_from(position)
        if position != START and not (claim.recorded or claim.rejected):
            claim, resume = await decide_from(START)
        self._lane_positions[lane, lanes] = resume
        if claim.recorded or claim.rejected:
            self._idle_lanes.discard((lane, lanes))
        else:
            self._idle_lanes.add((lane, lanes))
        return claim

    async def _decide_from(
        self,
        worker_id: str,
        limit: int,
        decide: DecideFn,
        lane: tuple[int, int],
        position: LanePosition,
        *,
        take: Mapping[Channel, int] | None,
    ) -> tuple[DecidedClaim, LanePosition]:
        """One claim, made again, from a fresh read, when it held an event decided in
        the moment it read it (``claims.StaleClaim``); after a few such, none."""
        for _ in range(_STALE_ATTEMPTS):
            with contextlib.suppress(StaleClaim):
                async with self._db.connection(patient=lane in self._idle_lanes) as connection:
                    now = self._db.clock() if self._db.clock is not None else None
                    return await claim_and_decide(
                        connection, worker_id, limit, decide, now=now, lease=self._db.lease,
                        lane=lane, position=position, take=take,
                    )  # fmt: skip
        return DecidedClaim(recorded=(), rejected=()), position

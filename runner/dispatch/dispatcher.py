"""The dispatch loop: claim and decide from the durable intake, deliver, settle, stop.

One way in: the store claims a batch of events, validates, decides and records them in
one transaction (``core.ports.DispatchStore.decide_claimable``), so nothing sits
claimed between transactions. Keys are split into lanes: each lane is a fixed share of
the keys whose batches are decided one transaction at a time, so each key stays in
order; lanes run in parallel where the store allows (PostgreSQL). Each lane holds at
most one batch in memory; the rest waits in the database.

Deliveries are bounded too: the runner holds at most ``deliveries_in_hand`` of each
channel (``hand``), takes that many from a batch it decides and leaves the others in
the outbox, unclaimed and due, and a second loop claims due deliveries as its hand
empties, so a long outbox waits in the database and is shared by every runner with
room. Each held delivery is sent and settled outside any transaction (``sends``)
while a third loop renews the claims in hand, first of all when the store comes back
after an outage (``gate``).

``stop()`` stops claiming (events and deliveries), hands back what has not started,
and lets the sends in flight finish within ``shutdown_grace`` while their claims are
renewed; ``stop(at_once=True)`` (the CLI's second signal) cuts them short.

With the ``retention`` setting, one more loop removes what no promise needs any more
(``core.ports.Retention``): a pass at start and every quarter of the horizon (every 10
minutes at most), a chunk at a time with a pause between chunks, and it stops between
chunks when the runner stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from functools import partial
from typing import TypeVar

from tidings.core import Plan, Policy, decide_with
from tidings.core.ports import ChannelSender, DispatchStore, Retention, StoreUnavailable
from tidings.core.records import RecordedEvent
from tidings.core.values import Channel
from tidings.runner.config import DispatchOptions
from tidings.runner.dispatch.gate import StoreGate
from tidings.runner.dispatch.hand import SENT_CHANNELS
from tidings.runner.dispatch.sends import Sends
from tidings.runner.dispatch.waiting import Arrivals, done_event, first_set
from tidings.runner.telemetry.observers import DispatchObserver, DispatchSummary, Observers, Tally

log = logging.getLogger("tidings.dispatch")

_T = TypeVar("_T")

_RETENTION_EVERY = timedelta(minutes=10)
"""How often a runner prunes at most; with a shorter horizon, every quarter of it."""
_RETENTION_PAUSE = 0.05
"""Seconds between two chunks of a pass: the drain's transactions go in between."""


class _LaneRound:
    """The lanes of one round of claims: it is over once every lane is idle at once."""

    def __init__(self, lanes: int) -> None:
        self._lanes = lanes
        self._idle = 0
        self._over = asyncio.Event()

    async def idle(self, arrived: asyncio.Event) -> bool:
        """Wait, idle, until new events may have ``arrived``; true if the round is over
        (every lane idle at once) instead."""
        self._idle += 1
        try:
            if self._idle == self._lanes:
                self._over.set()
            else:
                await first_set(self._over, arrived)
            return self._over.is_set()
        finally:
            self._idle -= 1


class Dispatcher:
    """Runs the loop against one store. ``clock`` is the runner's "now"."""

    def __init__(
        self,
        store: DispatchStore,
        senders: Mapping[Channel, ChannelSender],
        *,
        worker_id: str,
        policy: Policy = Policy(),  # noqa: B008 - frozen value
        options: DispatchOptions = DispatchOptions(),  # noqa: B008 - frozen value
        clock: Callable[[], datetime],
        jitter: Callable[[], float] = random.random,
        observers: Sequence[DispatchObserver] = (),
    ) -> None:
        self._store = store
        self._worker_id = worker_id
        self._decide = partial(decide_with, policy=policy)
        self._options = options
        self._lanes = max(1, min(options.workers, store.max_lanes))
        self._tally = Tally()
        self._observe = Observers([self._tally, *observers])
        self._gate = StoreGate()
        self._arrivals = Arrivals()
        self._sends = Sends(
            store,
            senders,
            worker_id=worker_id,
            options=options,
            clock=clock,
            jitter=jitter,
            observe=self._observe,
            gate=self._gate,
        )
        self._stopping = asyncio.Event()
        self._at_once = asyncio.Event()
        self._stopped_at: float | None = None
        self._running = False
        # The store prunes if it can (every store of tidings can; a test's may not).
        self._retention = (
            store if options.retention is not None and isinstance(store, Retention) else None
        )

    def describe(self) -> str:
        """How this loop decides, for the start-up log line."""
        return f"{self._lanes} lane{'s' if self._lanes > 1 else ''} deciding as it claims"

    def alive(self) -> bool:
        """Whether the loop is running: false before ``run``, after it, and once a
        broken part has stopped it (for health checks)."""
        return self._running

    def stop(self, *, at_once: bool = False) -> None:
        """Stop claiming events and deliveries. Deliveries in hand whose send has not
        started are handed back to the outbox at once; sends in flight get the grace
        period (``shutdown_grace``) to finish, then are cancelled and handed back, never
        counted as attempts. ``at_once`` cuts the grace period short. Call it from the
        running event loop (a signal handler added to it will do)."""
        if self._stopped_at is None:
            self._stopped_at = asyncio.get_running_loop().time()
            log.info(
                "stopping: no more claims; sends in flight get %gs to finish",
                self._options.shutdown_grace,
            )
        elif at_once and not self._at_once.is_set():
            log.info("stopping at once: cutting the sends in flight")
        self._stopping.set()
        if at_once:
            self._at_once.set()

    async def run(self, *, until_idle: bool = False) -> DispatchSummary:
        """Dispatch until ``stop()``, or with ``until_idle`` until nothing is left to do now.

        A broken store stops the run with its exception: the batch in hand rolls back
        with its transaction, so its events are claimable again at once, and the
        deliveries this run claimed are taken over when their lease expires.
        """
        self._running = True
        try:
            async with asyncio.TaskGroup() as group:
                renewing = group.create_task(self._keep_claims())
                try:
                    await self._work_until_stopped(until_idle)
                    await self._sends.wind_down(self._sends_until(), self._at_once)
                except BaseException:
                    self._sends.cancel()
                    raise
                finally:
                    renewing.cancel()
        finally:
            self._running = False
        return self._tally.summary()

    def _sends_until(self) -> float:
        """When a stopping run cuts what it still has in flight: the end of the grace
        period, less the time kept for handing back."""
        if self._stopped_at is None:
            self._stopped_at = asyncio.get_running_loop().time()
        return self._stopped_at + self._options.shutdown_grace - self._sends.reserve

    async def _work_until_stopped(self, until_idle: bool) -> None:
        """Claim and decide until stopped (or idle). Once stopped, a claim in flight gets
        what is left of the grace period (a store that does not answer can hold a call
        for a while) and is cancelled after it, or at once: its transaction rolls back."""
        task = asyncio.create_task(self._work(until_idle))
        try:
            await first_set(self._stopping, done_event(task))
            left = self._sends_until() - asyncio.get_running_loop().time()
            await first_set(self._at_once, done_event(task), at_most=max(0.0, left))
        finally:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _work(self, until_idle: bool) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self._claim_due())
            listening = group.create_task(self._listen())
            pruning = group.create_task(self._keep_retention())
            try:
                await self._feed(until_idle)
            finally:
                self._stopping.set()
                listening.cancel()
                pruning.cancel()

    async def _feed(self, until_idle: bool) -> None:
        while not self._stopping.is_set():
            arrived = self._arrivals.since()
            if await self._decide_lanes():
                continue
            if self._sends.busy:
                # A send finishing can end a run until idle, or free room in the hand:
                # look again then, or as soon as new events arrive.
                finishing = asyncio.create_task(
                    self._sends.one_finished(self._options.poll_interval)
                )
                try:
                    await first_set(arrived, done_event(finishing), self._stopping)
                finally:
                    finishing.cancel()
                continue
            if until_idle:
                backlog = await self._call(self._store.backlog)
                if backlog is None or backlog[0].empty:
                    return
            await first_set(arrived, self._stopping)

    async def _listen(self) -> None:
        """Announce every wake-up of the store's wait for events (``Arrivals``)."""
        while not self._stopping.is_set():
            await self._store.wait_for_events(self._options.poll_interval)
            self._arrivals.announce()

    async def _decide_lanes(self) -> bool:
        """Every lane at once, each claiming batch after batch. A lane that finds
        nothing looks again every poll interval while another is still busy, so a
        flood of one lane's keys never holds back the others' new events; the round
        ends once every lane finds nothing. False if none found anything. A lane that
        fails stops the others (their transactions roll back) and the run."""
        lanes_round = _LaneRound(self._lanes)
        async with asyncio.TaskGroup() as group:
            lanes = [
                group.create_task(self._drain_lane(lane, lanes_round))
                for lane in range(self._lanes)
            ]
        return any(lane.result() for lane in lanes)

    async def _drain_lane(self, lane: int, lanes_round: _LaneRound) -> bool:
        found = False
        while not self._stopping.is_set():
            arrived = self._arrivals.since()
            if await self._claim_and_decide(lane):
                found = True
            elif await lanes_round.idle(arrived):
                break
        return found

    async def _claim_and_decide(self, lane: int) -> bool:
        """Claim, decide and record in one store transaction, taking the deliveries the
        hand has room for; false if nothing was there (or the runner stopped)."""
        started = time.perf_counter()
        hand = self._sends.hand
        take = hand.reserve(self._lanes)
        try:
            claimed = await self._call(
                partial(
                    self._store.decide_claimable,
                    self._worker_id,
                    self._options.batch_size,
                    self._decide,
                    lane=lane,
                    lanes=self._lanes,
                    take=take,
                )
            )
        finally:
            hand.unreserve(take)
        if claimed is None:
            return False
        claim, asked_at = claimed
        for event_id, error in claim.rejected:
            self._observe.rejected(event_id, error)
        if claim.recorded:
            self._observe.accepted(len(claim.recorded))
            self._observe.decided(claim.recorded, time.perf_counter() - started)
            jobs = [job for decision in claim.recorded for job in decision.jobs]
            self._sends.start(jobs, asked_at)
            for channel in _left_in_outbox(claim.recorded):
                hand.want(channel, more=True)
        return bool(claim.recorded or claim.rejected)

    async def _claim_due(self) -> None:
        """Claim due deliveries (retries, and those a batch left in the outbox) as the
        hand has room: every poll interval, and whenever half a hand of a channel with
        deliveries left in the outbox is free."""
        hand = self._sends.hand
        while not self._stopping.is_set():
            await self._decide_due_digests()
            for channel in SENT_CHANNELS:
                await self._claim_due_on(channel)
            hand.room_freed.clear()
            await first_set(self._stopping, hand.room_freed, at_most=self._options.poll_interval)

    async def _decide_due_digests(self) -> None:
        """Decide the digests whose cooldown ended for keys without a new event (a
        key's next event sends its own first), and send what they plan."""
        hand = self._sends.hand
        take = hand.reserve(1)
        started = time.perf_counter()
        try:
            claimed = await self._call(
                partial(
                    self._store.decide_due_digests,
                    self._worker_id,
                    self._options.batch_size,
                    self._decide,
                    take=take,
                )
            )
        finally:
            hand.unreserve(take)
        if claimed is not None and claimed[0].recorded:
            claim, asked_at = claimed
            self._observe.decided(claim.recorded, time.perf_counter() - started)
            self._sends.start([job for digest in claim.recorded for job in digest.jobs], asked_at)
            for channel in _left_in_outbox(claim.recorded):
                hand.want(channel, more=True)

    async def _claim_due_on(self, channel: Channel) -> None:
        hand = self._sends.hand
        reserved = hand.reserve(1, (channel,))
        limit = min(reserved[channel], self._options.batch_size)
        claim = partial(self._store.claim_due_deliveries, self._worker_id, limit, channel=channel)
        try:
            claimed = await self._call(claim) if limit else None
        finally:
            hand.unreserve(reserved)
        if claimed is not None:
            jobs, asked_at = claimed
            self._sends.start(jobs, asked_at)
            hand.want(channel, more=len(jobs) == limit)

    async def _call(self, operation: Callable[[], Awaitable[_T]]) -> tuple[_T, float] | None:
        """A store call made once the store answers, and the moment it was asked (claims
        granted by it last a lease from then); None if the runner stops first."""
        loop = asyncio.get_running_loop()
        while True:
            await first_set(self._stopping, self._gate.open)
            if self._stopping.is_set():
                return None
            asked_at = loop.time()
            try:
                return await operation(), asked_at
            except StoreUnavailable as error:
                self._gate.close(error)

    async def _keep_claims(self) -> None:
        """Renew the claims in hand every third of a lease; while the store is
        unreachable, every few tenths of a second, so they are the first thing it
        hears from this runner when it is back."""
        renew_every = self._options.renew_interval
        probe_every = min(0.25, renew_every / 4)
        while True:
            if self._gate.open.is_set():
                await self._gate.closed(renew_every)
            else:
                await asyncio.sleep(probe_every)
            await self._sends.renew()

    async def _keep_retention(self) -> None:
        """Apply the retention setting until stopped: a pass now, then one every
        quarter of the horizon (at most ``_RETENTION_EVERY``). Each chunk of a pass is a
        transaction of its own, so stopping between two (or a cancelled chunk, which
        rolls back) loses nothing; a store that is unreachable ends the pass early,
        and the next one starts on time."""
        older_than = self._options.retention
        if self._retention is None or older_than is None:
            return
        every = max(1.0, min(_RETENTION_EVERY, older_than / 4).total_seconds())
        while not self._stopping.is_set():
            removed: Counter[str] = Counter()
            try:
                async for chunk in self._retention.prune(older_than):
                    removed.update(chunk)
                    await first_set(self._stopping, at_most=_RETENTION_PAUSE)
                    if self._stopping.is_set():
                        break
            except StoreUnavailable as error:
                log.warning("retention pass cut short: %s", error)
            if removed.total():
                log.info(
                    "retention removed rows older than %s: %s",
                    older_than,
                    ", ".join(f"{table} {count}" for table, count in removed.items() if count),
                )
            await first_set(self._stopping, at_most=every)


def _left_in_outbox(recorded: Sequence[RecordedEvent]) -> set[Channel]:
    """The channels of which a batch recorded more deliveries than it handed back as
    jobs: the rest wait in the outbox."""
    planned = {channel: 0 for channel in SENT_CHANNELS}
    for decision in recorded:
        if isinstance(decision.outcome, Plan):
            for channel in decision.outcome.channels:
                if channel in planned:
                    planned[channel] += 1
        for job in decision.jobs:
            planned[job.channel] -= 1
    return {channel for channel, left in planned.items() if left > 0}

"""The dispatch loop: claim and decide from the durable intake, deliver, settle.

One way in: the store claims a batch of events, validates, decides and records them in
one transaction (``core.ports.DispatchStore.decide_claimable``), so nothing sits
claimed between transactions. Keys are split into lanes: each lane is a fixed share of
the keys whose batches are decided one transaction at a time, so each key stays in
order; lanes run in parallel where the store allows (PostgreSQL). Each lane holds at
most one batch in memory; the rest waits in the database. Deliveries run as tasks
outside any transaction (record first, then deliver, then settle), bounded per
channel, and a retry loop claims deliveries whose next attempt is due.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from functools import partial
from typing import TypeVar

from tidings.core import Policy, decide_with
from tidings.core.ports import ChannelSender, DispatchStore, StoreUnavailable
from tidings.core.records import (
    ChannelFailed,
    ChannelOutcome,
    DeliveryJob,
    RecordedEvent,
    settled_status,
)
from tidings.core.retry import next_attempt_at
from tidings.core.values import Channel
from tidings.runner.config import DispatchOptions
from tidings.runner.telemetry.observers import DispatchObserver, DispatchSummary, Observers, Tally

log = logging.getLogger("tidings.dispatch")

_T = TypeVar("_T")


class _LaneRound:
    """The lanes of one round of claims: it is over once every lane is idle at once."""

    def __init__(self, lanes: int) -> None:
        self._lanes = lanes
        self._idle = 0
        self._over = asyncio.Event()

    async def idle(self, at_most: float) -> bool:
        """Wait, idle, for at most ``at_most`` seconds; true if the round is over."""
        self._idle += 1
        try:
            if self._idle == self._lanes:
                self._over.set()
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._over.wait(), at_most)
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
        self._senders = senders
        self._worker_id = worker_id
        self._decide = partial(decide_with, policy=policy)
        self._options = options
        self._clock = clock
        self._jitter = jitter
        self._lanes = max(1, min(options.workers, store.max_lanes))
        self._send_slots = {
            channel: asyncio.Semaphore(options.sends_per_channel) for channel in Channel
        }
        self._sending: set[asyncio.Task[None]] = set()
        self._tally = Tally()
        self._observe = Observers([self._tally, *observers])
        self._stopping = asyncio.Event()
        self._running = False

    def describe(self) -> str:
        """How this loop decides, for the start-up log line."""
        return f"{self._lanes} lane{'s' if self._lanes > 1 else ''} deciding as it claims"

    def alive(self) -> bool:
        """Whether the loop is running: false before ``run``, after it, and once a
        broken part has stopped it (for health checks)."""
        return self._running

    def stop(self) -> None:
        """Stop claiming new work; what was accepted is still finished."""
        self._stopping.set()

    async def run(self, *, until_idle: bool = False) -> DispatchSummary:
        """Dispatch until ``stop()``, or with ``until_idle`` until nothing is left to do now.

        A broken store stops the run with its exception: the batch in hand rolls back
        with its transaction, so its events are claimable again at once, and the
        deliveries this run claimed are taken over when their lease expires.
        """
        self._running = True
        try:
            await self._run_tasks(until_idle)
        finally:
            self._running = False
        await self._finish_sends()
        return self._tally.summary()

    async def _run_tasks(self, until_idle: bool) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self._retry_due())
            group.create_task(self._renew_claims())
            try:
                await self._feed(until_idle)
            finally:
                self._stopping.set()

    async def _feed(self, until_idle: bool) -> None:
        while not self._stopping.is_set():
            if await self._decide_lanes():
                continue
            if self._sending:
                await self._settle_down()
            elif until_idle and (await self._patiently(self._store.backlog)).empty:
                return
            else:
                await self._store.wait_for_events(self._options.poll_interval)

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
            if await self._claim_and_decide(lane):
                found = True
            elif await lanes_round.idle(self._options.poll_interval):
                break
        return found

    async def _claim_and_decide(self, lane: int) -> bool:
        """Claim, decide and record in one store transaction; false if nothing was there."""
        started = time.perf_counter()
        claim = await self._patiently(
            partial(
                self._store.decide_claimable,
                self._worker_id,
                self._options.batch_size,
                self._decide,
                lane=lane,
                lanes=self._lanes,
            )
        )
        for event_id, error in claim.rejected:
            self._observe.rejected(event_id, error)
        if claim.recorded:
            self._observe.accepted(len(claim.recorded))
            self._note(claim.recorded, time.perf_counter() - started)
        return bool(claim.recorded or claim.rejected)

    async def _settle_down(self) -> None:
        """Wait, at most a poll interval, for a send in flight to finish."""
        await asyncio.wait(
            set(self._sending),
            timeout=self._options.poll_interval,
            return_when=asyncio.FIRST_COMPLETED,
        )

    async def _pause(self, seconds: float) -> None:
        """Sleep, but wake at once when asked to stop."""
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            return

    async def _patiently(self, operation: Callable[[], Awaitable[_T]]) -> _T:
        """Run a store call, waiting out an unreachable store with capped backoff.

        Nothing is lost meanwhile: an open transaction rolls back, delivery claims not
        renewed expire and are taken over, and a worker that lost its claim is fenced
        out when it comes back.
        """
        delay = 0.1
        failing = False
        while True:
            try:
                result = await operation()
            except StoreUnavailable as error:
                if not failing:
                    log.warning("store unreachable, retrying with backoff: %s", error)
                failing = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            if failing:
                log.warning("store reachable again, resuming")
            return result

    async def _renew_claims(self) -> None:
        while not self._stopping.is_set():
            await self._pause(self._options.renew_interval)
            await self._patiently(lambda: self._store.renew_claims(self._worker_id))

    def _note(self, recorded: Sequence[RecordedEvent], seconds: float) -> None:
        self._observe.decided(recorded, seconds)
        for decision in recorded:
            for job in decision.jobs:
                self._start_send(job)

    def _start_send(self, job: DeliveryJob) -> None:
        task = asyncio.create_task(self._send(job))
        self._sending.add(task)
        task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._sending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # A sender that raises has a bug; its claim expires and the send is retried.
            log.error("delivery task failed", exc_info=task.exception())

    async def _send(self, job: DeliveryJob) -> None:
        async with self._send_slots[job.channel]:
            started = time.perf_counter()
            outcome = await self._attempt(job)
            seconds = time.perf_counter() - started
        retry_at = None
        if isinstance(outcome, ChannelFailed) and outcome.retryable:
            retry_at = next_attempt_at(
                self._clock(),
                attempts_made=job.attempts + 1,
                schedule=self._options.retry_schedule,
                jitter=self._jitter(),
                retry_after=outcome.retry_after,
            )
        settled = await self._patiently(
            lambda: self._store.settle_delivery(self._worker_id, job.delivery_id, outcome, retry_at)
        )
        status = settled_status(outcome, retry_at).value if settled else "claim_lost"
        self._observe.attempted(job, outcome, status, seconds)

    async def _attempt(self, job: DeliveryJob) -> ChannelOutcome:
        """One send, bounded in time. A sender that raises has a bug or lost its
        infrastructure: the attempt counts as a retryable failure (so a persistent
        fault ends ``dead`` instead of looping), named by type only, since exception
        texts can carry addresses or secrets."""
        try:
            async with asyncio.timeout(self._options.send_timeout):
                return await self._senders[job.channel].send(job)
        except TimeoutError:
            return ChannelFailed(
                error=f"no answer within {self._options.send_timeout:g}s", retryable=True
            )
        except Exception as error:
            log.error(
                "sender for %s raised %s on delivery %s",
                job.channel.value,
                type(error).__name__,
                job.delivery_id,
            )
            return ChannelFailed(error=f"internal error: {type(error).__name__}", retryable=True)

    async def _retry_due(self) -> None:
        # No more at once than the send slots can take: what waits for a slot holds a
        # claim another runner could be sending.
        limit = min(self._options.batch_size, self._options.sends_per_channel * len(Channel))
        while not self._stopping.is_set():
            due = await self._patiently(
                lambda: self._store.claim_due_deliveries(self._worker_id, limit)
            )
            for job in due:
                self._start_send(job)
            await self._pause(self._options.poll_interval)

    async def _finish_sends(self) -> None:
        while self._sending:
            await asyncio.gather(*list(self._sending), return_exceptions=True)

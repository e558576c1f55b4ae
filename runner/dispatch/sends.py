"""The sends of the deliveries in hand: each inside its claim, settled after, handed back
when the runner stops.

Record first, then deliver, then settle (outbox): a send runs outside any transaction,
at most ``sends_per_channel`` at once per channel, so one slow SMTP server never stalls
webhooks. A send starts and runs only while its claim is secured (``hand``): no
delivery is sent by this runner after its claim could have lapsed.

Only a real attempt counts as one. A send cut because its claim would lapse, or
stopped because the store went away (senders read the recipient from it), waits for
the store and a renewal, then starts again. An outcome whose settle finds the store
unreachable is kept and settled once it is back (the claim stays in hand, renewed
first); if the claim was lost meanwhile, the settle is fenced off (``claim_lost``).

Stopping: no send starts any more. What has not started is handed back at once
(``DispatchStore.renew_claims`` with ``release``: unclaimed, due now, attempts
unchanged) so other runners can send it; sends in flight get until the grace period
ends, then are cancelled and handed back unattempted. What the store cannot take back
within a second is left to its lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from datetime import datetime

from tidings.core.ports import ChannelSender, DispatchStore, StoreUnavailable
from tidings.core.records import ChannelFailed, ChannelOutcome, DeliveryJob, settled_status
from tidings.core.retry import next_attempt_at
from tidings.core.values import Channel
from tidings.runner.config import DispatchOptions
from tidings.runner.dispatch.gate import StoreGate
from tidings.runner.dispatch.hand import Claim, Hand
from tidings.runner.dispatch.waiting import done_event, first_set
from tidings.runner.telemetry.observers import DispatchObserver

log = logging.getLogger("tidings.dispatch")

HAND_BACK_SECONDS = 1.0
"""The longest a stopping runner waits for the store to take its claims back."""


class Sends:
    """One task per delivery in hand, from its claim to its settle."""

    def __init__(
        self,
        store: DispatchStore,
        senders: Mapping[Channel, ChannelSender],
        *,
        worker_id: str,
        options: DispatchOptions,
        clock: Callable[[], datetime],
        jitter: Callable[[], float],
        observe: DispatchObserver,
        gate: StoreGate,
    ) -> None:
        self._store = store
        self._senders = senders
        self._worker_id = worker_id
        self._options = options
        self._clock = clock
        self._jitter = jitter
        self._observe = observe
        self._gate = gate
        self.hand = Hand(
            per_channel=options.deliveries_in_hand, lease=options.lease.total_seconds()
        )
        self._slots = {channel: asyncio.Semaphore(options.sends_per_channel) for channel in Channel}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._stopping = False

    @property
    def busy(self) -> bool:
        """Whether any delivery is in hand."""
        return bool(self._tasks)

    def start(self, jobs: Iterable[DeliveryJob], asked_at: float) -> None:
        """Hold the claims of ``jobs`` (granted by a call made at ``asked_at``) and send them."""
        for job in self.hand.take(jobs, asked_at):
            task = asyncio.create_task(self._deliver(self.hand.claim(job.delivery_id)))
            self._tasks[job.delivery_id] = task
            task.add_done_callback(functools.partial(self._forget, job.delivery_id))

    def _forget(self, delivery_id: str, task: asyncio.Task[None]) -> None:
        if self._tasks.get(delivery_id) is task:
            del self._tasks[delivery_id]
        if not task.cancelled() and task.exception() is not None:
            # A bug: the claim is no longer renewed, lapses, and the send is retried.
            self.hand.drop([delivery_id])
            log.error("delivery task failed", exc_info=task.exception())

    async def one_finished(self, at_most: float) -> None:
        """Wait, at most ``at_most`` seconds, for a send to finish."""
        if self._tasks:
            await asyncio.wait(
                list(self._tasks.values()), timeout=at_most, return_when=asyncio.FIRST_COMPLETED
            )

    async def renew(self, release: Collection[str] = ()) -> bool:
        """Renew the claims in hand, handing back ``release``, in one store call; false
        (and the gate closed) when the store does not answer."""
        asked_at = asyncio.get_running_loop().time()
        handed = set(release)
        keep = [key for key in self.hand.ids() if key not in handed]
        try:
            kept = await self._store.renew_claims(self._worker_id, keep, release=release)
        except StoreUnavailable as error:
            self._gate.close(error)
            return False
        self.hand.renewed(asked_at, keep, kept)
        self._gate.reopen()
        return True

    @property
    def reserve(self) -> float:
        """The end of the grace period kept for handing back: a second, or a quarter of
        a shorter grace period."""
        return min(HAND_BACK_SECONDS, self._options.shutdown_grace / 4)

    async def wind_down(self, until: float, at_once: asyncio.Event) -> None:
        """Stop: hand back what has not started, let the sends in flight finish until
        ``until`` (or ``at_once``), then cancel them and hand them back."""
        self._stopping = True
        loop = asyncio.get_running_loop()
        if not at_once.is_set():
            await self._hand_back(self.hand.unstarted(), min(until, loop.time() + self.reserve))
            await self._finish_until(until, at_once)
        await self._hand_back(self.hand.ids(), loop.time() + self.reserve)

    def cancel(self) -> None:
        """Cancel every send (the run failed): their claims lapse with their lease."""
        for task in self._tasks.values():
            task.cancel()

    async def _finish_until(self, until: float, at_once: asyncio.Event) -> None:
        if not self._tasks:
            return
        finished = asyncio.create_task(self._all_finished())
        try:
            at_most = max(0.0, until - asyncio.get_running_loop().time())
            await first_set(at_once, done_event(finished), at_most=at_most)
        finally:
            finished.cancel()

    async def _all_finished(self) -> None:
        while self._tasks:
            await asyncio.wait(list(self._tasks.values()))

    async def _hand_back(self, delivery_ids: list[str], until: float) -> None:
        """Cancel these deliveries' tasks and hand their claims back, waiting for the
        store until ``until`` at most; what it does not take back is left to its lease."""
        if not delivery_ids:
            return
        await _cancelled([self._tasks[key] for key in delivery_ids if key in self._tasks])
        handed = False
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout_at(max(until, asyncio.get_running_loop().time() + 0.1)):
                handed = await self.renew(release=delivery_ids)
        self.hand.drop(delivery_ids)
        if handed:
            log.info("handed back %d deliveries not sent", len(delivery_ids))
        else:
            log.warning(
                "could not hand back %d deliveries: other runners take them over when"
                " their lease ends",
                len(delivery_ids),
            )

    async def _deliver(self, claim: Claim) -> None:
        job = claim.job
        async with self._slots[job.channel]:
            sent = await self._send(claim)
        if sent is None:
            if claim.lost:
                self.hand.drop([job.delivery_id])
            return
        outcome, seconds = sent
        await self._settle(job, outcome, seconds)
        self.hand.drop([job.delivery_id])

    async def _send(self, claim: Claim) -> tuple[ChannelOutcome, float] | None:
        """Send once the store answers and the claim allows; None if the claim is lost
        or the runner stops before a send could start."""
        loop = asyncio.get_running_loop()
        while True:
            await self._gate.open.wait()
            if claim.lost or self._stopping:
                return None
            if not self.hand.sendable(claim, loop.time()):
                await self.hand.next_renewal()
                continue
            started = time.perf_counter()
            outcome = await self._attempt(claim)
            if outcome is not None:
                return outcome, time.perf_counter() - started

    async def _attempt(self, claim: Claim) -> ChannelOutcome | None:
        """One send, bounded by its timeout and by its claim. A sender that raises has a
        bug or lost its infrastructure: the attempt counts as a retryable failure (so a
        persistent fault ends ``dead`` instead of looping), named by type only, since
        exception texts can carry addresses or secrets. None when it was no attempt:
        cut before its claim could lapse, or the store went away."""
        job = claim.job
        claim.give_up_at = asyncio.get_running_loop().time() + self._options.send_timeout
        claim.started = True
        cut = asyncio.timeout_at(self.hand.cut_at(claim))
        try:
            async with cut:
                claim.cut = cut
                return await self._senders[job.channel].send(job)
        except TimeoutError:
            if cut.expired() and (cut.when() or 0.0) < claim.give_up_at:
                log.warning("delivery %s: send cut before its claim could lapse", job.delivery_id)
                claim.started = False
                return None
            return ChannelFailed(
                error=f"no answer within {self._options.send_timeout:g}s", retryable=True
            )
        except StoreUnavailable as error:
            self._gate.close(error)
            claim.started = False
            return None
        except Exception as error:
            log.error(
                "sender for %s raised %s on delivery %s",
                job.channel.value,
                type(error).__name__,
                job.delivery_id,
            )
            return ChannelFailed(error=f"internal error: {type(error).__name__}", retryable=True)
        finally:
            claim.cut = None

    async def _settle(self, job: DeliveryJob, outcome: ChannelOutcome, seconds: float) -> None:
        retry_at = None
        if isinstance(outcome, ChannelFailed) and outcome.retryable:
            retry_at = next_attempt_at(
                self._clock(),
                attempts_made=job.attempts + 1,
                schedule=self._options.retry_schedule,
                jitter=self._jitter(),
                retry_after=outcome.retry_after,
            )
        settled = await self._gate.patiently(
            lambda: self._store.settle_delivery(self._worker_id, job.delivery_id, outcome, retry_at)
        )
        status = settled_status(outcome, retry_at).value if settled else "claim_lost"
        self._observe.attempted(job, outcome, status, seconds)


async def _cancelled(tasks: Collection[asyncio.Task[None]]) -> None:
    """Cancel ``tasks`` and wait until they are done, cancelling again any that is slow
    to end: an SMTP client cancelled mid-message says QUIT and waits for the answer,
    which a slow server gives only after the message's."""
    pending = set(tasks)
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.05)

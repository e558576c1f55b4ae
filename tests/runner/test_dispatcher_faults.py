"""The dispatcher under faults, in one process on the in-memory store with real time:
a bounded hand, a graceful stop (and one at once), and a store that goes away while
deliveries are in flight.

The store's leases run on the wall clock here, as a database's do, so a claim really
lapses while the store is away; the processes and PostgreSQL versions of these are in
tests/adapters/test_postgres_shutdown.py and tests/adapters/test_postgres_restarts.py.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence, Set
from datetime import datetime, timedelta

import attrs

from tidings.adapters.memory import MemoryStore
from tidings.core import Channel, Event, Policy, Severity
from tidings.core.ports import DecideFn, StoreUnavailable
from tidings.core.records import (
    ChannelOutcome,
    DecidedClaim,
    Delivered,
    DeliveryJob,
    DeliveryRecord,
    DeliveryStatus,
)
from tidings.runner.clock import system_clock
from tidings.runner.dispatch import Dispatcher, DispatchOptions
from tidings.runner.dispatch.senders import default_senders

EMAIL_TOO = Policy(default_channels=(Channel.IN_APP, Channel.EMAIL))


def events(count: int) -> list[Event]:
    return [
        Event(event_id=f"e{n}", user_id=f"u{n}", kind="overload", severity=Severity.WATCH,
              title="T", body="B")
        for n in range(count)
    ]  # fmt: skip


class SlowServer:
    """An email server that takes ``seconds`` per message (the first ``slow`` messages;
    the others are instant), noting when each send started, was accepted or was cut."""

    def __init__(self, seconds: float, *, slow: int = 1_000_000) -> None:
        self.seconds = seconds
        self.slow = slow
        self.started: list[tuple[str, float]] = []
        self.accepted: list[str] = []
        self.cut: list[tuple[str, float]] = []

    async def send(self, job: DeliveryJob) -> ChannelOutcome:
        self.started.append((job.delivery_id, time.monotonic()))
        try:
            if len(self.started) <= self.slow:
                await asyncio.sleep(self.seconds)
        except asyncio.CancelledError:
            self.cut.append((job.delivery_id, time.monotonic()))
            raise
        self.accepted.append(job.delivery_id)
        return Delivered()


class FlakyStore(MemoryStore):
    """The memory store on the wall clock, unreachable while ``down``. It notes each
    dispatch call (after an outage, which comes first), when each claim or renewal was
    granted, and the most deliveries of each channel a worker held claimed at once."""

    def __init__(self, lease: timedelta) -> None:
        super().__init__(clock=system_clock, lease=lease)
        self.down = False
        self.calls: list[tuple[str, bool]] = []
        self.granted_at: list[float] = []
        self._held: dict[str, DeliveryJob] = {}
        self.most_held: Counter[Channel] = Counter()

    def _reach(self, name: str) -> None:
        self.calls.append((name, self.down))
        if self.down:
            raise StoreUnavailable("the test took the store away")

    def _hold(self, jobs: Sequence[DeliveryJob]) -> None:
        self.granted_at.append(time.monotonic())
        self._held.update({job.delivery_id: job for job in jobs})
        held = Counter(job.channel for job in self._held.values())
        for channel, count in held.items():
            self.most_held[channel] = max(self.most_held[channel], count)

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
        self._reach("decide")
        claim = await super().decide_claimable(
            worker_id, limit, decide, lane=lane, lanes=lanes, take=take
        )
        self._hold([job for recorded in claim.recorded for job in recorded.jobs])
        return claim

    async def claim_due_deliveries(
        self, worker_id: str, limit: int, *, channel: Channel | None = None
    ) -> Sequence[DeliveryJob]:
        self._reach("claim_due")
        jobs = await super().claim_due_deliveries(worker_id, limit, channel=channel)
        self._hold(jobs)
        return jobs

    async def settle_delivery(
        self, worker_id: str, delivery_id: str, outcome: ChannelOutcome, retry_at: datetime | None
    ) -> bool:
        self._reach("settle")
        self._held.pop(delivery_id, None)
        return await super().settle_delivery(worker_id, delivery_id, outcome, retry_at)

    async def renew_claims(
        self, worker_id: str, keep: Collection[str], *, release: Collection[str] = ()
    ) -> Set[str]:
        self._reach("renew")
        for delivery_id in release:
            self._held.pop(delivery_id, None)
        self.granted_at.append(time.monotonic())
        return await super().renew_claims(worker_id, keep, release=release)

    async def wait_for_events(self, at_most: float) -> None:
        await asyncio.sleep(min(at_most, 0.01))


def dispatcher(
    store: MemoryStore, server: object, *, worker_id: str = "w", **options: object
) -> Dispatcher:
    chosen = {"poll_interval": 0.01, "sends_per_channel": 2, "deliveries_in_hand": 4, **options}
    return Dispatcher(
        store,
        {**default_senders(), Channel.EMAIL: server},  # type: ignore[dict-item]
        worker_id=worker_id,
        policy=EMAIL_TOO,
        options=DispatchOptions(**chosen),  # type: ignore[arg-type]
        clock=system_clock,
    )


async def emails(store: MemoryStore) -> list[DeliveryRecord]:
    return [d for d in await store.deliveries(limit=10_000) if d.channel is Channel.EMAIL]


async def until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        await asyncio.sleep(0.005)


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(scenario())  # type: ignore[arg-type]


# -- a bounded hand ------------------------------------------------------------------


def test_runners_hold_a_bounded_hand_and_share_the_outbox() -> None:
    store = FlakyStore(lease=timedelta(seconds=10))
    servers = [SlowServer(0.01), SlowServer(0.01)]

    async def scenario() -> None:
        await store.enqueue(events(60))
        first = dispatcher(store, servers[0], worker_id="w1", workers=1)
        second = dispatcher(store, servers[1], worker_id="w2", workers=1)
        await asyncio.gather(first.run(until_idle=True), second.run(until_idle=True))

    run(scenario)
    sent = [d for d in asyncio.run(emails(store))]
    assert len(sent) == 60
    assert {(d.status, d.attempts) for d in sent} == {(DeliveryStatus.DELIVERED, 1)}
    assert store.most_held[Channel.EMAIL] <= 4 * 2  # two runners, four each
    assert all(server.accepted for server in servers)  # the second found the outbox
    assert sum(len(server.accepted) for server in servers) == 60


# -- stopping --------------------------------------------------------------------------


def test_a_stop_finishes_the_sends_in_flight_and_hands_back_the_rest() -> None:
    store = FlakyStore(lease=timedelta(seconds=10))
    server = SlowServer(0.3)

    async def scenario() -> None:
        await store.enqueue(events(10))
        running = dispatcher(store, server, shutdown_grace=5.0)
        task = asyncio.create_task(running.run())
        await until(lambda: len(server.started) == 2)
        stopped = time.monotonic()
        running.stop()
        summary = await task
        assert time.monotonic() - stopped < 1.0
        assert summary.deliveries == {"in_app:delivered": 10, "email:delivered": 2}
        assert len(server.started) == 2  # nothing started after the stop
        handed_back = await store.claim_due_deliveries("other", 100)  # at once: no lease
        assert len(handed_back) == 8
        assert {job.attempts for job in handed_back} == {0}

    run(scenario)
    assert len(server.accepted) == 2


def test_sends_still_running_when_the_grace_ends_are_cut_and_handed_back() -> None:
    store = FlakyStore(lease=timedelta(seconds=10))
    server = SlowServer(60)

    async def scenario() -> None:
        await store.enqueue(events(10))
        running = dispatcher(store, server, shutdown_grace=0.4)
        task = asyncio.create_task(running.run())
        await until(lambda: len(server.started) == 2)
        stopped = time.monotonic()
        running.stop()
        summary = await task
        assert time.monotonic() - stopped < 0.6
        assert "email:failed" not in summary.deliveries  # a cut send is no attempt
        assert {(d.status, d.attempts) for d in await emails(store)} == {
            (DeliveryStatus.PENDING, 0)
        }
        assert len(await store.claim_due_deliveries("other", 100)) == 10

    run(scenario)
    assert len(server.cut) == 2


def test_a_stop_at_once_cuts_the_grace_short() -> None:
    store = FlakyStore(lease=timedelta(seconds=10))
    server = SlowServer(60)

    async def scenario() -> None:
        await store.enqueue(events(10))
        running = dispatcher(store, server, shutdown_grace=30.0)
        task = asyncio.create_task(running.run())
        await until(lambda: len(server.started) == 2)
        running.stop()
        await asyncio.sleep(0.2)
        assert not task.done()  # in the grace period
        again = time.monotonic()
        running.stop(at_once=True)
        await task
        assert time.monotonic() - again < 0.3
        assert len(await store.claim_due_deliveries("other", 100)) == 10

    run(scenario)


# -- the store goes away ---------------------------------------------------------------

LEASE = timedelta(seconds=0.6)


def test_a_send_is_cut_before_its_claim_lapses_and_resent_after_the_outage() -> None:
    store = FlakyStore(lease=LEASE)
    server = SlowServer(5.0, slow=1)  # the first send hangs; the retry is instant

    async def scenario() -> None:
        await store.enqueue(events(1))
        running = dispatcher(store, server, lease=LEASE)
        task = asyncio.create_task(running.run(until_idle=True))
        await until(lambda: len(server.started) == 1)
        store.down = True
        await until(lambda: len(server.cut) == 1)
        await asyncio.sleep(LEASE.total_seconds() * 2)  # the claim lapsed in the store
        assert len(server.started) == 1  # no send starts on an unsecured claim
        came_back = len(store.calls)
        store.down = False
        await task
        assert store.calls[came_back][0] == "renew"  # claims first

    run(scenario)
    [(_, cut_at)] = server.cut
    last_granted = max(at for at in store.granted_at if at < cut_at)
    assert cut_at < last_granted + LEASE.total_seconds()  # before any other runner could
    [sent] = asyncio.run(emails(store))
    assert (sent.status, sent.attempts, sent.last_error) == (DeliveryStatus.DELIVERED, 1, None)
    assert len(server.accepted) == 1


class OutageWhileSending:
    """An email server that accepts the message while the store is away: the outcome
    must wait for the store, and count once."""

    def __init__(self, store: FlakyStore) -> None:
        self.store = store
        self.accepted = 0

    async def send(self, job: DeliveryJob) -> ChannelOutcome:
        self.store.down = True
        self.accepted += 1
        asyncio.get_running_loop().call_later(0.3, setattr, self.store, "down", False)
        return Delivered()


def test_an_outcome_is_settled_once_the_store_is_back() -> None:
    store = FlakyStore(lease=LEASE)
    server = OutageWhileSending(store)

    async def scenario() -> None:
        await store.enqueue(events(1))
        await dispatcher(store, server, lease=LEASE).run(until_idle=True)

    run(scenario)
    assert server.accepted == 1
    [sent] = asyncio.run(emails(store))
    assert (sent.status, sent.attempts) == (DeliveryStatus.DELIVERED, 1)
    back = next(n for n, (_, down) in enumerate(store.calls) if n and store.calls[n - 1][1])
    assert store.calls[back][0] == "renew"


@attrs.define
class LookupFails:
    """A sender whose recipient lookup finds the store unreachable the first time."""

    calls: int = 0

    async def send(self, job: DeliveryJob) -> ChannelOutcome:
        self.calls += 1
        if self.calls == 1:
            raise StoreUnavailable("recipient lookup: connection refused")
        return Delivered()


def test_a_store_outage_inside_a_sender_is_no_attempt() -> None:
    store = FlakyStore(lease=LEASE)
    server = LookupFails()

    async def scenario() -> None:
        await store.enqueue(events(1))
        await dispatcher(store, server, lease=LEASE).run(until_idle=True)

    run(scenario)
    [sent] = asyncio.run(emails(store))
    assert (sent.status, sent.attempts, sent.last_error) == (DeliveryStatus.DELIVERED, 1, None)
    assert server.calls == 2

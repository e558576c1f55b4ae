"""Deliveries through the dispatcher: retries on schedule, dead at the end, senders that
misbehave (raise, hang) counted as failed attempts instead of looping forever, and work
in hand bounded by the batch size."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from tidings.adapters.memory import MemoryStore
from tidings.core import Channel, Event, Preference, Severity
from tidings.core.ports import ChannelSender
from tidings.core.records import (
    ChannelOutcome,
    Delivered,
    DeliveryJob,
    DeliveryStatus,
    RecordedEvent,
)
from tidings.runner.dispatch import Dispatcher, DispatchOptions
from tidings.runner.dispatch.senders import default_senders
from tidings.runner.telemetry.observers import Tally
from tidings.testing import FakeClock

SCHEDULE = (timedelta(seconds=5), timedelta(seconds=10))


START = datetime(2026, 1, 1, tzinfo=UTC)


class RaisingSender:
    """A sender with a bug."""

    async def send(self, job: DeliveryJob) -> ChannelOutcome:
        raise KeyError("secret-looking detail")


class HangingSender:
    """A sender whose server never answers."""

    async def send(self, job: DeliveryJob) -> ChannelOutcome:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")


def drain_until_dead(sender: ChannelSender) -> list[tuple[DeliveryStatus, int, str | None]]:
    clock = FakeClock(START)
    store = MemoryStore(clock=clock)
    senders = {**default_senders(), Channel.EMAIL: sender}
    history = []

    async def scenario() -> None:
        await store.set_preference("ana", "overload", Preference(("email",), Severity.INFO))
        event = Event(
            event_id="e1",
            user_id="ana",
            kind="overload",
            severity=Severity.WATCH,
            title="t",
            body="b",
        )
        await store.enqueue([event])
        options = DispatchOptions(retry_schedule=SCHEDULE, poll_interval=0.01, send_timeout=0.05)
        for _ in range(3):
            dispatcher = Dispatcher(store, senders, worker_id="w", options=options, clock=clock)
            await dispatcher.run(until_idle=True)
            [delivery] = await store.deliveries()
            history.append((delivery.status, delivery.attempts, delivery.last_error))
            clock.advance(timedelta(seconds=15))

    asyncio.run(scenario())
    return history


def test_a_raising_sender_fails_attempts_until_dead_without_leaking_its_message() -> None:
    history = drain_until_dead(RaisingSender())
    assert [(status, attempts) for status, attempts, _ in history] == [
        (DeliveryStatus.FAILED, 1),
        (DeliveryStatus.FAILED, 2),
        (DeliveryStatus.DEAD, 3),
    ]
    assert {note for _, _, note in history} == {"internal error: KeyError"}


def test_a_hanging_sender_times_out_as_a_retryable_failure() -> None:
    history = drain_until_dead(HangingSender())
    assert history[-1][:2] == (DeliveryStatus.DEAD, 3)
    assert history[0][2] == "no answer within 0.05s"


class BatchWatcher(Tally):
    """The run's tally, plus the largest batch of decisions ever held at once."""

    def __init__(self) -> None:
        super().__init__()
        self.largest = 0

    def decided(self, batch: Sequence[RecordedEvent], seconds: float) -> None:
        super().decided(batch, seconds)
        self.largest = max(self.largest, len(batch))


def test_work_in_hand_never_exceeds_a_batch_per_lane() -> None:
    clock = FakeClock(START)
    store = MemoryStore(clock=clock)
    watcher = BatchWatcher()

    async def scenario() -> None:
        await store.enqueue(
            [
                Event(event_id=f"e{n}", user_id=f"u{n % 7}", kind="k",
                      severity=Severity.INFO, title="t", body="b")
                for n in range(60)
            ]
        )  # fmt: skip
        options = DispatchOptions(batch_size=3, workers=2, poll_interval=0.01)
        dispatcher = Dispatcher(
            store, default_senders(), worker_id="w", options=options, clock=clock,
            observers=[watcher],
        )  # fmt: skip
        summary = await dispatcher.run(until_idle=True)
        assert summary.notified + sum(summary.skipped.values()) == 60

    asyncio.run(scenario())
    assert watcher.largest == 3
    assert watcher.notified == 7


class StalledSender:
    """An email server that accepts nothing until the test lets it."""

    def __init__(self) -> None:
        self.release = asyncio.Event()

    async def send(self, job: DeliveryJob) -> ChannelOutcome:
        await self.release.wait()
        return Delivered()


class InstantSender:
    async def send(self, job: DeliveryJob) -> ChannelOutcome:
        return Delivered()


def test_a_stalled_channel_never_holds_up_another() -> None:
    clock = FakeClock(START)
    store = MemoryStore(clock=clock)
    email = StalledSender()

    async def scenario() -> None:
        both = Preference(("email", "webhook"), Severity.INFO)
        for user in ("ana", "ben"):
            await store.set_preference(user, "overload", both)
        await store.enqueue(
            [
                Event(event_id=f"e-{user}", user_id=user, kind="overload",
                      severity=Severity.WATCH, title="t", body="b")
                for user in ("ana", "ben")
            ]
        )  # fmt: skip
        senders = {**default_senders(), Channel.EMAIL: email, Channel.WEBHOOK: InstantSender()}
        options = DispatchOptions(poll_interval=0.01)
        dispatcher = Dispatcher(store, senders, worker_id="w", options=options, clock=clock)
        run = asyncio.create_task(dispatcher.run(until_idle=True))
        for _ in range(500):
            statuses = {(d.channel, d.status) for d in await store.deliveries()}
            if (Channel.WEBHOOK, DeliveryStatus.DELIVERED) in statuses:
                break
            await asyncio.sleep(0.01)
        webhooks = [d for d in await store.deliveries() if d.channel is Channel.WEBHOOK]
        mails = [d for d in await store.deliveries() if d.channel is Channel.EMAIL]
        assert {d.status for d in webhooks} == {DeliveryStatus.DELIVERED}
        assert {d.status for d in mails} == {DeliveryStatus.PENDING}  # still in flight
        email.release.set()
        await run
        assert {d.status for d in await store.deliveries()} == {DeliveryStatus.DELIVERED}

    asyncio.run(scenario())

"""The store contract: one suite, run against every store (see ``conftest.STORE_FACTORIES``).

It states what the runner relies on from ``core.ports.Store``: the durable intake,
claiming and deciding in one transaction (lanes and concurrency: ``test_claim_deciding``),
decisions recorded atomically with their cooldown, the delivery outbox with its leases,
fencing and retries, the inbox, preferences, recipients, history and the schema's
status. Each test drives a store through its ports only and checks the end state
through its ports only.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import partial

import attrs
import pytest
from returns.result import Result

from tests.adapters.conftest import LEASE, START
from tidings.adapters.migrations import load_migrations
from tidings.core import (
    GLOBAL_KIND,
    Channel,
    Event,
    Plan,
    Policy,
    Preference,
    PreferenceSource,
    Severity,
    Skip,
    SkipReason,
    decide_with,
    explain,
)
from tidings.core.decision import DecisionInputs
from tidings.core.ports import DecideFn, Store
from tidings.core.records import (
    Backlog,
    ChannelFailed,
    ChannelSkipped,
    DecidedClaim,
    Delivered,
    DeliveryJob,
    DeliveryRecord,
    DeliveryStatus,
    EventStatus,
    Notification,
    Recipient,
    RecipientChange,
    RecordedEvent,
)
from tidings.core.validation import MAX_BODY_BYTES
from tidings.testing import FakeClock

DECIDE: DecideFn = partial(decide_with, policy=Policy())
COOLDOWN = Policy().cooldown
W1 = "worker-1"
W2 = "worker-2"
W3 = "worker-3"
USER = "u42"
KIND = "burnout_overload"
ALL_CHANNELS = Preference(("in_app", "email", "webhook"), Severity.INFO)


def make_event(
    event_id: str,
    *,
    user_id: str = USER,
    kind: str = KIND,
    severity: Severity = Severity.WATCH,
    title: str = "Overload threshold crossed",
    body: str = "Your load went over 80% this week.",
    payload_json: str | None = None,
) -> Event:
    return Event(
        event_id=event_id,
        user_id=user_id,
        kind=kind,
        severity=severity,
        title=title,
        body=body,
        payload_json=payload_json,
    )


async def decide(
    store: Store, worker_id: str = W1, limit: int = 100, *, lane: int = 0, lanes: int = 1
) -> DecidedClaim:
    """One claim-and-decide transaction, as the runner makes it."""
    return await store.decide_claimable(worker_id, limit, DECIDE, lane=lane, lanes=lanes)


async def submit(store: Store, events: Sequence[Event], worker_id: str = W1) -> list[RecordedEvent]:
    """Enqueue ``events`` and decide them (nothing else may be open in the store)."""
    assert await store.enqueue(events) == len(events)
    claim = await decide(store, worker_id)
    assert claim.rejected == ()
    assert [r.event_id for r in claim.recorded] == [e.event_id for e in events]
    return list(claim.recorded)


async def submit_one(store: Store, event: Event, worker_id: str = W1) -> RecordedEvent:
    [recorded] = await submit(store, [event], worker_id)
    return recorded


async def delivery(store: Store, delivery_id: str) -> DeliveryRecord:
    [found] = [d for d in await store.deliveries(limit=1000) if d.delivery_id == delivery_id]
    return found


async def notification(store: Store, user_id: str, notification_id: str) -> Notification:
    [found] = [n for n in await store.inbox(user_id, limit=1000) if n.id == notification_id]
    return found


async def only_job(
    store: Store, channel: Channel = Channel.EMAIL
) -> tuple[RecordedEvent, DeliveryJob]:
    """Record one event whose plan is in-app plus ``channel``; returns it and its job."""
    await store.set_preference(USER, KIND, Preference(("in_app", channel.value), Severity.INFO))
    recorded = await submit_one(store, make_event("e1"))
    [job] = recorded.jobs
    return recorded, job


# -- schema --------------------------------------------------------------------------


def test_migrate_again_applies_nothing_and_keeps_data(store: Store, loop: asyncio.Runner) -> None:
    async def scenario() -> None:
        await store.enqueue([make_event("e1")])
        await store.set_preference(USER, KIND, ALL_CHANNELS)

        assert await store.migrate() == 0
        assert await store.migrate() == 0
        assert await store.pending_migrations() == 0

        record = await store.event_record("e1")
        assert record is not None
        assert record.status is EventStatus.PENDING
        assert await store.preferences(USER) == {KIND: ALL_CHANNELS}

    loop.run(scenario())


MIGRATIONS = {
    "memory": 0,
    "sqlite": len(load_migrations("tidings.adapters.sqlite")),
    "postgres": len(load_migrations("tidings.adapters.postgres")),
}
"""How many migrations an empty database of each backend lacks."""


def test_pending_migrations_counts_what_migrate_would_apply(
    unmigrated_store: tuple[str, Store], loop: asyncio.Runner
) -> None:
    backend, store = unmigrated_store

    async def scenario() -> None:
        assert await store.pending_migrations() == MIGRATIONS[backend]
        assert await store.pending_migrations() == MIGRATIONS[backend]  # looking changed nothing

        assert await store.migrate() == MIGRATIONS[backend]

        assert await store.pending_migrations() == 0

    assert MIGRATIONS["sqlite"] > 0 and MIGRATIONS["postgres"] > 0
    loop.run(scenario())


# -- intake: claimed and decided in one transaction -----------------------------------


def test_enqueue_counts_new_events_and_ignores_known_ids(
    store: Store, loop: asyncio.Runner
) -> None:
    async def scenario() -> None:
        first = make_event("e1", title="first title")
        assert await store.enqueue([first, make_event("e2"), first]) == 2
        assert await store.enqueue([make_event("e1", title="second title"), make_event("e3")]) == 1
        assert await store.enqueue([]) == 0
        assert (await store.backlog()).events == 3

        claim = await decide(store)

        assert [r.event_id for r in claim.recorded] == ["e1", "e2", "e3"]
        record = await store.event_record("e1")
        assert record is not None
        assert record.title == "first title"
        [entry] = await store.inbox(USER)
        assert (entry.event_id, entry.title) == ("e1", "first title")

    loop.run(scenario())


def test_enqueue_of_a_decided_event_id_does_not_reopen_it(
    store: Store, loop: asyncio.Runner
) -> None:
    async def scenario() -> None:
        recorded = await submit_one(store, make_event("e1"))

        assert await store.enqueue([make_event("e1", title="again")]) == 0

        assert await decide(store) == DecidedClaim(recorded=(), rejected=())
        record = await store.event_record("e1")
        assert record is not None
        assert record.status is EventStatus.NOTIFIED
        assert record.title == "Overload threshold crossed"
        assert record.notification_id == recorded.notification_id
        assert await store.backlog() == Backlog(events=0, due_deliveries=0)

    loop.run(scenario())


def test_pending_event_record(store: Store, loop: asyncio.Runner, clock: FakeClock) -> None:
    async def scenario() -> None:
        await store.enqueue([make_event("e1", severity=Severity.CRITICAL)])

        record = await store.event_record("e1")
        assert record is not None
        assert (record.event_id, record.user_id, record.kind) == ("e1", USER, KIND)
        assert record.severity == "critical"
        assert record.title == "Overload threshold crossed"
        assert record.status is EventStatus.PENDING
        assert record.enqueued_at == clock()
        assert record.outcome is None
        assert record.explanation is None
        assert record.error is None
        assert record.decided_at is None
        assert record.notification_id is None

    loop.run(scenario())


def test_event_record_of_unknown_id_is_none(store: Store, loop: asyncio.Runner) -> None:
    async def scenario() -> None:
        await store.enqueue([make_event("e1")])
        assert await store.event_record("nope") is None

    loop.run(scenario())


def test_decide_takes_the_oldest_first_with_fields_that_round_trip(
    store: Store, loop: asyncio.Runner, clock: FakeClock
) -> None:
    with_payload = make_event(
        "e1",
        severity=Severity.CRITICAL,
        payload_json='{"load":0.93,"threshold":0.8,"team":["a","b"],"note":"é"}',
    )
    without_payload = make_event("e2", user_id="u7", kind="other_kind", severity=Severity.INFO)
    later = make_event("e0", kind="third_kind", title="enqueued last, id sorts first")

    async def scenario() -> None:
        await store.enqueue([with_payload, without_payload])
        clock.advance(timedelta(seconds=1))
        await store.enqueue([later])

        claim = await decide(store)

        assert [r.event_id for r in claim.recorded] == ["e1", "e2", "e0"]
        notified = {n.event_id: n for user in (USER, "u7") for n in await store.inbox(user)}
        for event in (with_payload, without_payload, later):
            entry = notified[event.event_id]
            assert (entry.user_id, entry.kind, entry.severity) == (
                event.user_id,
                event.kind,
                event.severity,
            )
            assert (entry.title, entry.body, entry.payload_json) == (
                event.title,
                event.body,
                event.payload_json,
            )

    loop.run(scenario())


def failing_on(event_id: str) -> DecideFn:
    """The decision, with a bug that raises on ``event_id``."""

    def decide_or_raise(
        event: Event, inputs: DecisionInputs, now: datetime, /
    ) -> Result[Plan, Skip]:
        if event.event_id == event_id:
            raise RuntimeError("a bug in the decision")
        return DECIDE(event, inputs, now)

    return decide_or_raise


def test_a_claim_whose_transaction_fails_leaves_every_event_pending(
    store: Store, loop: asyncio.Runner
) -> None:
    """Claiming, rejecting and deciding are one transaction: when it fails nothing of
    it remains (no rejection, no notification, no delivery), and the events are
    claimable again at once by anyone."""

    async def scenario() -> None:
        await store.set_preference(USER, KIND, ALL_CHANNELS)
        events = [
            make_event("e1"),
            make_event("bad", title="", kind="k2"),
            make_event("e2", kind="k3"),
        ]
        await store.enqueue(events)

        with pytest.raises(RuntimeError, match="a bug in the decision"):
            await store.decide_claimable(W1, 10, failing_on("e2"))

        for event in events:
            record = await store.event_record(event.event_id)
            assert record is not None
            assert (record.status, record.outcome, record.error) == (
                EventStatus.PENDING,
                None,
                None,
            )
        assert await store.backlog() == Backlog(events=3, due_deliveries=0)
        assert await store.inbox(USER) == []
        assert await store.deliveries() == []

        claim = await decide(store, W2)
        assert [r.event_id for r in claim.recorded] == ["e1", "e2"]
        assert [event_id for event_id, _ in claim.rejected] == ["bad"]
        assert len(await store.deliveries(DeliveryStatus.PENDING)) == 2  # e1's email, webhook

    loop.run(scenario())


def test_decided_events_are_never_claimed_again(
    store: Store, loop: asyncio.Runner, clock: FakeClock
) -> None:
    async def scenario() -> None:
        await submit(store, [make_event("e1"), make_event("e2", kind="other_kind")])
        clock.advance(LEASE * 3)

        assert await decide(store, W2) == DecidedClaim(recorded=(), rejected=())

    loop.run(scenario())


def test_backlog_counts_events_not_terminal(store: Store, loop: asyncio.Runner) -> None:
    async def scenario() -> None:
        assert await store.backlog() == Backlog(events=0, due_deliveries=0)
        await store.enqueue(
            [
                make_event("e1"),
                make_event("e2", kind="second"),
                make_event("e3", title=""),
                make_event("e4", kind="fourth"),
            ]
        )
        assert (await store.backlog()).events == 4

        claim = await decide(store, limit=3)
        assert [r.event_id for r in claim.recorded] == ["e1", "e2"]
        assert [event_id for event_id, _ in claim.rejected] == ["e3"]
        assert await store.backlog() == Backlog(events=1, due_deliveries=0)

        await decide(store)
        assert await store.backlog() == Backlog(events=0, due_deliveries=0)

    loop.run(scenario())


def test_renew_claims_extends_only_the_workers_own_delivery_leases(
    store: Store, loop: asyncio.Runner, clock: FakeClock
) -> None:
    async def scenario() -> None:
        await store.set_preference(USER, KIND, ALL_CHANNELS)
        await store.set_preference("u7", KIND, ALL_CHANNELS)
        mine = await submit_one(store, make_event("e1"), W1)
        theirs = await submit_one(store, make_event("e2", user_id="u7"), W2)

        clock.advance(LEASE - timedelta(seconds=1))
        everything = [job.delivery_id for job in (*mine.jobs, *theirs.jobs)]
        assert await store.renew_claims(W1, everything) == {job.delivery_id for job in mine.jobs}
        clock.advance(timedelta(seconds=2))

        assert {job.delivery_id for job in await store.claim_due_deliveries(W3, 10)} == {
            job.delivery_id for job in theirs.jobs
        }
        clock.advance(LEASE - timedelta(seconds=1))  # the renewal ran out; W3's claims live
        assert {job.delivery_id for job in await store.claim_due_deliveries(W2, 10)} == {
            job.delivery_id for job in mine.jobs
        }

    loop.run(scenario())


def test_a_claim_left_out_of_a_renewal_expires(
    store: Store, loop: asyncio.Runner, clock: FakeClock
) -> None:
    async def scenario() -> None:
        await store.set_preference(USER, KIND, ALL_CHANNELS)
        email, webhook = (await submit_one(store, make_event("e1"))).jobs

        clock.advance(LEASE - timedelta(seconds=1))
        assert await store.renew_claims(W1, [email.delivery_id]) == {email.delivery_id}
        clock.advance(timedelta(seconds=2))

        [taken] = await store.claim_due_deliveries(W2, 10)
        assert taken.delivery_id == webhook.delivery_id
        assert await store.renew_claims(W1, [email.delivery_id, webhook.delivery_id]) == {
            email.delivery_id
        }

    loop.run(scenario())


def test_a_lapsed_claim_is_renewed_unless_it_was_taken_over(
    store: Store, loop: asyncio.Runner, clock: FakeClock
) -> None:
    """A renewal names the claims still held, so a runner learns which it lost: one whose
    lease ran out is still its own until another worker takes it."""

    async def scenario() -> None:
        await store.set_preference(USER, KIND, ALL_CHANNELS)
        email, webhook = (await submit_one(store, make_event("e1"))).jobs
        clock.advance(LEASE + timedelta(seconds=1))
        [taken] = await store.claim_due_deliveries(W2, 1, channel=Channel.WEBHOOK)
        assert taken.delivery_id == webhook.delivery_id

        kept = await store.renew_claims(W1, [email.delivery_id, webhook.delivery_id])

        assert kept == {email.delivery_id}
        assert await store.claim_due_deliveries(W3, 10) == []
        assert not await store.settle_delivery(W1, webhook.delivery_id, Delivered(), None)
        assert await store.settle_delivery(W1, email.delivery_id, Delivered(), None)
        assert await store.settle_delivery(W2, webhook.delivery_id, Delivered(), None)

    loop.run(scenario())


def test_handed_back_deliveries_are_due_at_once_for_any_worker(
    store: Store, loop: asyncio.Runner, clock: FakeClock
) -> None:
    async def scenario() -> None:
        await store.set_preference(USER, KIND, ALL_CHANNELS)
        recorded = await submit_one(store, make_event("e1"))
        email, webhook = recorded.jobs
        before = await delivery(store, email.delivery_id)

        kept = await store.renew_claims(W1, [webhook.delivery_id], release=[email.delivery_id])

        assert kept == {webhook.delivery_id}
        assert await delivery(store, email.delivery_id) == before  # pending, due, 0 attempts
        assert await store.backlog() == Backlog(events=0, due_deliveries=2)
        [again] = await store.claim_due_deliveries(W2, 10)  # no lease to wait for
        assert (again.delivery_id, again.attempts) == (email.delivery_id, 0)
        assert again.notification == email.notification
        assert not await store.settle_delivery(W1, email.delivery_id, Delivered(), None)
        assert await store.settle_delivery(W2, email.delivery_id, Delivered(), None)

    loop.run(scenario())


def test_a_handed_back_retry_keeps_its_status_and_attempts(
    store: Store, loop: asyncio.Runner, clock: FakeClock
) -> None:
    async def scenario() -> None:
        _, job = await only_job(store)
        failure = ChannelFailed(error="421 later", retryable=True)
        assert await store.settle_delivery(W1, job.delivery_id, failure, clock())
        [retry] = await store.claim_due_deliveries(W2, 10)
        before = await delivery(store, job.delivery_id)

        assert await store.renew_claims(W2, [], release=[retry.delivery_id]) == set()

        assert await delivery(store, job.delivery_id) == before
        assert (before.status, before.attempts) == (DeliveryStatus.FAILED, 1)
        [again] = await store.claim_due_deliveries(W3, 10)
        assert (again.delivery_id, again.attempts) == (job.delivery_id, 1)

    loop.run(scenario())


def test_only_the_claimant_hands_a_delivery_back(
    store: Store, loop: asyncio.Runner, clock: FakeClock
) -> None:
    async def scenario() -> None:
        _, job = await only_job(store)

        assert await store.renew_claims(W2, [job.delivery_id], release=[job.delivery_id]) == set()
        assert await store.claim_due_deliveries(W3, 10) == []  # still W1's
        assert await store.settle_delivery(W1, job.delivery_id, Delivered(), None)
        assert await store.renew_claims(W1, [], release=[job.delivery_id]) == set()
        assert (await delivery(store, job.delivery_id)).status is DeliveryStatus.DELIVERED

    loop.run(scenario())


def test_decide_claims_only_the_deliveries_it_is_told_to_take(
    store: Store, loop: asyncio.Runner, clock: FakeClock
) -> None:
    """The rest are recorded pending and unclaimed, due now, for any worker."""

    async def scenario() -> None:
        for user in (USER, "u7", "u8"):
            await store.set_preference(user, KIND, ALL_CHANNELS)
        events = [make_event(f"e-{user}", user_id=user) for user in (USER, "u7", "u8")]
        await store.enqueue(events)

        claim = await store.decide_claimable(W1, 10, DECIDE, take={Channel.EMAIL: 2})

        jobs = [job for recorded in claim.recorded for job in recorded.jobs]
        assert [(job.channel, job.notification.user_id) for job in jobs] == [
            (Channel.EMAIL, USER),
            (Channel.EMAIL, "u7"),
        ]
        pending = await store.deliveries(DeliveryStatus.PENDING)
        assert len(pending) == 6
        assert {(d.attempts, d.next_attempt_at) for d in pending} == {(0, clock())}
        assert await store.backlog() == Backlog(events=0, due_deliveries=6)
        left = await store.claim_due_deliveries(W2, 10)
        assert sorted((job.channel.value, job.notification.user_id) for job in left) == [
            ("email", "u8"),
            ("webhook", USER),
            ("webhook", "u7"),
            ("webhook", "u8"),
        ]
        assert {job.delivery_id for job in jobs} & {job.delivery_id for job in left} == set()
        assert await store.renew_claims(W1, [job.delivery_id for job in jobs]) == {
            job.delivery_id for job in jobs
        }

    loop.run(scenario())


def test_decide_without_room_claims_no_delivery(
    store: Store, loop: asyncio.Runner, clock: FakeClock
) -> None:
    async def scenario() -> None:
        await store.set_preference(USER, KIND, ALL_CHANNELS)
        await store.enqueue([make_event("e1")])

        [recorded] = (await store.decide_claimable(W1, 10, DECIDE, take={})).recorded

        assert recorded.jobs == ()
        [entry] = await store.inbox(USER)
        assert entry.dispatched_via == (Channel.IN_APP,)  # in-app needs no room
        assert len(await store.claim_due_deliveries(W2, 10)) == 2

    loop.run(scenario())


def test_claim_due_deliveries_of_one_channel_oldest_first(
    store: Store, loop: asyncio.Runner, clock: FakeClock
) -> None:
    async def scenario() -> None:
        await store.set_preference("u7", KIND, ALL_CHANNELS)
        await store.set_preference(USER, KIND, ALL_CHANNELS)
        await store.enqueue([make_event("first", user_id="u7")])
        await store.enqueue([make_event("second", user_id=USER)])
        await store.decide_claimable(W1, 1, DECIDE, take={})  # u7's deliveries, due first
        clock.advance(timedelta(seconds=1))
        await store.decide_claimable(W1, 1, DECIDE, take={})

        [oldest] = await store.claim_due_deliveries(W2, 1, channel=Channel.WEBHOOK)
        webhooks = await store.claim_due_deliveries(W2, 10, channel=Channel.WEBHOOK)
        emails = await store.claim_due_deliveries(W2, 10, channel=Channel.EMAIL)

        assert oldest.notification.user_id == "u7"
        assert [job.notification.user_id for job in webhooks] == [USER]
        assert [job.notification.user_id for job in emails] == ["u7", USER]
        assert await store.claim_due_deliveries(W3, 10) == []

    loop.run(scenario())


# -- rejection -----------------------------------------------------------------------


def test_an_invalid_event_ends_rejected_with_every_error(
    store: Store, loop: asyncio.Runner, clock: FakeClock
) -> None:
    async def scenario() -> None:
        await store.enqueue([make_event("bad", title="", kind=GLOBAL_KIND)])
        clock.advance(timedelta(seconds=5))

        claim = await decide(store)

        assert claim.recorded == ()
        [(event_id, error)] = claim.rejected
        assert event_id == "bad"
        assert "title: must not be empty" in str(error)
        assert {found.field for found in error.errors} == {"title", "kind"}
        record = await store.event_record("bad")
        assert record is not None
        assert record.status is EventStatus.REJECTED
        assert record.error == str(error)
        assert record.decided_at == clock()
        assert record.outcome is None
        assert record.explanation is None
        assert record.notification_id is None
        assert await store.backlog() == Backlog(events=0, due_deliveries=0)
        clock.advance(LEASE * 3)
        assert await decide(store, W2) == DecidedClaim(recorded=(), rejected=())
        assert await store.inbox(USER) == []

    loop.run(scenario())


# -- decisions -----------------------------------------------------------------------


def test_default_plan_notifies_in_app(store: Store, loop: asyncio.Runner, clock: FakeClock) -> None:
    event = make_event("e1", payload_json='{"load":0.93}')

    async def scenario() -> None:
        clock.advance(timedelta(minutes=1))
        recorded = await submit_one(store, event)

        assert recorded.event_id == "e1"
        assert recorded.outcome == Plan(
            kind=KIND,
            severity=Severity.WATCH,
            channels=(Channel.IN_APP,),
            source=PreferenceSource.DEFAULT,
            min_severity=Severity.INFO,
        )
        assert recorded.jobs == ()
        assert recorded.notification_id is not None
        assert await store.inbox(USER) == [
            Notification(
                id=recorded.notification_id,
                event_id="e1",
                user_id=USER,
                kind=KIND,
                severity=Severity.WATCH,
                title=event.title,
                body=event.body,
                payload_json=event.payload_json,
                created_at=clock(),
                read_at=None,
                dispatched_via=(Channel.IN_APP,),
            )
        ]

        record = await store.event_record("e1")
        assert record is not None
        assert record.status is EventStatus.NOTIFIED
        assert record.outcome == recorded.outcome
        assert record.explanation == explain(recorded.outcome)
        assert record.notification_id == recorded.notification_id
        assert record.decided_at == clock()
        assert record.enqueued_at == clock()
        assert record.error is None

        [in_app] = await store.deliveries()
        assert in_app == DeliveryRecord(
            delivery_id=in_app.delivery_id,
            notification_id=recorded.notification_id,
            user_id=USER,
            kind=KIND,
            channel=Channel.IN_APP,
            status=DeliveryStatus.DELIVERED,
            attempts=1,
            next_attempt_at=None,
            last_error=None,
            delivered_at=clock(),
        )
        assert await store.backlog() == Backlog(events=0, due_deliveries=0)

    loop.run(scenario())


def test_plan_with_email_and_webhook_returns_claimed_jobs(
    store: Store, loop: asyncio.Runner, clock: FakeClock
) -> None:
    async def scenario() -> None:
        await store.set_preference(USER, KIND, ALL_CHANNELS)
        recorded = await submit_one(store, make_event("e1"))

        assert isinstance(recorded.outcome, Plan)
        assert recorded.outcome.channels == (Channel.IN_APP, Channel.EMAIL, Channel.WEBHOOK)
        assert recorded.outcome.source is PreferenceSource.KIND
        assert recorded.notification_id is not None
        [entry] = await store.inbox(USER)
        assert entry.dispatched_via == (Channel.IN_APP,)
        assert [job.channel for job in recorded.jobs] == [Channel.EMAIL, Channel.WEBHOOK]
        assert all(job.attempts == 0 for job in recorded.jobs)
        assert all(job.notification == entry for job in recorded.jobs)
        assert len({job.delivery_id for job in recorded.jobs}) == 2

        pending = await store.deliveries(DeliveryStatus.PENDING)
        assert {d.delivery_id for d in pending} == {job.delivery_id for job in recorded.jobs}
        for job in recorded.jobs:
            assert await delivery(store, job.delivery_id) == DeliveryRecord(
                delivery_id=job.delivery_id,
                notification_id=recorded.notification_id,
                user_id=USER,
                kind=KIND,
                channel=job.channel,
                status=DeliveryStatus.PENDING,
                attempts=0,
                next_attempt_at=clock(),
                last_error=None,
                delivered_at=None,
            )
        [in_app] = await store.deliveries(DeliveryStatus.DELIVERED)
        assert (in_app.channel, in_app.attempts) == (Channel.IN_APP, 1)
        assert await store.backlog() == Backlog(events=0, due_deliveries=2)

    loop.run(scenario())


def test_jobs_of_a_recorded_plan_are_leased_to_the_recording_worker(
    store: Store, loop: asyncio.Runner, clock: FakeClock
) -> None:
    async def scenario() -> None:
        await store.set_preference(USER, KIND, ALL_CHANNELS)
        recorded = await submit_one(store, make_event("e1"))

        assert await store.claim_due_deliveries(W2, 10) == []
        clock.advance(LEASE - timedelta(seconds=1))
        assert await store.claim_due_deliveries(W2, 10) == []

        clock.advance(timedelta(seconds=2))
        taken_over = await store.claim_due_deliveries(W2, 10)

        assert sorted(taken_over, key=lambda job: job.channel.value) == sorted(
            recorded.jobs, key=lambda job: job.channel.value
        )
        assert await store.claim_due_deliveries(W1, 10) == []

    loop.run(scenario())


def test_skip_records_the_reason_and_no_notification(
    store: Store, loop: asyncio.Runner, clock: FakeClock
) -> None:
    async def scenario() -> None:
        await store.set_preference(USER, KIND, Preference(("in_app",), Severity.CRITICAL))
        recorded = await submit_one(store, make_event("e1", severity=Severity.WATCH))

        skip = Skip(
            kind=KIND,
            severity=Severity.WATCH,
            reason=SkipReason.SEVERITY_BELOW_MINIMUM,
            source=PreferenceSource.KIND,
            min_severity=Severity.CRITICAL,
        )
        assert recorded == RecordedEvent(
            event_id="e1", user_id=USER, outcome=skip, notification_id=None
        )
        record = await store.event_record("e1")
        assert record is not None
        assert record.status is EventStatus.SKIPPED
        assert record.outcome == skip
        assert record.explanation == explain(skip)
        assert record.notification_id is None
        assert record.decided_at == clock()
        assert record.error is None
        assert await store.inbox(USER) == []
        assert await store.deliveries() == []
        assert await store.backlog() == Backlog(events=0, due_deliveries=0)

    loop.run(scenario())


def test_cooldown_applies_inside_one_batch(
    store: Store, loop: asyncio.Runner, clock: FakeClock
) -> None:
    async def scenario() -> None:
        first, second = await submit(store, [make_event("e1"), make_event("e2")])

        assert isinstance(first.outcome, Plan)
        assert second.outcome == Skip(
            kind=KIND,
            severity=Severity.WATCH,
            reason=SkipReason.COOLDOWN,
            source=PreferenceSource.DEFAULT,
            min_severity=Severity.INFO,
            last_sent_at=clock(),
            cooldown_ends_at=clock() + COOLDOWN,
        )
        assert second.notification_id is None
        record = await store.event_record("e2")
        assert record is not None
        assert record.status is EventStatus.SKIPPED
        assert record.outcome == second.outcome
        assert record.explanation == explain(second.outcome)
        assert [n.event_id for n in await store.inbox(USER)] == ["e1"]

    loop.run(scenario())


def test_cooldown_across_batches_until_it_ends(
    store: Store, loop: asyncio.Runner, clock: FakeClock
) -> None:
    async def scenario() -> None:
        first = await submit_one(store, make_event("e1"))
        sent_at = clock()
        assert isinstance(first.outcome, Plan)

        clock.advance(COOLDOWN - timedelta(seconds=1))
        inside = await submit_one(store, make_event("e2"))
        assert isinstance(inside.outcome, Skip)
        assert inside.outcome.reason is SkipReason.COOLDOWN
        assert inside.outcome.last_sent_at == sent_at
        assert inside.outcome.cooldown_ends_at == sent_at + COOLDOWN

        # The skip did not restart the cooldown: it still ends COOLDOWN after e1.
        clock.advance(timedelta(seconds=2))
        after = await submit_one(store, make_event("e3"))
        assert isinstance(after.outcome, Plan)
        assert [n.event_id for n in await store.inbox(USER)] == ["e3", "e1"]

        clock.advance(timedelta(hours=1))
        again = await submit_one(store, make_event("e4"))
        assert isinstance(again.outcome, Skip)
        assert again.outcome.last_sent_at == sent_at + COOLDOWN + timedelta(seconds=1)

    loop.run(scenario())


def test_cooldown_is_per_user_and_kind(store: Store, loop: asyncio.Runner) -> None:
    async def scenario() -> None:
        recorded = await submit(
            store,
            [
                make_event("e1"),
                make_event("e2", kind="other_kind"),
                make_event("e3", user_id="u7"),
                make_event("e4"),
            ],
        )

        assert [type(r.outcome) for r in recorded] == [Plan, Plan, Plan, Skip]
        assert [n.event_id for n in await store.inbox("u7")] == ["e3"]
        assert await store.unread_count(USER) == 2

    loop.run(scenario())


def test_kind_preference_wins_over_global(store: Store, loop: asyncio.Runner) -> None:
    async def scenario() -> None:
        await store.set_preference(USER, GLOBAL_KIND, Preference(("webhook",), Severity.INFO))
        await store.set_preference(USER, KIND, Preference(("email", "in_app"), Severity.WATCH))
        recorded = await submit_one(store, make_event("e1", severity=Severity.WATCH))

        assert recorded.outcome == Plan(
            kind=KIND,
            severity=Severity.WATCH,
            channels=(Channel.EMAIL, Channel.IN_APP),
            source=PreferenceSource.KIND,
            min_severity=Severity.WATCH,
        )
        assert [job.channel for job in recorded.jobs] == [Channel.EMAIL]
        [entry] = await store.inbox(USER)
        assert entry.dispatched_via == (Channel.IN_APP,)

    loop.run(scenario())


def test_global_preference_gives_channels_with_the_default_minimum(
    store: Store, loop: asyncio.Runner
) -> None:
    async def scenario() -> None:
        await store.set_preference(USER, GLOBAL_KIND, Preference(("webhook",), Severity.CRITICAL))
        await store.set_preference("u7", KIND, Preference((), Severity.INFO))
        recorded = await submit_one(store, make_event("e1", severity=Severity.INFO))

        assert recorded.outcome == Plan(
            kind=KIND,
            severity=Severity.INFO,
            channels=(Channel.WEBHOOK,),
            source=PreferenceSource.GLOBAL,
            min_severity=Severity.INFO,
        )
        [job] = recorded.jobs
        assert job.channel is Channel.WEBHOOK
        [entry] = await store.inbox(USER)
        assert entry.dispatched_via == ()
        assert [d.channel for d in await store.deliveries()] == [Channel.WEBHOOK]

    loop.run(scenario())


def test_silent_kind_preference_skips_with_no_channels(store: Store, loop: asyncio.Runner) -> None:
    async def scenario() -> None:
        await store.set_preference(USER, GLOBAL_KIND, Preference(("in_app",), Severity.INFO))
        await store.set_preference(USER, KIND, Preference((), Severity.INFO))
        recorded = await submit_one(store, make_event("e1", severity=Severity.CRITICAL))

        assert recorded.outcome == Skip(
            kind=KIND,
            severity=Severity.CRITICAL,
            reason=SkipReason.NO_CHANNELS,
            source=PreferenceSource.KIND,
            min_severity=Severity.INFO,
        )
        record = await store.event_record("e1")
        assert record is not None
        assert record.status is EventStatus.SKIPPED
        assert record.outcome == recorded.outcome
        assert await store.inbox(USER) == []

    loop.run(scenario())


def test_unknown_stored_channel_names_are_reported(store: Store, loop: asyncio.Runner) -> None:
    async def scenario() -> None:
        await store.set_preference(USER, KIND, Preference(("pager", "in_app"), Severity.INFO))
        recorded = await submit_one(store, make_event("e1"))

        assert recorded.outcome == Plan(
            kind=KIND,
            severity=Severity.WATCH,
            channels=(Channel.IN_APP,),
            source=PreferenceSource.KIND,
            min_severity=Severity.INFO,
            ignored_channels=("pager",),
        )
        record = await store.event_record("e1")
        assert record is not None
        assert record.outcome == recorded.outcome
        assert record.explanation == explain(recorded.outcome)

    loop.run(scenario())


# -- deliveries ----------------------------------------------------------------------


def test_settle_delivered(store: Store, loop: asyncio.Runner, clock: FakeClock) -> None:
    async def scenario() -> None:
        await store.set_preference(USER, KIND, ALL_CHANNELS)
        recorded = await submit_one(store, make_event("e1"))
        email, webhook = recorded.jobs
        assert recorded.notification_id is not None
        clock.advance(timedelta(seconds=3))

        assert await store.settle_delivery(W1, email.delivery_id, Delivered(), None)

        settled = await delivery(store, email.delivery_id)
        assert settled.status is DeliveryStatus.DELIVERED
        assert settled.attempts == 1
        assert settled.delivered_at == clock()
        assert settled.next_attempt_at is None
        assert settled.last_error is None
        entry = await notification(store, USER, recorded.notification_id)
        assert entry.dispatched_via == (Channel.IN_APP, Channel.EMAIL)
        assert await store.backlog() == Backlog(events=0, due_deliveries=1)

        assert await store.settle_delivery(W1, webhook.delivery_id, Delivered(), None)
        entry = await notification(store, USER, recorded.notification_id)
        assert entry.dispatched_via == (Channel.IN_APP, Channel.EMAIL, Channel.WEBHOOK)
        assert await store.backlog() == Backlog(events=0, due_deliveries=0)
        assert await store.deliveries(DeliveryStatus.PENDING) == []
        assert len(await store.deliveries(DeliveryStatus.DELIVERED)) == 3
        clock.advance(LEASE * 3)
        assert await store.claim_due_deliveries(W2, 10) == []

    loop.run(scenario())


def test_settle_channel_skipped(store: Store, loop: asyncio.Runner, clock: FakeClock) -> None:
    async def scenario() -> None:
        recorded, job = await only_job(store, Channel.WEBHOOK)
        assert recorded.notification_id is not None

        assert await store.settle_delivery(
            W1, job.delivery_id, ChannelSkipped("not configured"), None
        )

        settled = await delivery(store, job.delivery_id)
        assert settled.status is DeliveryStatus.SKIPPED
        assert settled.last_error == "not configured"
        assert settled.attempts == 1
        assert settled.next_attempt_at is None
        assert settled.delivered_at is None
        entry = await notification(store, USER, recorded.notification_id)
        assert entry.dispatched_via == (Channel.IN_APP,)
        assert await store.backlog() == Backlog(events=0, due_deliveries=0)
        clock.advance(LEASE * 3)
        assert await store.claim_due_deliveries(W2, 10) == []

    loop.run(scenario())


def test_settle_retryable_failure_waits_until_retry_at(
    store: Store, loop: asyncio.Runner, clock: FakeClock
) -> None:
    async def scenario() -> None:
        recorded, job = await only_job(store)
        assert recorded.notification_id is not None
        retry_at = clock() + timedelta(minutes=5)
        failure = ChannelFailed(error="421 try again later", retryable=True)

        assert await store.settle_delivery(W1, job.delivery_id, failure, retry_at)

        failed = await delivery(store, job.delivery_id)
        assert failed.status is DeliveryStatus.FAILED
        assert failed.next_attempt_at == retry_at
        assert failed.last_error == "421 try again later"
        assert failed.attempts == 1
        assert failed.delivered_at is None
        assert await store.backlog() == Backlog(events=0, due_deliveries=0)

        clock.advance(timedelta(minutes=5) - timedelta(seconds=1))
        assert await store.claim_due_deliveries(W1, 10) == []
        assert await store.claim_due_deliveries(W2, 10) == []
        assert (await store.backlog()).due_deliveries == 0

        clock.advance(timedelta(seconds=2))
        assert (await store.backlog()).due_deliveries == 1
        [retry] = await store.claim_due_deliveries(W2, 10)
        assert retry.delivery_id == job.delivery_id
        assert retry.channel is Channel.EMAIL
        assert retry.attempts == 1
        assert retry.notification == job.notification
        assert await store.claim_due_deliveries(W1, 10) == []

        assert await store.settle_delivery(W2, retry.delivery_id, Delivered(), None)
        settled = await delivery(store, job.delivery_id)
        assert settled.status is DeliveryStatus.DELIVERED
        assert settled.attempts == 2
        assert settled.next_attempt_at is None
        assert settled.last_error is None
        assert settled.delivered_at == clock()
        entry = await notification(store, USER, recorded.notification_id)
        assert entry.dispatched_via == (Channel.IN_APP, Channel.EMAIL)
        assert await store.backlog() == Backlog(events=0, due_deliveries=0)

    loop.run(scenario())


@pytest.mark.parametrize("retryable", [False, True])
def test_settle_failure_without_retry_at_is_dead(
    store: Store, loop: asyncio.Runner, clock: FakeClock, retryable: bool
) -> None:
    async def scenario() -> None:
        _, job = await only_job(store)
        failure = ChannelFailed(error="550 no such mailbox", retryable=retryable)

        assert await store.settle_delivery(W1, job.delivery_id, failure, None)

        dead = await delivery(store, job.delivery_id)
        assert dead.status is DeliveryStatus.DEAD
        assert dead.last_error == "550 no such mailbox"
        assert dead.attempts == 1
        assert dead.next_attempt_at is None
        assert dead.delivered_at is None
        assert [d.delivery_id for d in await store.deliveries(DeliveryStatus.DEAD)] == [
            job.delivery_id
        ]
        assert await store.backlog() == Backlog(events=0, due_deliveries=0)
        clock.advance(timedelta(days=30))
        assert await store.claim_due_deliveries(W2, 10) == []
        [entry] = await store.inbox(USER)
        assert entry.dispatched_via == (Channel.IN_APP,)

    loop.run(scenario())


def test_settle_by_another_worker_changes_nothing(
    store: Store, loop: asyncio.Runner, clock: FakeClock
) -> None:
    async def scenario() -> None:
        _, job = await only_job(store)
        before = await delivery(store, job.delivery_id)

        assert not await store.settle_delivery(W2, job.delivery_id, Delivered(), None)
        assert not await store.settle_delivery(
            W2, job.delivery_id, ChannelFailed(error="x", retryable=True), clock()
        )

        assert await delivery(store, job.delivery_id) == before
        assert before.status is DeliveryStatus.PENDING
        [entry] = await store.inbox(USER)
        assert entry.dispatched_via == (Channel.IN_APP,)
        assert await store.settle_delivery(W1, job.delivery_id, Delivered(), None)

    loop.run(scenario())


def test_settle_after_the_claim_was_taken_over_returns_false(
    store: Store, loop: asyncio.Runner, clock: FakeClock
) -> None:
    async def scenario() -> None:
        _, job = await only_job(store)
        clock.advance(LEASE + timedelta(seconds=1))
        [taken] = await store.claim_due_deliveries(W2, 10)
        assert taken.delivery_id == job.delivery_id
        assert taken.attempts == 0

        assert not await store.settle_delivery(W1, job.delivery_id, Delivered(), None)

        unchanged = await delivery(store, job.delivery_id)
        assert (unchanged.status, unchanged.attempts) == (DeliveryStatus.PENDING, 0)
        [entry] = await store.inbox(USER)
        assert entry.dispatched_via == (Channel.IN_APP,)

        assert await store.settle_delivery(W2, job.delivery_id, Delivered(), None)
        settled = await delivery(store, job.delivery_id)
        assert (settled.status, settled.attempts) == (DeliveryStatus.DELIVERED, 1)

    loop.run(scenario())


def test_settle_an_already_settled_delivery_returns_false(
    store: Store, loop: asyncio.Runner, clock: FakeClock
) -> None:
    async def scenario() -> None:
        _, job = await only_job(store)
        assert await store.settle_delivery(W1, job.delivery_id, Delivered(), None)
        settled = await delivery(store, job.delivery_id)

        assert not await store.settle_delivery(W1, job.delivery_id, Delivered(), None)
        assert not await store.settle_delivery(
            W1, job.delivery_id, ChannelFailed(error="x", retryable=True), clock()
        )
        assert not await store.settle_delivery(W1, job.delivery_id, ChannelSkipped("no"), None)

        assert await delivery(store, job.delivery_id) == settled
        [entry] = await store.inbox(USER)
        assert entry.dispatched_via == (Channel.IN_APP, Channel.EMAIL)

    loop.run(scenario())


def test_settle_a_failed_delivery_waiting_for_retry_returns_false(
    store: Store, loop: asyncio.Runner, clock: FakeClock
) -> None:
    async def scenario() -> None:
        _, job = await only_job(store)
        retry_at = clock() + timedelta(minutes=1)
        failure = ChannelFailed(error="timeout", retryable=True)
        assert await store.settle_delivery(W1, job.delivery_id, failure, retry_at)
        failed = await delivery(store, job.delivery_id)

        assert not await store.settle_delivery(W1, job.delivery_id, Delivered(), None)

        assert await delivery(store, job.delivery_id) == failed

    loop.run(scenario())


def test_settle_unknown_or_in_app_delivery_returns_false(
    store: Store, loop: asyncio.Runner
) -> None:
    async def scenario() -> None:
        await submit_one(store, make_event("e1"))
        [in_app] = await store.deliveries()

        assert not await store.settle_delivery(W1, "no-such-delivery", Delivered(), None)
        assert not await store.settle_delivery(
            W1, in_app.delivery_id, ChannelSkipped("not configured"), None
        )

        assert await store.deliveries() == [in_app]

    loop.run(scenario())


def test_claim_due_deliveries_respects_limit(
    store: Store, loop: asyncio.Runner, clock: FakeClock
) -> None:
    async def scenario() -> None:
        await store.set_preference(USER, KIND, ALL_CHANNELS)
        await store.set_preference("u7", KIND, ALL_CHANNELS)
        recorded = await submit(store, [make_event("e1"), make_event("e2", user_id="u7")])
        expected = {job.delivery_id for r in recorded for job in r.jobs}
        assert len(expected) == 4
        clock.advance(LEASE + timedelta(seconds=1))

        first = await store.claim_due_deliveries(W2, 3)
        rest = await store.claim_due_deliveries(W1, 3)

        assert len(first) == 3
        assert len(rest) == 1
        assert {job.delivery_id for job in [*first, *rest]} == expected
        assert await store.claim_due_deliveries(W1, 3) == []
        assert (await store.backlog()).due_deliveries == 4

    loop.run(scenario())


def test_deliveries_filter_by_status_and_limit(store: Store, loop: asyncio.Runner) -> None:
    async def scenario() -> None:
        await store.set_preference(USER, KIND, ALL_CHANNELS)
        recorded = await submit_one(store, make_event("e1"))
        email, _ = recorded.jobs
        assert await store.settle_delivery(
            W1, email.delivery_id, ChannelSkipped("no address"), None
        )

        everything = await store.deliveries()
        assert sorted(d.channel.value for d in everything) == ["email", "in_app", "webhook"]
        assert [d.channel for d in await store.deliveries(DeliveryStatus.SKIPPED)] == [
            Channel.EMAIL
        ]
        assert [d.channel for d in await store.deliveries(DeliveryStatus.PENDING)] == [
            Channel.WEBHOOK
        ]
        assert await store.deliveries(DeliveryStatus.FAILED) == []
        assert len(await store.deliveries(limit=2)) == 2

    loop.run(scenario())


# -- inbox ---------------------------------------------------------------------------


async def three_notifications(store: Store, clock: FakeClock) -> list[str]:
    """Notify USER three times, a minute apart, plus one notification for u7.
    Returns USER's notification ids, oldest first."""
    ids: list[str] = []
    for n in range(3):
        recorded = await submit_one(store, make_event(f"e{n}", kind=f"kind_{n}"))
        assert recorded.notification_id is not None
        ids.append(recorded.notification_id)
        clock.advance(timedelta(minutes=1))
    await submit_one(store, make_event("other", user_id="u7"))
    return ids


def test_inbox_is_newest_first_limited_and_per_user(
    store: Store, loop: asyncio.Runner, clock: FakeClock
) -> None:
    async def scenario() -> None:
        ids = await three_notifications(store, clock)

        entries = await store.inbox(USER)
        assert [n.id for n in entries] == ids[::-1]
        assert [n.created_at for n in entries] == [
            START + timedelta(minutes=2),
            START + timedelta(minutes=1),
            START,
        ]
        assert {n.user_id for n in entries} == {USER}
        assert [n.id for n in await store.inbox(USER, limit=2)] == ids[:0:-1]
        assert [n.event_id for n in await store.inbox("u7")] == ["other"]
        assert await store.inbox("nobody") == []

    loop.run(scenario())


def test_unread_only_and_unread_count(store: Store, loop: asyncio.Runner, clock: FakeClock) -> None:
    async def scenario() -> None:
        ids = await three_notifications(store, clock)
        assert await store.unread_count(USER) == 3

        assert await store.mark_read(USER, ids[1])

        assert await store.unread_count(USER) == 2
        assert [n.id for n in await store.inbox(USER, unread_only=True)] == [ids[2], ids[0]]
        assert [n.id for n in await store.inbox(USER, unread_only=True, limit=1)] == [ids[2]]
        assert len(await store.inbox(USER)) == 3
        assert await store.unread_count("u7") == 1
        assert await store.unread_count("nobody") == 0

    loop.run(scenario())


def test_mark_read_is_idempotent(store: Store, loop: asyncio.Runner, clock: FakeClock) -> None:
    async def scenario() -> None:
        ids = await three_notifications(store, clock)
        read_at = clock()

        assert await store.mark_read(USER, ids[0])
        clock.advance(timedelta(hours=1))
        assert await store.mark_read(USER, ids[0])

        entry = await notification(store, USER, ids[0])
        assert entry.read_at == read_at
        assert await store.unread_count(USER) == 2

    loop.run(scenario())


def test_mark_read_refuses_someone_elses_or_unknown_notification(
    store: Store, loop: asyncio.Runner, clock: FakeClock
) -> None:
    async def scenario() -> None:
        ids = await three_notifications(store, clock)

        assert not await store.mark_read("u7", ids[0])
        assert not await store.mark_read(USER, "no-such-notification")

        assert (await notification(store, USER, ids[0])).read_at is None
        assert await store.unread_count(USER) == 3
        assert await store.unread_count("u7") == 1

    loop.run(scenario())


def test_mark_all_read(store: Store, loop: asyncio.Runner, clock: FakeClock) -> None:
    async def scenario() -> None:
        ids = await three_notifications(store, clock)
        first_read_at = clock()
        assert await store.mark_read(USER, ids[0])
        clock.advance(timedelta(minutes=10))

        assert await store.mark_all_read(USER) == 2

        assert await store.unread_count(USER) == 0
        assert await store.inbox(USER, unread_only=True) == []
        read_at = {n.id: n.read_at for n in await store.inbox(USER)}
        assert read_at == {ids[0]: first_read_at, ids[1]: clock(), ids[2]: clock()}
        assert await store.unread_count("u7") == 1
        assert await store.mark_all_read(USER) == 0
        assert await store.mark_all_read("nobody") == 0

    loop.run(scenario())


# -- preferences ---------------------------------------------------------------------


def test_set_preference_normalises_channel_names(store: Store, loop: asyncio.Runner) -> None:
    async def scenario() -> None:
        stored = await store.set_preference(
            USER, KIND, Preference((" Email ", "IN_APP", "email", ""), Severity.WATCH)
        )

        expected = Preference(("email", "in_app"), Severity.WATCH)
        assert stored == expected
        assert await store.preferences(USER) == {KIND: expected}

    loop.run(scenario())


def test_set_preference_keeps_unknown_names(store: Store, loop: asyncio.Runner) -> None:
    async def scenario() -> None:
        stored = await store.set_preference(
            USER, GLOBAL_KIND, Preference(("Pager", "sms ", "in_app"), Severity.INFO)
        )

        expected = Preference(("pager", "sms", "in_app"), Severity.INFO)
        assert stored == expected
        assert await store.preferences(USER) == {GLOBAL_KIND: expected}

    loop.run(scenario())


def test_set_preference_overwrites(store: Store, loop: asyncio.Runner) -> None:
    async def scenario() -> None:
        await store.set_preference(USER, KIND, Preference(("email", "webhook"), Severity.INFO))

        stored = await store.set_preference(USER, KIND, Preference((), Severity.CRITICAL))

        assert stored == Preference((), Severity.CRITICAL)
        assert await store.preferences(USER) == {KIND: Preference((), Severity.CRITICAL)}

    loop.run(scenario())


def test_preferences_are_per_user(store: Store, loop: asyncio.Runner) -> None:
    async def scenario() -> None:
        await store.set_preference(USER, KIND, Preference(("email",), Severity.WATCH))
        await store.set_preference(USER, GLOBAL_KIND, Preference(("in_app",), Severity.INFO))
        await store.set_preference("u7", KIND, Preference(("webhook",), Severity.CRITICAL))

        assert await store.preferences(USER) == {
            KIND: Preference(("email",), Severity.WATCH),
            GLOBAL_KIND: Preference(("in_app",), Severity.INFO),
        }
        assert await store.preferences("u7") == {KIND: Preference(("webhook",), Severity.CRITICAL)}
        assert await store.preferences("nobody") == {}

    loop.run(scenario())


# -- text stored verbatim ------------------------------------------------------------

TRICKY_TEXTS = (
    "He said \"hi\" and 'bye'",
    "semi; colons; everywhere;",
    "'; DROP TABLE events; --",
    "Robert'); DROP TABLE notifications;--",
    "naïve café, Zürich, 東京, Ελληνικά, עברית, العربية",
    "emoji 🚨🔥 👩‍💻 🇫🇷 and a zero-width joiner",
    "back\\slash %s %(name)s ? :now $1 {0} \\x00 not a NUL",
    "  leading and trailing spaces  ",
)


def _sixty_four_kib_body() -> str:
    unit = "🚨 naïve \"quoted\" 'single'; DROP TABLE events; --\r\n\ttab \\ 東京\n"
    body = unit * (MAX_BODY_BYTES // len(unit.encode("utf-8")))
    body += "x" * (MAX_BODY_BYTES - len(body.encode("utf-8")))
    assert len(body.encode("utf-8")) == MAX_BODY_BYTES
    return body


def test_text_fields_are_stored_verbatim(store: Store, loop: asyncio.Runner) -> None:
    events = [
        make_event(
            f"e{n}",
            kind=f"kind_{n}",
            title=text,
            body=f"{text}\nsecond line\r\n\tindented {text}",
            payload_json=json.dumps(
                {"text": text, "n": n}, ensure_ascii=False, separators=(",", ":")
            ),
        )
        for n, text in enumerate(TRICKY_TEXTS)
    ]

    async def scenario() -> None:
        recorded = await submit(store, events)
        assert all(isinstance(r.outcome, Plan) for r in recorded)

        by_event = {n.event_id: n for n in await store.inbox(USER, limit=100)}
        for event in events:
            entry = by_event[event.event_id]
            assert (entry.title, entry.body, entry.payload_json) == (
                event.title,
                event.body,
                event.payload_json,
            )
            record = await store.event_record(event.event_id)
            assert record is not None
            assert record.title == event.title
        assert (await store.backlog()).events == 0

    loop.run(scenario())


def test_payload_json_text_is_kept_as_given(store: Store, loop: asyncio.Runner) -> None:
    raw = '{ "b" : [1, 2.50, "x"] ,\n "a":null , "é": "🚨" }'
    event = make_event("e1", payload_json=raw)

    async def scenario() -> None:
        await submit_one(store, event)

        [entry] = await store.inbox(USER)
        assert entry.payload_json == raw

    loop.run(scenario())


def test_sixty_four_kib_body_round_trips(
    store: Store, loop: asyncio.Runner, clock: FakeClock
) -> None:
    body = _sixty_four_kib_body()
    event = make_event("e1", body=body)

    async def scenario() -> None:
        await store.set_preference(USER, KIND, Preference(("in_app", "email"), Severity.INFO))
        recorded = await submit_one(store, event)

        [entry] = await store.inbox(USER)
        assert entry.body == body
        [job] = recorded.jobs
        assert job.notification.body == body
        clock.advance(LEASE + timedelta(seconds=1))
        [retry] = await store.claim_due_deliveries(W2, 1)
        assert retry.notification.body == body

    loop.run(scenario())


def test_identifiers_are_stored_verbatim(store: Store, loop: asyncio.Runner) -> None:
    user_id = "u'; DROP TABLE notifications; --"
    kind = 'kïnd "quoted"; 🚨'
    event_id = "e'1\"; DELETE FROM events; --"
    event = make_event(event_id, user_id=user_id, kind=kind)

    async def scenario() -> None:
        preference = Preference(("in_app", "email"), Severity.INFO)
        await store.set_preference(user_id, kind, preference)
        recorded = await submit_one(store, event)

        assert await store.preferences(user_id) == {kind: preference}
        assert isinstance(recorded.outcome, Plan)
        assert recorded.outcome.source is PreferenceSource.KIND
        [entry] = await store.inbox(user_id)
        assert (entry.event_id, entry.user_id, entry.kind) == (event_id, user_id, kind)
        record = await store.event_record(event_id)
        assert record is not None
        assert (record.user_id, record.kind, record.status) == (
            user_id,
            kind,
            EventStatus.NOTIFIED,
        )
        [email] = await store.deliveries(DeliveryStatus.PENDING)
        assert (email.user_id, email.kind) == (user_id, kind)
        assert await store.mark_read(user_id, entry.id)
        assert await store.unread_count(user_id) == 0
        assert await store.inbox(USER) == []

    loop.run(scenario())


# ----------------------------------------------------------------------- recipients


HOOK_A = "https://hooks.example.com/a"
HOOK_B = "https://hooks.example.com/b"


async def changed(store: Store, **fields: str | None) -> Recipient:
    """Change USER's contact points; checks that what comes back is what is stored."""
    stored = await store.update_recipient(RecipientChange(user_id=USER, **fields))
    assert await store.recipient(USER) == stored
    return stored


def test_recipients_change_field_by_field(store: Store, loop: asyncio.Runner) -> None:
    async def scenario() -> None:
        assert await store.recipient(USER) is None
        first = await changed(store, email="ana@example.com", webhook_url=HOOK_A)
        assert first == Recipient(user_id=USER, email="ana@example.com", webhook_url=HOOK_A)

        with_secret = await changed(store, webhook_secret="whsec_c2VjcmV0")
        assert with_secret == attrs.evolve(first, webhook_secret="whsec_c2VjcmV0")
        assert "c2VjcmV0" not in repr(with_secret)
        assert "c2VjcmV0" not in repr(
            RecipientChange(user_id=USER, webhook_secret="whsec_c2VjcmV0")
        )

        new_email = await changed(store, email="ana@example.org")
        assert new_email == attrs.evolve(with_secret, email="ana@example.org")

        cleared = await changed(store, email=None, webhook_url=None, webhook_secret=None)
        assert cleared == Recipient(user_id=USER)
        assert await store.recipient("u7") is None  # per user

    loop.run(scenario())


def test_a_disabled_webhook_stays_disabled_until_its_url_changes(
    store: Store, loop: asyncio.Runner
) -> None:
    async def scenario() -> None:
        first = await changed(store, webhook_url=HOOK_A, webhook_secret="whsec_c2VjcmV0")
        await store.disable_webhook(USER, "https://hooks.example.com/other", "410 Gone")
        assert await store.recipient(USER) == first  # a late 410 from another URL
        await store.disable_webhook("u7", HOOK_A, "410 Gone")  # no such recipient
        assert await store.recipient("u7") is None

        await store.disable_webhook(USER, HOOK_A, "410 Gone")
        disabled = attrs.evolve(first, webhook_disabled="410 Gone")
        assert await store.recipient(USER) == disabled

        # Other fields, and the same URL again, leave it disabled.
        assert await changed(store, email="ana@example.com") == attrs.evolve(
            disabled, email="ana@example.com"
        )
        assert (await changed(store, webhook_url=HOOK_A)).webhook_disabled == "410 Gone"

        replaced = await changed(store, webhook_url=HOOK_B)
        assert replaced == Recipient(
            user_id=USER,
            email="ana@example.com",
            webhook_url=HOOK_B,
            webhook_secret=first.webhook_secret,
        )
        await store.disable_webhook(USER, HOOK_A, "410 Gone")  # late, from the old URL
        assert await store.recipient(USER) == replaced

        await store.disable_webhook(USER, HOOK_B, "410 Gone")
        assert (await changed(store, webhook_url=None)).webhook_disabled is None

    loop.run(scenario())


def test_concurrent_changes_to_one_recipient_all_apply(store: Store, loop: asyncio.Runner) -> None:
    """Each change reads and writes in one transaction: changes to different fields
    made at the same time, for a user with no row yet, all land."""

    async def scenario() -> None:
        users = [f"u{n}" for n in range(4)]
        await asyncio.gather(
            *(
                store.update_recipient(RecipientChange(user_id=user, **{field: value}))
                for user in users
                for field, value in (
                    ("email", f"{user}@example.com"),
                    ("webhook_url", f"https://hooks.example.com/{user}"),
                    ("webhook_secret", "whsec_c2VjcmV0"),
                )
            )
        )
        for user in users:
            assert await store.recipient(user) == Recipient(
                user_id=user,
                email=f"{user}@example.com",
                webhook_url=f"https://hooks.example.com/{user}",
                webhook_secret="whsec_c2VjcmV0",
            )

    loop.run(scenario())


def test_a_dead_delivery_can_be_requeued_with_its_id(
    store: Store, loop: asyncio.Runner, clock: FakeClock
) -> None:
    async def scenario() -> None:
        await store.set_preference(USER, KIND, Preference(("email",), Severity.INFO))
        recorded = await submit_one(store, make_event("e1"))
        [job] = recorded.jobs
        failure = ChannelFailed(error="550 mailbox unavailable", retryable=False)
        assert await store.settle_delivery(W1, job.delivery_id, failure, None)
        assert not await store.requeue_delivery("no-such-delivery")
        assert await store.requeue_delivery(job.delivery_id)
        assert not await store.requeue_delivery(job.delivery_id)  # pending now, not dead
        [again] = await store.claim_due_deliveries(W2, 10)
        assert again.delivery_id == job.delivery_id
        assert again.attempts == 0  # a fresh retry schedule
        assert (await delivery(store, job.delivery_id)).status is DeliveryStatus.PENDING

    loop.run(scenario())


# -------------------------------------------------------------------------- history


def test_history_replays_decisions_in_order_page_by_page(
    store: Store, loop: asyncio.Runner, clock: FakeClock
) -> None:
    async def scenario() -> None:
        await store.set_preference(USER, GLOBAL_KIND, Preference(("in_app",), Severity.INFO))
        await submit(store, [make_event("e1"), make_event("e2")])  # notified, then cooldown
        start = clock.advance(timedelta(hours=1))
        await submit(store, [make_event("e3", kind="other")])
        clock.advance(timedelta(hours=1))

        pages = []
        after = None
        while page := await store.decided_events(START, after, 2):
            pages.append([(found.event.event_id, found.notified) for found in page])
            after = page[-1].position
        assert pages == [[("e1", True), ("e2", False)], [("e3", True)]]
        [late] = await store.decided_events(start, None, 10)
        assert late.event == make_event("e3", kind="other")
        assert late.decided_at == start

        assert await store.last_notified_before(start) == {(USER, KIND): START}
        assert await store.all_preferences() == {
            (USER, GLOBAL_KIND): Preference(("in_app",), Severity.INFO)
        }
        inputs, now = await store.decision_inputs(USER, KIND)
        assert now == clock()
        assert inputs.last_sent_at == START
        assert inputs.global_preference == Preference(("in_app",), Severity.INFO)
        assert inputs.kind_preference is None

    loop.run(scenario())

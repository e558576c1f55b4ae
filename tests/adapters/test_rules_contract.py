"""The rules of issue #13 on every store (``conftest.STORE_FACTORIES``): escalation
needs the last notification's severity, quiet hours hold deliveries in the outbox, and
a digest gathers what the cooldown held back and is decided exactly once, before the
key's next event, or by ``decide_due_digests`` when the key stays quiet.
"""

from __future__ import annotations

import asyncio
import json
from datetime import time, timedelta
from functools import partial

from tests.adapters.test_store_contract import ALL_CHANNELS, KIND, USER, W1, W2, make_event
from tidings.adapters.zones import zone_named
from tidings.core import Channel, Plan, Policy, Preference, Severity, Skip, decide_with
from tidings.core.digest import DIGEST_PREFIX
from tidings.core.ports import DecideFn, Store
from tidings.core.quiet_hours import QuietHours
from tidings.core.records import DeliveryStatus
from tidings.testing import FakeClock

RULES = Policy(escalate_past_cooldown=True, digest_after_cooldown=True)
DECIDE: DecideFn = partial(decide_with, policy=RULES)
COOLDOWN = RULES.cooldown


def test_a_rise_in_severity_is_notified_inside_the_cooldown_and_starts_a_new_one(
    store: Store, loop: asyncio.Runner, clock: FakeClock
) -> None:
    async def scenario() -> None:
        await store.enqueue([make_event("info", severity=Severity.INFO)])
        await store.decide_claimable(W1, 10, DECIDE)
        clock.advance(timedelta(hours=2))
        await store.enqueue([make_event("critical", severity=Severity.CRITICAL)])
        [critical] = (await store.decide_claimable(W1, 10, DECIDE)).recorded
        assert isinstance(critical.outcome, Plan)
        assert critical.outcome.escalated_over is Severity.INFO
        clock.advance(timedelta(hours=1))
        await store.enqueue([make_event("watch", severity=Severity.WATCH)])
        [watch] = (await store.decide_claimable(W1, 10, DECIDE)).recorded
        assert isinstance(watch.outcome, Skip)
        assert watch.outcome.last_severity is Severity.CRITICAL
        record = await store.event_record("critical")
        assert record is not None and record.explanation is not None
        assert "critical rises above the info notified at" in record.explanation

    loop.run(scenario())


def test_quiet_hours_hold_email_and_webhook_in_the_outbox_not_the_inbox(
    store: Store, loop: asyncio.Runner, clock: FakeClock
) -> None:
    # START is 12:00 UTC; a window around it, in a zone two hours ahead in May.
    window = QuietHours(starts=time(13, 0), ends=time(15, 30), zone=zone_named("Europe/Berlin"))

    async def scenario() -> None:
        await store.set_preference(USER, KIND, ALL_CHANNELS)
        await store.set_quiet_hours(USER, window)
        await store.enqueue([make_event("quiet", severity=Severity.WATCH)])
        [quiet] = (await store.decide_claimable(W1, 10, DECIDE)).recorded
        assert isinstance(quiet.outcome, Plan) and quiet.outcome.hold is not None
        assert quiet.jobs == ()  # nothing to send now
        ends = clock().replace(hour=13, minute=30, microsecond=0)
        assert quiet.outcome.hold.until == ends
        assert len(await store.inbox(USER, unread_only=False, limit=10)) == 1
        assert await store.claim_due_deliveries(W2, 10) == []
        held = [d for d in await store.deliveries(None, 10) if d.channel is not Channel.IN_APP]
        assert {d.status for d in held} == {DeliveryStatus.PENDING}
        assert {d.next_attempt_at for d in held} == {ends}
        clock.set(ends)
        due = await store.claim_due_deliveries(W2, 10)
        assert sorted(job.channel.value for job in due) == ["email", "webhook"]

    loop.run(scenario())


def test_what_the_cooldown_held_back_is_sent_once_as_a_digest_when_it_ends(
    store: Store, loop: asyncio.Runner, clock: FakeClock
) -> None:
    async def scenario() -> None:
        await store.enqueue([make_event("first", severity=Severity.INFO)])
        await store.decide_claimable(W1, 10, DECIDE)
        for n in range(3):
            clock.advance(timedelta(minutes=10))
            severity = Severity.CRITICAL if n == 1 else Severity.INFO
            await store.enqueue([make_event(f"held{n}", severity=severity)])
            await store.decide_claimable(W1, 10, DECIDE)
        # held1 rose above info and was notified: held0 and held2 wait, past its cooldown.
        clock.advance(COOLDOWN - timedelta(minutes=15))
        assert (await store.decide_due_digests(W1, 10, DECIDE)).recorded == ()
        assert (await store.backlog()).due_digests == 0
        clock.advance(timedelta(minutes=10))
        assert (await store.backlog()).due_digests == 1
        [digest] = (await store.decide_due_digests(W1, 10, DECIDE)).recorded
        assert digest.event_id.startswith(DIGEST_PREFIX)
        assert isinstance(digest.outcome, Plan)
        assert (await store.decide_due_digests(W2, 10, DECIDE)).recorded == ()
        newest = (await store.inbox(USER, unread_only=False, limit=1))[0]
        assert newest.title == f"2 more {KIND} events"
        assert json.loads(newest.payload_json or "")["event_ids"] == ["held0", "held2"]
        assert newest.severity is Severity.INFO
        # The digest started the next cooldown: the next event is held for a new one.
        await store.enqueue([make_event("after", severity=Severity.INFO)])
        [after] = (await store.decide_claimable(W1, 10, DECIDE)).recorded
        assert isinstance(after.outcome, Skip) and after.outcome.held_for_digest

    loop.run(scenario())


def test_a_keys_due_digest_is_decided_before_its_next_event(
    store: Store, loop: asyncio.Runner, clock: FakeClock
) -> None:
    async def scenario() -> None:
        await store.enqueue([make_event("first"), make_event("held")])
        await store.decide_claimable(W1, 10, DECIDE)
        clock.advance(COOLDOWN + timedelta(minutes=1))
        await store.enqueue([make_event("next")])
        recorded = (await store.decide_claimable(W1, 10, DECIDE)).recorded
        assert [r.event_id.startswith(DIGEST_PREFIX) for r in recorded] == [True, False]
        assert isinstance(recorded[0].outcome, Plan)
        assert isinstance(recorded[1].outcome, Skip) and recorded[1].outcome.held_for_digest
        assert (await store.decide_due_digests(W2, 10, DECIDE)).recorded == ()

    loop.run(scenario())


def test_a_kind_whose_preference_says_no_digest_keeps_its_skips(
    store: Store, loop: asyncio.Runner, clock: FakeClock
) -> None:
    async def scenario() -> None:
        await store.set_preference(USER, KIND, Preference(("in_app",), Severity.INFO, digest=False))
        await store.enqueue([make_event("first"), make_event("skipped")])
        recorded = (await store.decide_claimable(W1, 10, DECIDE)).recorded
        assert isinstance(recorded[1].outcome, Skip)
        assert not recorded[1].outcome.held_for_digest
        clock.advance(COOLDOWN * 2)
        assert (await store.backlog()).due_digests == 0
        assert (await store.decide_due_digests(W1, 10, DECIDE)).recorded == ()

    loop.run(scenario())


def test_of_two_escalations_in_one_batch_the_later_is_the_keys_last(
    store: Store, loop: asyncio.Runner, clock: FakeClock
) -> None:
    """Both are recorded at the batch's instant; the later, more severe one is what the
    next event must rise above (the SQL stores once picked either)."""

    async def scenario() -> None:
        await store.enqueue([make_event("info", severity=Severity.INFO)])
        await store.decide_claimable(W1, 10, DECIDE)
        clock.advance(timedelta(hours=1))
        await store.enqueue(
            [make_event("watch", severity=Severity.WATCH),
             make_event("critical", severity=Severity.CRITICAL)]
        )  # fmt: skip
        recorded = (await store.decide_claimable(W1, 10, DECIDE)).recorded
        assert [type(r.outcome) for r in recorded] == [Plan, Plan]
        clock.advance(timedelta(hours=1))
        await store.enqueue([make_event("again", severity=Severity.CRITICAL)])
        [again] = (await store.decide_claimable(W1, 10, DECIDE)).recorded
        assert isinstance(again.outcome, Skip)
        assert again.outcome.last_severity is Severity.CRITICAL

    loop.run(scenario())

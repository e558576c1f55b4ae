"""Fencing on the database clock: a worker whose lease expired can neither record nor settle.

The contract suite checks the same rules with an injected clock; here the leases run
out in real time on PostgreSQL's own clock, as they do between machines.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from tidings.adapters.postgres import PostgresStore, decisions
from tidings.adapters.recording import ValidatedRows, validate_rows
from tidings.core import Event, Policy, Preference, Severity, decide_with
from tidings.core.ports import StoreUnavailable
from tidings.core.records import Delivered, DeliveryStatus, EventStatus

LEASE = timedelta(milliseconds=300)
START = datetime.now(UTC)


def event(event_id: str) -> Event:
    return Event(
        event_id=event_id,
        user_id="ana",
        kind="overload",
        severity=Severity.WATCH,
        title="Overload",
        body="Hours crossed 50",
    )


def test_a_worker_whose_lease_expired_cannot_record_or_settle(postgres_url: str) -> None:
    decide = functools.partial(decide_with, policy=Policy())

    async def scenario() -> None:
        store = PostgresStore(postgres_url, lease=LEASE)
        try:
            await store.migrate()
            await store.set_preference("ana", "overload", Preference(("email",), Severity.INFO))
            await store.enqueue([event("late"), event("mailed")])

            # "slow" claims both, then stalls past its lease; "fast" takes "late" over.
            assert len(await store.claim_events("slow", 10)) == 2
            await asyncio.sleep(LEASE.total_seconds() * 2)
            [taken] = await store.claim_events("fast", 1)
            assert taken.event_id == "late"
            assert await store.record_decisions("slow", [event("late")], decide) == []
            [recorded] = await store.record_decisions("fast", [event("late")], decide)
            record = await store.event_record("late")
            assert record is not None
            assert record.status is EventStatus.NOTIFIED
            assert record.notification_id == recorded.notification_id

            # The email delivery "fast" planned: it stalls, "slow" takes it over and settles.
            [job] = recorded.jobs
            await asyncio.sleep(LEASE.total_seconds() * 2)
            [again] = await store.claim_due_deliveries("slow", 10)
            assert again.delivery_id == job.delivery_id
            assert not await store.settle_delivery("fast", job.delivery_id, Delivered(), None)
            assert await store.settle_delivery("slow", job.delivery_id, Delivered(), None)
            [delivery] = await store.deliveries()
            assert delivery.status is DeliveryStatus.DELIVERED
            assert delivery.attempts == 1
        finally:
            await store.close()

    asyncio.run(scenario())


def test_renewal_keeps_a_live_workers_claims(postgres_url: str) -> None:
    # A lease long enough that a renewal every third of it is never late on a busy
    # machine; four renewals outlast it anyway.
    lease = timedelta(seconds=1.5)

    async def scenario() -> None:
        store = PostgresStore(postgres_url, lease=lease)
        try:
            await store.migrate()
            await store.enqueue([event("held")])
            assert len(await store.claim_events("alive", 10)) == 1
            for _ in range(4):
                await asyncio.sleep(lease.total_seconds() / 3)
                await store.renew_claims("alive")
            assert await store.claim_events("other", 10) == []
        finally:
            await store.close()

    asyncio.run(scenario())


def test_a_runner_that_hangs_inside_its_claim_loses_it_after_a_lease(postgres_url: str) -> None:
    """Claiming and deciding share one transaction: a runner that stops answering in the
    middle (here its decision blocks for a few leases) has its session ended by the
    server, so its events are claimable again and decided exactly once."""
    lease = timedelta(seconds=1)
    decide = functools.partial(decide_with, policy=Policy())

    def hung(*args: object) -> object:
        time.sleep(3 * lease.total_seconds())  # blocks the whole runner, as a hang does
        return decide(*args)  # type: ignore[arg-type]

    taken_over: list[str] = []

    def second_runner() -> None:
        async def scenario() -> None:
            await asyncio.sleep(2 * lease.total_seconds())
            store = PostgresStore(postgres_url, lease=lease)
            try:
                claim = await store.decide_claimable("w2", 10, decide)
                taken_over.extend(recorded.event_id for recorded in claim.recorded)
            finally:
                await store.close()

        asyncio.run(scenario())

    async def scenario() -> None:
        store = PostgresStore(postgres_url, lease=lease)
        try:
            await store.migrate()
            await store.enqueue([event("stuck")])
            other = threading.Thread(target=second_runner)
            other.start()
            with pytest.raises(StoreUnavailable):
                await store.decide_claimable("w1", 10, hung)  # type: ignore[arg-type]
            await asyncio.to_thread(other.join)
            record = await store.event_record("stuck")
            assert record is not None and record.status is EventStatus.NOTIFIED
            assert len(await store.inbox("ana", limit=10)) == 1
        finally:
            await store.close()

    asyncio.run(scenario())
    assert taken_over == ["stuck"]


def slowed(seconds: float) -> Callable[[Sequence[Sequence[Any]]], ValidatedRows]:
    """Claim validation that first stalls the whole runner (a long GC pause, a paused
    VM): the claim transaction then sits idle while its rows are locked."""
    validate = validate_rows

    def stalled(rows: Sequence[Sequence[Any]]) -> ValidatedRows:
        time.sleep(seconds)
        return validate(rows)

    return stalled


def test_a_stall_before_a_plain_statement_is_a_lost_connection_too(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the stall the runner's next statement is a plain one (rejecting a bad
    row), which the ended session answers with an error of its own class: the runner
    must see it as a lost connection (and retry), not as a bug that stops it."""
    lease = timedelta(milliseconds=500)

    async def scenario() -> None:
        store = PostgresStore(postgres_url, lease=lease)
        try:
            await store.migrate()
            async with await psycopg.AsyncConnection.connect(postgres_url) as producer:
                await producer.execute(
                    "INSERT INTO events (event_id, user_id, kind, severity, title, body)"
                    " VALUES ('loud', 'ana', 'overload', 'loud', 'T', 'B')"
                )
            decide = functools.partial(decide_with, policy=Policy())
            with monkeypatch.context() as patch:
                patch.setattr(decisions, "validate_rows", slowed(3 * lease.total_seconds()))
                with pytest.raises(StoreUnavailable):
                    await store.decide_claimable("w1", 10, decide)
            claim = await store.decide_claimable("w1", 10, decide)  # the retry
            assert [event_id for event_id, _ in claim.rejected] == ["loud"]
        finally:
            await store.close()

    asyncio.run(scenario())


def test_a_lease_claim_and_a_deciding_claim_never_deadlock(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker recording under an expired lease (``record_decisions``) while another
    runner has taken the event over (``decide_claimable``): both lock rows before keys,
    so the late worker is fenced out instead of deadlocking."""
    decide = functools.partial(decide_with, policy=Policy())
    taken_over: list[str] = []

    def second_runner() -> None:
        async def scenario() -> None:
            store = PostgresStore(postgres_url)
            try:
                claim = await store.decide_claimable("new", 10, decide)
                taken_over.extend(recorded.event_id for recorded in claim.recorded)
            finally:
                await store.close()

        asyncio.run(scenario())

    async def scenario() -> None:
        # A clock an hour behind: the lease this worker takes has already expired.
        late = PostgresStore(
            postgres_url, lease=timedelta(seconds=30), clock=lambda: START - timedelta(hours=1)
        )
        try:
            await late.migrate()
            await late.enqueue([event("e1")])
            [item] = await late.claim_events("late", 10)
            patch = monkeypatch.context()
            with patch as patched:
                patched.setattr(decisions, "validate_rows", slowed(1.0))
                other = threading.Thread(target=second_runner)
                other.start()
                await asyncio.sleep(0.4)  # the other runner holds e1 and is deciding
            assert await late.record_decisions("late", [event(item.event_id)], decide) == []
            await asyncio.to_thread(other.join)
        finally:
            await late.close()

    asyncio.run(scenario())
    assert taken_over == ["e1"]

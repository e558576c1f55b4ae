"""Fencing on the database clock: a worker whose lease expired can neither record nor settle.

The contract suite checks the same rules with an injected clock; here the leases run
out in real time on PostgreSQL's own clock, as they do between machines.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from datetime import timedelta

import pytest

from adapters.postgres import PostgresStore
from core import Event, Policy, Preference, Severity, decide_with
from core.ports import StoreUnavailable
from core.records import Delivered, DeliveryStatus, EventStatus

LEASE = timedelta(milliseconds=300)


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
    async def scenario() -> None:
        store = PostgresStore(postgres_url, lease=LEASE)
        try:
            await store.migrate()
            await store.enqueue([event("held")])
            assert len(await store.claim_events("alive", 10)) == 1
            for _ in range(4):
                await asyncio.sleep(LEASE.total_seconds() / 3)
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

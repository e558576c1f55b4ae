"""Fencing on the database clock: a worker whose delivery lease expired cannot settle,
and a runner that hangs inside its claim-and-decide transaction loses it.

The contract suite checks the same rules with an injected clock; here the leases run
out in real time on PostgreSQL's own clock, as they do between machines.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from tidings.adapters.postgres import PostgresStore, decisions
from tidings.adapters.recording import ValidatedRows, validate_rows
from tidings.core import Event, Policy, Preference, Severity, decide_with
from tidings.core.ports import StoreUnavailable
from tidings.core.records import Delivered, DeliveryStatus, EventStatus

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


def test_a_worker_whose_delivery_lease_expired_cannot_settle(postgres_url: str) -> None:
    decide = functools.partial(decide_with, policy=Policy())

    async def scenario() -> None:
        store = PostgresStore(postgres_url, lease=LEASE)
        try:
            await store.migrate()
            await store.set_preference("ana", "overload", Preference(("email",), Severity.INFO))
            await store.enqueue([event("mailed")])
            claim = await store.decide_claimable("fast", 10, decide)
            [recorded] = claim.recorded
            record = await store.event_record("mailed")
            assert record is not None
            assert record.status is EventStatus.NOTIFIED
            assert record.notification_id == recorded.notification_id

            # The email delivery "fast" planned: it stalls, "slow" takes it over and settles.
            [job] = recorded.jobs
            assert await store.claim_due_deliveries("slow", 10) == []
            await asyncio.sleep(LEASE.total_seconds() * 2)
            [again] = await store.claim_due_deliveries("slow", 10)
            assert again.delivery_id == job.delivery_id
            assert not await store.settle_delivery("fast", job.delivery_id, Delivered(), None)
            assert await store.settle_delivery("slow", job.delivery_id, Delivered(), None)
            [delivery] = await store.deliveries(DeliveryStatus.DELIVERED)
            assert delivery.channel.value == "email"
            assert delivery.attempts == 1
        finally:
            await store.close()

    asyncio.run(scenario())


def test_renewal_keeps_a_live_workers_delivery_claims(postgres_url: str) -> None:
    # A lease long enough that a renewal every third of it is never late on a busy
    # machine; four renewals outlast it anyway.
    lease = timedelta(seconds=1.5)
    decide = functools.partial(decide_with, policy=Policy())

    async def scenario() -> None:
        store = PostgresStore(postgres_url, lease=lease)
        try:
            await store.migrate()
            await store.set_preference("ana", "overload", Preference(("email",), Severity.INFO))
            await store.enqueue([event("held")])
            [recorded] = (await store.decide_claimable("alive", 10, decide)).recorded
            [job] = recorded.jobs
            for _ in range(4):
                await asyncio.sleep(lease.total_seconds() / 3)
                assert await store.renew_claims("alive", [job.delivery_id]) == {job.delivery_id}
            assert await store.claim_due_deliveries("other", 10) == []
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

"""The claim-and-decide contract (``core.ports.ClaimDeciding``), for every store that
offers it: claim, validate, decide and record in one transaction, in claim order,
within a lane of keys, leaving live lease claims alone and taking over expired ones.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict

import pytest

from tests.adapters.conftest import LEASE, FakeClock
from tests.adapters.test_store_contract import DECIDE, USER, W1, W2, claim, make_event
from tidings.core import Preference, Severity, Skip, SkipReason
from tidings.core.ports import ClaimDeciding, Store
from tidings.core.records import DecidedClaim, EventStatus


def deciding(store: Store) -> ClaimDeciding:
    assert isinstance(store, ClaimDeciding)
    return store


async def decide(
    store: Store, worker_id: str = W1, limit: int = 100, *, lane: int = 0, lanes: int = 1
) -> DecidedClaim:
    return await deciding(store).decide_claimable(worker_id, limit, DECIDE, lane=lane, lanes=lanes)


def test_decides_in_claim_order_and_records_each_decision(
    deciding_store: Store, loop: asyncio.Runner
) -> None:
    store = deciding_store

    async def scenario() -> None:
        await store.set_preference(USER, "weekly_digest", Preference((), Severity.INFO))
        events = [
            make_event("e1"),
            make_event("e2"),  # same key, inside the cooldown of e1
            make_event("e3", kind="weekly_digest"),  # silenced kind
        ]
        assert await store.enqueue(events) == 3
        claimed = await decide(store)
        assert [r.event_id for r in claimed.recorded] == ["e1", "e2", "e3"]
        assert claimed.rejected == ()
        first, second, third = (r.outcome for r in claimed.recorded)
        assert not isinstance(first, Skip)
        assert isinstance(second, Skip) and second.reason is SkipReason.COOLDOWN
        assert isinstance(third, Skip) and third.reason is SkipReason.NO_CHANNELS
        records = [await store.event_record(e.event_id) for e in events]
        assert [r.status if r else None for r in records] == [
            EventStatus.NOTIFIED,
            EventStatus.SKIPPED,
            EventStatus.SKIPPED,
        ]
        assert all(r is not None and r.explanation for r in records)
        [notification] = await store.inbox(USER, limit=10)
        assert notification.event_id == "e1"
        assert (await store.backlog()).empty
        assert (await decide(store)).recorded == ()

    loop.run(scenario())


def test_takes_at_most_the_limit_oldest_first(deciding_store: Store, loop: asyncio.Runner) -> None:
    store = deciding_store

    async def scenario() -> None:
        await store.enqueue([make_event(f"e{i}", kind=f"k{i}") for i in range(5)])
        batches = [[r.event_id for r in (await decide(store, limit=2)).recorded] for _ in range(4)]
        assert batches == [["e0", "e1"], ["e2", "e3"], ["e4"], []]

    loop.run(scenario())


def test_an_invalid_stored_event_is_rejected_alone(
    deciding_store: Store, loop: asyncio.Runner
) -> None:
    store = deciding_store

    async def scenario() -> None:
        bad = make_event("bad", title="two\nlines", kind="_global")
        await store.enqueue([make_event("before"), bad, make_event("after", kind="k2")])
        claimed = await decide(store)
        assert [r.event_id for r in claimed.recorded] == ["before", "after"]
        [(event_id, error)] = claimed.rejected
        assert event_id == "bad"
        assert {e.field for e in error.errors} == {"title", "kind"}
        record = await store.event_record("bad")
        assert record is not None and record.status is EventStatus.REJECTED
        assert record.error is not None and "title:" in record.error and "kind:" in record.error
        assert (await store.backlog()).empty

    loop.run(scenario())


def test_live_claims_are_left_alone_and_expired_ones_taken_over(
    deciding_store: Store, loop: asyncio.Runner, clock: FakeClock
) -> None:
    """The expired claim lies behind what the lane took last (a full batch of one): a
    store that resumes where its last batch ended must still go round again for it."""
    store = deciding_store

    async def scenario() -> None:
        await store.enqueue([make_event("held"), make_event("free", kind="k2")])
        [held] = await claim(store, W2, limit=1)  # another worker's lease claim
        assert held.event_id == "held"
        assert [r.event_id for r in (await decide(store, limit=1)).recorded] == ["free"]
        assert not (await store.backlog()).empty  # the live claim is not finished
        clock.advance(LEASE)
        assert [r.event_id for r in (await decide(store)).recorded] == ["held"]
        # The worker whose lease expired is fenced out.
        assert await store.record_decisions(W2, [held], DECIDE) == []
        assert (await store.backlog()).empty

    loop.run(scenario())


def test_an_expired_claim_behind_a_full_batch_is_taken_over(
    deciding_store: Store, loop: asyncio.Runner, clock: FakeClock
) -> None:
    """A full batch that ends at the newest event: the next claim finds nothing past
    it, and must still go back for the older event whose lease expired meanwhile."""
    store = deciding_store

    async def scenario() -> None:
        await store.enqueue(
            [make_event("held"), make_event("a", kind="k2"), make_event("b", kind="k3")]
        )
        await claim(store, W2, limit=1)
        assert [r.event_id for r in (await decide(store, limit=2)).recorded] == ["a", "b"]
        clock.advance(LEASE)
        assert [r.event_id for r in (await decide(store, limit=2)).recorded] == ["held"]
        assert (await store.backlog()).empty

    loop.run(scenario())


def test_an_expired_claim_is_taken_over_within_a_bounded_number_of_full_batches(
    deciding_store: Store, loop: asyncio.Runner, clock: FakeClock
) -> None:
    """Full batches keep coming after the lease expires: a store that resumes where
    its last batch ended must still go back for the expired claim, and soon."""
    store = deciding_store

    async def scenario() -> None:
        events = [make_event(f"e{i:02}", kind=f"k{i}") for i in range(40)]
        await store.enqueue([make_event("held"), *events])
        await claim(store, W2, limit=1)
        order = [r.event_id for r in (await decide(store, limit=1)).recorded]
        clock.advance(LEASE)
        for _ in range(40):
            order.extend(r.event_id for r in (await decide(store, limit=1)).recorded)
        assert "held" in order[:18]
        assert sorted(order) == sorted(["held", *(e.event_id for e in events)])

    loop.run(scenario())


def test_lanes_split_the_keys_and_keep_each_keys_order(
    deciding_store: Store, loop: asyncio.Runner
) -> None:
    store = deciding_store
    lanes = min(3, deciding(store).max_lanes)

    async def scenario() -> None:
        keys = [(f"user{u}", f"kind{k}") for u in range(5) for k in range(4)]
        events = [
            make_event(f"e{round_}-{user}-{kind}", user_id=user, kind=kind)
            for round_ in range(3)
            for user, kind in keys
        ]
        await store.enqueue(events)
        lane_of: dict[tuple[str, str], set[int]] = defaultdict(set)
        order: dict[tuple[str, str], list[str]] = defaultdict(list)
        for lane in range(lanes):
            for recorded in (await decide(store, limit=1000, lane=lane, lanes=lanes)).recorded:
                key = (recorded.user_id, recorded.outcome.kind)
                lane_of[key].add(lane)
                order[key].append(recorded.event_id)
        assert all(len(found) == 1 for found in lane_of.values())
        assert set(order) == set(keys)
        for user, kind in keys:
            assert order[(user, kind)] == [f"e{r}-{user}-{kind}" for r in range(3)]
        assert (await store.backlog()).empty

    loop.run(scenario())


def test_lanes_beyond_the_store_maximum_are_refused(
    deciding_store: Store, loop: asyncio.Runner
) -> None:
    store = deciding_store
    most = deciding(store).max_lanes
    assert most >= 1
    with pytest.raises(ValueError, match="lane"):
        loop.run(decide(store, lane=0, lanes=most + 1))
    with pytest.raises(ValueError, match="lane"):
        loop.run(decide(store, lane=most, lanes=most))


def test_concurrent_claims_never_take_the_same_event(
    deciding_store: Store, loop: asyncio.Runner
) -> None:
    store = deciding_store

    async def scenario() -> None:
        await store.enqueue([make_event(f"e{i}", kind=f"k{i % 7}") for i in range(40)])
        taken: list[str] = []
        while True:
            rounds = await asyncio.gather(decide(store, W1, limit=6), decide(store, W2, limit=6))
            found = [r.event_id for claimed in rounds for r in claimed.recorded]
            if not found:
                break
            taken.extend(found)
        assert sorted(taken) == sorted(f"e{i}" for i in range(40))
        notified = [n.kind for n in await store.inbox(USER, limit=100)]
        assert sorted(notified) == [f"k{i}" for i in range(7)]  # one per key: the cooldown

    loop.run(scenario())

"""The claim-and-decide contract (``core.ports.DispatchStore.decide_claimable``), the
one way events are decided, for every store: claim, validate, decide and record in one
transaction, in claim order, within a lane of keys, never twice however many claim at
once. (A lane resuming past events released behind it: ``test_postgres_lanes``.)
"""

from __future__ import annotations

import asyncio
from collections import defaultdict

import pytest

from tests.adapters.test_store_contract import USER, W1, W2, decide, make_event
from tidings.core import Preference, Severity, Skip, SkipReason
from tidings.core.ports import Store
from tidings.core.records import EventStatus


def test_decides_in_claim_order_and_records_each_decision(
    store: Store, loop: asyncio.Runner
) -> None:
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


def test_takes_at_most_the_limit_oldest_first(store: Store, loop: asyncio.Runner) -> None:
    async def scenario() -> None:
        await store.enqueue([make_event(f"e{i}", kind=f"k{i}") for i in range(5)])
        batches = [[r.event_id for r in (await decide(store, limit=2)).recorded] for _ in range(4)]
        assert batches == [["e0", "e1"], ["e2", "e3"], ["e4"], []]

    loop.run(scenario())


def test_an_invalid_stored_event_is_rejected_alone(store: Store, loop: asyncio.Runner) -> None:
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


def test_lanes_split_the_keys_and_keep_each_keys_order(store: Store, loop: asyncio.Runner) -> None:
    lanes = min(3, store.max_lanes)

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


def test_lanes_beyond_the_store_maximum_are_refused(store: Store, loop: asyncio.Runner) -> None:
    most = store.max_lanes
    assert most >= 1
    with pytest.raises(ValueError, match="lane"):
        loop.run(decide(store, lane=0, lanes=most + 1))
    with pytest.raises(ValueError, match="lane"):
        loop.run(decide(store, lane=most, lanes=most))


def test_concurrent_claims_never_take_the_same_event(store: Store, loop: asyncio.Runner) -> None:
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

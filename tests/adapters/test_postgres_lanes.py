"""A PostgreSQL lane resumes claiming where its last full batch ended, yet goes back for
an event released behind it.

An event can fall behind a lane's position when another runner's transaction held its
key (``SKIP LOCKED`` passed over the key's bucket) and then rolled back; here a plain
connection holds the bucket, as that runner would, and lets go.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import psycopg

from tidings.adapters.postgres import PostgresStore
from tidings.adapters.postgres.claims import BUCKETS
from tidings.core import Event, Policy, Severity, decide_with

DECIDE = partial(decide_with, policy=Policy())


def event(event_id: str, kind: str = "overload") -> Event:
    return Event(
        event_id=event_id, user_id="ana", kind=kind, severity=Severity.WATCH, title="T", body="B"
    )


@asynccontextmanager
async def held(url: str, event_id: str) -> AsyncIterator[None]:
    """The event's key held by another transaction until the block ends, then rolled
    back: a runner that claimed it and failed. (A runner holds a key's bucket while it
    decides the key's events: adapters/postgres/claims.py.)"""
    async with await psycopg.AsyncConnection.connect(url) as other:
        await other.execute(
            "SELECT 1 FROM decision_locks WHERE bucket = (SELECT"
            f" abs(hashtextextended(user_id || chr(31) || kind, 0) %% {BUCKETS})"
            " FROM events WHERE event_id = %s) FOR UPDATE",
            (event_id,),
        )
        yield
        await other.rollback()


async def taken(store: PostgresStore, limit: int) -> list[str]:
    claim = await asyncio.wait_for(store.decide_claimable("w", limit, DECIDE), 10)
    return [recorded.event_id for recorded in claim.recorded]


def test_a_held_event_is_passed_over_then_taken_once_released(postgres_url: str) -> None:
    """The held key is passed over, not waited for, while other keys are there to take;
    the claims that follow find nothing past the newest event, and must still go back
    for the older event released meanwhile."""

    async def scenario() -> None:
        store = PostgresStore(postgres_url)
        try:
            await store.migrate()
            await store.enqueue([event("held"), event("a", "k2"), event("b", "k3")])
            async with held(postgres_url, "held"):
                assert await taken(store, 2) == ["a"]  # not waiting for the lock
                assert await taken(store, 2) == ["b"]
            assert await taken(store, 2) == ["held"]
            assert (await store.backlog()).empty
        finally:
            await store.close()

    asyncio.run(scenario())


def test_a_lane_with_only_held_keys_waits_for_them(postgres_url: str) -> None:
    """With nothing else to take, a claim waits for the oldest key's holder (instead of
    coming back empty and polling), then takes its events once it lets go."""

    async def scenario() -> None:
        store = PostgresStore(postgres_url)
        try:
            await store.migrate()
            await store.enqueue([event("held"), event("after")])
            async with held(postgres_url, "held"):
                waiting = asyncio.create_task(taken(store, 10))
                await asyncio.sleep(0.5)
                assert not waiting.done()
            assert await waiting == ["held", "after"]
        finally:
            await store.close()

    asyncio.run(scenario())


def test_a_released_event_is_taken_within_a_bounded_number_of_full_batches(
    postgres_url: str,
) -> None:
    """Full batches keep coming after the event is released: a lane that resumes where
    its last batch ended must still go back for it, and soon."""

    async def scenario() -> None:
        store = PostgresStore(postgres_url)
        try:
            await store.migrate()
            others = [event(f"e{i:02}", f"k{i}") for i in range(40)]
            await store.enqueue([event("held"), *others])
            async with held(postgres_url, "held"):
                claims = [await taken(store, 2)]  # passes the held key over
            claims.extend([await taken(store, 2) for _ in range(20)])
            assert "held" not in claims[0]
            assert any("held" in claim for claim in claims[:17])
            order = [event_id for claim in claims for event_id in claim]
            assert sorted(order) == sorted(["held", *(e.event_id for e in others)])
        finally:
            await store.close()

    asyncio.run(scenario())

"""A PostgreSQL lane resumes claiming where its last full batch ended, yet goes back for
an event released behind it.

An event can fall behind a lane's position when another runner's transaction held it
(``SKIP LOCKED`` passed over it) and then rolled back; here a plain connection holds
the row, as that runner would, and lets go.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import psycopg

from tidings.adapters.postgres import PostgresStore
from tidings.core import Event, Policy, Severity, decide_with

DECIDE = partial(decide_with, policy=Policy())


def event(event_id: str, kind: str = "overload") -> Event:
    return Event(
        event_id=event_id, user_id="ana", kind=kind, severity=Severity.WATCH, title="T", body="B"
    )


@asynccontextmanager
async def held(url: str, event_id: str) -> AsyncIterator[None]:
    """The event's row locked by another transaction until the block ends, then rolled
    back: a runner that claimed it and failed."""
    async with await psycopg.AsyncConnection.connect(url) as other:
        await other.execute("SELECT 1 FROM events WHERE event_id = %s FOR UPDATE", (event_id,))
        yield
        await other.rollback()


async def taken(store: PostgresStore, limit: int) -> list[str]:
    claim = await asyncio.wait_for(store.decide_claimable("w", limit, DECIDE), 10)
    return [recorded.event_id for recorded in claim.recorded]


def test_a_held_event_is_passed_over_then_taken_once_released(postgres_url: str) -> None:
    """A full batch that ends at the newest event: the next claim finds nothing past
    it, and must still go back for the older event released meanwhile."""

    async def scenario() -> None:
        store = PostgresStore(postgres_url)
        try:
            await store.migrate()
            await store.enqueue([event("held"), event("a", "k2"), event("b", "k3")])
            async with held(postgres_url, "held"):
                assert await taken(store, 2) == ["a", "b"]  # not waiting for the lock
            assert await taken(store, 2) == ["held"]
            assert (await store.backlog()).empty
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
                order = await taken(store, 1)
            for _ in range(40):
                order.extend(await taken(store, 1))
            assert "held" in order[:18]
            assert sorted(order) == sorted(["held", *(e.event_id for e in others)])
        finally:
            await store.close()

    asyncio.run(scenario())

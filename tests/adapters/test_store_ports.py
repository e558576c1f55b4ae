"""Every store is a ``core.ports.Store``, and the dispatch loop's port stays small.

The stores are assembled from parts and satisfy the protocols structurally, without
inheriting from them: mypy (strict) checks the annotated assignments below, so a store
missing a method, or one with a different signature, fails type checking.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Protocol

from tests.adapters.conftest import START
from tidings.adapters.memory import MemoryStore
from tidings.adapters.postgres import PostgresStore
from tidings.adapters.sqlite import SqliteStore
from tidings.core.ports import DispatchStore, Store
from tidings.testing import FakeClock


def members(protocol: type) -> set[str]:
    """The public members a protocol declares, its own and inherited."""
    return {
        name
        for layer in protocol.__mro__
        if layer not in (Protocol, object) and Protocol in layer.__bases__
        for name in vars(layer)
        if not name.startswith("_")
    }


def test_the_dispatch_port_has_at_most_nine_members() -> None:
    assert members(DispatchStore) == {
        "max_lanes",
        "decide_claimable",
        "decide_due_digests",
        "claim_due_deliveries",
        "settle_delivery",
        "renew_claims",
        "wait_for_events",
        "backlog",
    }


def test_every_store_is_a_store(tmp_path: Path) -> None:
    async def scenario() -> None:
        clock = FakeClock(START)
        stores: tuple[Store, ...] = (
            MemoryStore(clock=clock),
            SqliteStore(str(tmp_path / "tidings.db"), clock=clock),
            PostgresStore("postgresql://tidings@127.0.0.1:1/never-opened"),
        )
        for store in stores:
            dispatching: DispatchStore = store
            assert dispatching.max_lanes >= 1
            await store.close()

    asyncio.run(scenario())

"""The SQL stores' schema status on real databases: a database behind by a migration says
so without being changed, and the migration that ended event leases hands an event an
earlier version left claimed back to the intake, to be decided once.

(An empty database and a migrated one, for every store: ``test_store_contract``.)
"""

from __future__ import annotations

import asyncio
import sqlite3
from functools import partial
from pathlib import Path

import psycopg
import pytest

from tests.adapters.conftest import START
from tidings.adapters.migrations import load_migrations
from tidings.adapters.postgres import PostgresStore
from tidings.adapters.sqlite import SqliteStore
from tidings.core import Event, Policy, Severity, decide_with
from tidings.core.ports import Store
from tidings.core.records import EventStatus
from tidings.testing import FakeClock

LEASES_ENDED = {"sqlite": 4, "postgres": 5}
"""The migration that ends event leases, in each backend."""


def test_looking_at_a_missing_sqlite_file_does_not_create_it(tmp_path: Path) -> None:
    path = tmp_path / "tidings.db"

    async def scenario() -> int:
        store = SqliteStore(str(path), clock=FakeClock(START))
        try:
            return await store.pending_migrations()
        finally:
            await store.close()

    assert asyncio.run(scenario()) == len(load_migrations("tidings.adapters.sqlite"))
    assert not path.exists()


def _run_sql(backend: str, target: str, statements: tuple[str, ...]) -> None:
    """Change the database behind the store's back, as an older version would have."""
    if backend == "sqlite":
        with sqlite3.connect(target) as connection:
            for statement in statements:
                connection.execute(statement)
        connection.close()
        return
    with psycopg.connect(target) as pg:
        for statement in statements:
            pg.execute(statement.encode())


def _store(backend: str, target: str) -> Store:
    if backend == "sqlite":
        return SqliteStore(target, clock=FakeClock(START))
    return PostgresStore(target)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_an_event_left_claimed_by_an_earlier_version_is_decided_after_migrating(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    target = (
        str(tmp_path / "tidings.db")
        if backend == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    version = LEASES_ENDED[backend]
    event = Event(
        event_id="left",
        user_id="ana",
        kind="overload",
        severity=Severity.WATCH,
        title="T",
        body="B",
    )

    async def prepare() -> None:
        store = _store(backend, target)
        try:
            await store.migrate()
            await store.enqueue([event])
        finally:
            await store.close()

    async def upgrade() -> None:
        store = _store(backend, target)
        try:
            assert await store.pending_migrations() == 1
            assert await store.pending_migrations() == 1  # looking changed nothing
            assert await store.migrate() == 1
            assert await store.pending_migrations() == 0
            claim = await store.decide_claimable("w", 10, partial(decide_with, policy=Policy()))
            assert [recorded.event_id for recorded in claim.recorded] == ["left"]
            record = await store.event_record("left")
            assert record is not None
            assert record.status is EventStatus.NOTIFIED
            assert (await store.backlog()).empty
        finally:
            await store.close()

    asyncio.run(prepare())
    # As the database stood before the migration that ended leases, with an event
    # claimed under a lease through the lease-claim API that version still had.
    _run_sql(
        backend,
        target,
        (
            f"DELETE FROM schema_migrations WHERE version = {version}",
            "UPDATE events SET status = 'claimed', claimed_by = 'gone',"
            " lease_until = '2999-01-01T00:00:00+00:00' WHERE event_id = 'left'",
        ),
    )
    asyncio.run(upgrade())

"""Fixtures for the store contract suite: a controllable clock and one store per backend.

Every store runs the same contract (``test_store_contract.py``). A backend is one entry
in ``STORE_FACTORIES``: a function that builds the store from ``StoreSettings`` as an
async context manager (set up whatever the backend needs, yield the store, tear it
down). The ``store`` fixture migrates the store before the test and closes it after.

There is no pytest-asyncio: each test gets one ``asyncio.Runner`` (the ``loop``
fixture) that the fixtures and the test share, so a backend whose connections belong
to an event loop (a PostgreSQL pool) is opened, used and closed on the same loop.
"""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import attrs
import pytest
import trustme

from tests.smtp_server import HOST
from tidings.adapters.memory import MemoryStore
from tidings.adapters.postgres import PostgresStore
from tidings.adapters.sqlite import SqliteStore
from tidings.core.ports import Store
from tidings.testing import FakeClock

START = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
"""The fake clock's first reading; microseconds catch stores that round times."""

LEASE = timedelta(seconds=30)
"""The delivery claim lease every store under test is built with."""


@attrs.frozen(kw_only=True)
class StoreSettings:
    """What a factory needs to build a store for one test."""

    clock: FakeClock
    lease: timedelta
    directory: Path
    postgres_url: str | None = None


StoreFactory = Callable[[StoreSettings], AbstractAsyncContextManager[Store]]


@asynccontextmanager
async def memory_store(settings: StoreSettings) -> AsyncIterator[Store]:
    yield MemoryStore(clock=settings.clock, lease=settings.lease)


@asynccontextmanager
async def sqlite_store(settings: StoreSettings) -> AsyncIterator[Store]:
    yield SqliteStore(
        str(settings.directory / "tidings.db"), clock=settings.clock, lease=settings.lease
    )


@asynccontextmanager
async def postgres_store(settings: StoreSettings) -> AsyncIterator[Store]:
    assert settings.postgres_url is not None
    yield PostgresStore(settings.postgres_url, clock=settings.clock, lease=settings.lease)


STORE_FACTORIES: dict[str, StoreFactory] = {
    "memory": memory_store,
    "sqlite": sqlite_store,
    "postgres": postgres_store,
}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def loop() -> Iterator[asyncio.Runner]:
    """One event loop per test, shared by the ``store`` fixture and the test body."""
    with asyncio.Runner() as runner:
        yield runner


async def _open_store(
    factory: StoreFactory, settings: StoreSettings, stack: AsyncExitStack, *, migrate: bool
) -> Store:
    store = await stack.enter_async_context(factory(settings))
    stack.push_async_callback(store.close)
    if migrate:
        await store.migrate()
    return store


def _opened(
    request: pytest.FixtureRequest,
    loop: asyncio.Runner,
    clock: FakeClock,
    directory: Path,
    *,
    migrate: bool,
) -> Iterator[Store]:
    factory = STORE_FACTORIES[str(request.param)]
    postgres_url = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    settings = StoreSettings(
        clock=clock, lease=LEASE, directory=directory, postgres_url=postgres_url
    )
    stack = AsyncExitStack()
    try:
        yield loop.run(_open_store(factory, settings, stack, migrate=migrate))
    finally:
        loop.run(stack.aclose())


@pytest.fixture(params=list(STORE_FACTORIES))
def store(
    request: pytest.FixtureRequest, loop: asyncio.Runner, clock: FakeClock, tmp_path: Path
) -> Iterator[Store]:
    """A migrated store of each backend, closed (and torn down) after the test."""
    yield from _opened(request, loop, clock, tmp_path, migrate=True)


@pytest.fixture(params=list(STORE_FACTORIES))
def unmigrated_store(
    request: pytest.FixtureRequest, loop: asyncio.Runner, clock: FakeClock, tmp_path: Path
) -> Iterator[tuple[str, Store]]:
    """A store of each backend on an empty database, with its backend's name."""
    for opened in _opened(request, loop, clock, tmp_path, migrate=False):
        yield str(request.param), opened


@pytest.fixture
def runners() -> Iterator[list[subprocess.Popen[bytes]]]:
    """The ``tidings run`` processes a test starts; any still running after it is killed,
    so a failing test leaves none behind on a dropped database."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for runner in started:
        if runner.poll() is None:
            runner.kill()
            runner.wait()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    """A throwaway CA, trusted only by the senders under test (email and its pool)."""
    return trustme.CA()


@pytest.fixture(scope="module")
def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(HOST).configure_cert(context)
    return context


@pytest.fixture(scope="module")
def client_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context

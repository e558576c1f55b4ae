"""The backlog gauges and the latency histograms over the real metrics endpoint, with
each store (memory, SQLite, PostgreSQL) on a fake clock: the gauges follow the store as
events wait, are decided, and their deliveries wait (a retry, quiet hours) and come
due; the latencies observe arrival to decision and decision to first successful send.
A store that is slow or failing costs a scrape at most its bound and leaves the gauges
out; scrapes together share one read; ``/healthz`` stays bounded.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from datetime import time as wall
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.runner.test_metrics import Series, differences, scrape, series
from tidings.adapters.memory import MemoryStore
from tidings.adapters.postgres import PostgresStore
from tidings.adapters.sqlite import SqliteStore
from tidings.core import Channel, Event, Preference, Severity
from tidings.core.ports import StoreUnavailable
from tidings.core.quiet_hours import QuietHours
from tidings.core.records import (
    Backlog,
    ChannelFailed,
    ChannelOutcome,
    Delivered,
    DeliveryJob,
)
from tidings.runner.dispatch import Dispatcher, DispatchOptions
from tidings.runner.dispatch.senders import default_senders
from tidings.runner.telemetry.health import LOOPBACK, serve_health
from tidings.runner.telemetry.metrics import MetricsObserver
from tidings.testing import FakeClock

START = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
"""Inside bo's quiet hours (9:00 to 12:00 UTC)."""
QUIET = QuietHours(starts=wall(9, 0), ends=wall(12, 0), zone=ZoneInfo("UTC"))
WAITED = timedelta(seconds=90)
"""How long the events wait for a runner."""
SEND = timedelta(seconds=2)
"""How long each send takes on the fake clock."""
RETRY = timedelta(minutes=1)

BACKLOG_NAMES = (
    "tidings_backlog_events",
    "tidings_deliveries_due",
    "tidings_deliveries_waiting",
    "tidings_digests_due",
)


def gauges(events: int, due: int, waiting: int, digests: int) -> dict[Series, float]:
    return {
        series(name): value
        for name, value in zip(BACKLOG_NAMES, (events, due, waiting, digests), strict=True)
    }


def latency(name: str, bound: str, **labels: str) -> Series:
    return series(f"{name}_bucket", le=bound, **labels)


EVENT = "tidings_event_latency_seconds"
DELIVERY = "tidings_delivery_latency_seconds"


def event(event_id: str, user_id: str) -> Event:
    return Event(
        event_id=event_id,
        user_id=user_id,
        kind="overload",
        severity=Severity.WATCH,
        title="Overload",
        body="Hours crossed 60",
    )


class TimedSender:
    """Takes ``SEND`` on the fake clock, then delivers, or fails (retryable) for the
    channels in ``failing``."""

    def __init__(self, clock: FakeClock) -> None:
        self._clock = clock
        self.failing: set[Channel] = set()

    async def send(self, job: DeliveryJob) -> ChannelOutcome:
        self._clock.advance(SEND)
        if job.channel in self.failing:
            return ChannelFailed(error="503 try again", retryable=True)
        return Delivered()


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def make_store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[str, str | None, Path]]:
    """The store's name, and what building it needs (a PostgreSQL database, a directory)."""
    url = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    yield str(request.param), url, tmp_path


@asynccontextmanager
async def opened(
    made: tuple[str, str | None, Path], clock: FakeClock
) -> AsyncIterator[MemoryStore | SqliteStore | PostgresStore]:
    name, url, directory = made
    store: MemoryStore | SqliteStore | PostgresStore
    if name == "memory":
        store = MemoryStore(clock=clock)
    elif name == "sqlite":
        store = SqliteStore(str(directory / "tidings.db"), clock=clock)
    else:
        assert url is not None
        store = PostgresStore(url, clock=clock)
    try:
        await store.migrate()
        yield store
    finally:
        await store.close()


async def prepare(store: MemoryStore | SqliteStore | PostgresStore) -> None:
    """ana: email sent at once; bo: email held by quiet hours; cy: webhook, failing at
    first; dan: in-app with a digest of what the cooldown holds back (dan's second)."""
    both = ("in_app", "email")
    await store.set_preference("ana", "overload", Preference(both, Severity.INFO))
    await store.set_preference("bo", "overload", Preference(both, Severity.INFO))
    await store.set_quiet_hours("bo", QUIET)
    await store.set_preference("cy", "overload", Preference(("in_app", "webhook"), Severity.INFO))
    await store.set_preference(
        "dan", "overload", Preference(("in_app",), Severity.INFO, digest=True)
    )
    await store.enqueue(
        [event("a1", "ana"), event("b1", "bo"), event("c1", "cy"), event("d1", "dan")]
    )
    await store.enqueue([event("d2", "dan")])


async def scenario(made: tuple[str, str | None, Path]) -> list[dict[Series, float]]:
    """Scrapes: before any runner, after the first run, once the waiting deliveries
    came due, after the second run, once the digest came due, after it was sent."""
    clock = FakeClock(START)
    sender = TimedSender(clock)
    senders = {**default_senders(), Channel.EMAIL: sender, Channel.WEBHOOK: sender}
    metrics = MetricsObserver(clock=clock)
    options = DispatchOptions(poll_interval=0.01, retry_schedule=(RETRY, RETRY))
    scrapes = []
    async with opened(made, clock) as store:
        await prepare(store)

        async def run() -> None:
            dispatcher = Dispatcher(
                store, senders, worker_id="w", options=options, clock=clock,
                jitter=lambda: 0.0, observers=[metrics],
            )  # fmt: skip
            await asyncio.wait_for(dispatcher.run(until_idle=True), 30)

        async with (
            serve_health(LOOPBACK, 0, metrics.registry, store, lambda: True) as port,
            httpx.AsyncClient(base_url=f"http://{LOOPBACK}:{port}", trust_env=False) as client,
        ):
            scrapes.append(await scrape(client))
            clock.advance(WAITED)
            sender.failing = {Channel.WEBHOOK}
            await run()
            scrapes.append(await scrape(client))
            clock.set(START.replace(hour=12))  # quiet hours over, the retry due
            scrapes.append(await scrape(client))
            sender.failing.clear()
            await run()
            scrapes.append(await scrape(client))
            clock.set(START + WAITED + timedelta(days=1, minutes=1))  # dan's cooldown over
            scrapes.append(await scrape(client))
            await run()
            scrapes.append(await scrape(client))
    return scrapes


def test_the_gauges_follow_the_store_and_the_latencies_observe(
    make_store: tuple[str, str | None, Path],
) -> None:
    before, first, come_due, second, digest_due, digest_sent = asyncio.run(scenario(make_store))

    assert differences(before, gauges(events=5, due=0, waiting=0, digests=0)) == {}
    assert differences(before, {series(f"{EVENT}_count"): 0}) == {}
    assert series("tidings_backlog_read_failures_total") in before

    # Decided after waiting 90 s (and a send or two: lanes decide side by side); ana's
    # email sent a send or two later; bo's held by quiet hours, cy's webhook retrying.
    assert differences(first, gauges(events=0, due=0, waiting=2, digests=0)) == {}
    assert (
        differences(
            first,
            {
                series(f"{EVENT}_count"): 5,
                latency(EVENT, "60.0"): 0,
                latency(EVENT, "120.0"): 5,
                series(f"{DELIVERY}_count", channel="email"): 1,
                latency(DELIVERY, "1.0", channel="email"): 0,
                latency(DELIVERY, "5.0", channel="email"): 1,
                series(f"{DELIVERY}_count", channel="webhook"): 0,
                series("tidings_deliveries_total", channel="webhook", outcome="failed"): 1,
            },
        )
        == {}
    )

    assert differences(come_due, gauges(events=0, due=2, waiting=0, digests=0)) == {}

    # bo's email and cy's webhook (its second attempt): two hours after the decision.
    assert differences(second, gauges(events=0, due=0, waiting=0, digests=0)) == {}
    assert (
        differences(
            second,
            {
                series(f"{DELIVERY}_count", channel="email"): 2,
                series(f"{DELIVERY}_count", channel="webhook"): 1,
                latency(DELIVERY, "5.0", channel="email"): 1,
                latency(DELIVERY, "3600.0", channel="email"): 1,
                latency(DELIVERY, "7200.0", channel="email"): 2,
                latency(DELIVERY, "3600.0", channel="webhook"): 0,
                latency(DELIVERY, "7200.0", channel="webhook"): 1,
                series(f"{EVENT}_count"): 5,
            },
        )
        == {}
    )

    assert differences(digest_due, gauges(events=0, due=0, waiting=0, digests=1)) == {}
    # The digest is decided, but it never arrived: no event latency for it.
    assert differences(digest_sent, gauges(events=0, due=0, waiting=0, digests=0)) == {}
    assert differences(digest_sent, {series("tidings_digests_total", outcome="notified"): 1}) == {}
    assert differences(digest_sent, {series(f"{EVENT}_count"): 5}) == {}
    assert digest_sent[series("tidings_backlog_read_failures_total")] == 0


# -- a slow or failing store ----------------------------------------------------------


class ScriptedBacklog:
    """A ``PendingWork`` whose backlog answers, hangs or fails as told, counting reads."""

    def __init__(self) -> None:
        self.reads = 0
        self.hang = False
        self.fail: Exception | None = None
        self.delay = 0.0

    async def backlog(self) -> Backlog:
        self.reads += 1
        if self.hang:
            await asyncio.sleep(3600)
        if self.fail is not None:
            raise self.fail
        await asyncio.sleep(self.delay)
        return Backlog(events=7, due_deliveries=3, due_digests=1, waiting_deliveries=2)


@asynccontextmanager
async def serving(store: ScriptedBacklog, **bounds: float) -> AsyncIterator[httpx.AsyncClient]:
    """The endpoints over ``store``, and a client of them."""
    metrics = MetricsObserver()
    async with (
        serve_health(LOOPBACK, 0, metrics.registry, store, lambda: True, **bounds) as port,
        httpx.AsyncClient(base_url=f"http://{LOOPBACK}:{port}", trust_env=False) as client,
    ):
        yield client


def test_a_store_that_does_not_answer_costs_a_scrape_its_bound_and_leaves_the_gauges_out() -> None:
    async def run() -> tuple[float, dict[Series, float], float, int, dict[Series, float]]:
        store = ScriptedBacklog()
        store.hang = True
        async with serving(store, backlog_timeout=0.2, database_timeout=0.3) as client:
            started = time.monotonic()
            hanging = await scrape(client)
            scrape_took = time.monotonic() - started
            started = time.monotonic()
            health = (await client.get("/healthz")).status_code
            health_took = time.monotonic() - started
            store.hang = False
            answering = await scrape(client)
        assert health == 503
        return scrape_took, hanging, health_took, store.reads, answering

    scrape_took, hanging, health_took, reads, answering = asyncio.run(run())

    assert scrape_took < 1.0
    assert health_took < 1.0
    assert not any(name in BACKLOG_NAMES for name, _ in hanging)
    assert hanging[series("tidings_backlog_read_failures_total")] == 1
    assert hanging[series("tidings_events_accepted_total")] == 0  # the rest is there
    assert reads == 3  # the scrape's, the health check's, the next scrape's
    assert differences(answering, gauges(events=7, due=3, waiting=2, digests=1)) == {}
    assert answering[series("tidings_backlog_read_failures_total")] == 1
    assert 0 <= answering[series("tidings_backlog_read_seconds")] < 1.0


@pytest.mark.parametrize(
    "error", [StoreUnavailable("PostgreSQL unavailable: host db.internal"), KeyError("bug")]
)
def test_a_failing_read_leaves_the_gauges_out_and_the_scrape_answers(
    error: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    async def run() -> dict[Series, float]:
        store = ScriptedBacklog()
        store.fail = error
        async with serving(store) as client:
            return await scrape(client)

    found = asyncio.run(run())

    assert not any(name in BACKLOG_NAMES for name, _ in found)
    assert found[series("tidings_backlog_read_failures_total")] == 1
    assert found[series("tidings_events_accepted_total")] == 0  # the rest is there
    assert "backlog" in caplog.text
    assert "db.internal" not in caplog.text  # the kind of failure, not its text


def test_scrapes_together_share_one_read() -> None:
    async def run() -> tuple[list[dict[Series, float]], int]:
        store = ScriptedBacklog()
        store.delay = 0.1
        async with serving(store) as client:
            together = await asyncio.gather(*(scrape(client) for _ in range(5)))
        return list(together), store.reads

    together, reads = asyncio.run(run())

    assert reads == 1
    for found in together:
        assert differences(found, gauges(events=7, due=3, waiting=2, digests=1)) == {}


def test_scrapes_one_after_another_each_read_the_store() -> None:
    async def run() -> list[int]:
        store = ScriptedBacklog()
        reads = []
        async with serving(store) as client:
            for _ in range(2):
                await scrape(client)
                reads.append(store.reads)
        return reads

    assert asyncio.run(run()) == [1, 2]

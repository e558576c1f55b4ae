"""Metrics and health over real HTTP on loopback: a scrape shows the counters moving
while a dispatcher runs, and ``/healthz`` turns 503 when the database or the loop is down.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tidings.adapters.memory import MemoryStore
from tidings.adapters.postgres import PostgresStore
from tidings.core import Event, Preference, Severity
from tidings.core.ports import PendingWork
from tidings.runner.dispatch import Dispatcher, DispatchOptions
from tidings.runner.dispatch.senders import default_senders
from tidings.runner.telemetry.health import LOOPBACK, serve_health
from tidings.runner.telemetry.metrics import MetricsObserver
from tidings.testing import FakeClock

Series = tuple[str, tuple[tuple[str, str], ...]]

# A closed loopback port, with a password that must never show in a response.
UNREACHABLE_URL = "postgresql://tidings:s3cret-pw@127.0.0.1:1/none"


START = datetime(2026, 1, 1, tzinfo=UTC)


def event(event_id: str, user_id: str, kind: str = "overload") -> Event:
    return Event(
        event_id=event_id,
        user_id=user_id,
        kind=kind,
        severity=Severity.WATCH,
        title="Overload",
        body="Hours crossed 60",
    )


def series(name: str, **labels: str) -> Series:
    return name, tuple(sorted(labels.items()))


async def scrape(client: httpx.AsyncClient) -> dict[Series, float]:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    return {
        series(sample.name, **sample.labels): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def differences(
    found: Mapping[Series, float], expected: Mapping[Series, float]
) -> dict[Series, object]:
    return {key: found.get(key) for key, value in expected.items() if found.get(key) != value}


EXPECTED_AFTER_RUN = {
    series("tidings_events_accepted_total"): 6,
    series("tidings_events_rejected_total"): 1,
    series("tidings_events_notified_total"): 3,
    series("tidings_events_skipped_total", reason="cooldown"): 2,
    series("tidings_events_skipped_total", reason="no_channels"): 1,
    series("tidings_events_skipped_total", reason="severity_below_minimum"): 0,
    series("tidings_deliveries_total", channel="in_app", outcome="delivered"): 3,
    series("tidings_deliveries_total", channel="email", outcome="skipped"): 1,
    series("tidings_deliveries_total", channel="email", outcome="delivered"): 0,
    series("tidings_deliveries_total", channel="webhook", outcome="skipped"): 0,
    series("tidings_delivery_attempts_total", channel="email"): 1,
    series("tidings_delivery_attempts_total", channel="in_app"): 0,
    series("tidings_delivery_seconds_count", channel="email"): 1,
    series("tidings_decision_seconds_count"): 6,
    # Skipped (no address), not delivered: no delivery latency.
    series("tidings_delivery_latency_seconds_count", channel="email"): 0,
    series("tidings_delivery_latency_seconds_count", channel="webhook"): 0,
    # Read from the store at the scrape: all seven decided (one rejected), nothing due.
    series("tidings_backlog_events"): 0,
    series("tidings_deliveries_due"): 0,
    series("tidings_deliveries_waiting"): 0,
    series("tidings_digests_due"): 0,
}
BACKLOG_BEFORE_RUN = {series("tidings_backlog_events"): 7}


async def fill(store: MemoryStore) -> None:
    """Six valid events (3 notified, 2 cooldown skips, 1 silent kind) and one invalid."""
    await store.set_preference("bo", "digest", Preference((), Severity.INFO))
    await store.set_preference("cy", "overload", Preference(("in_app", "email"), Severity.INFO))
    await store.enqueue(
        [
            event("a1", "ana"),
            event("a2", "ana"),
            event("a3", "ana"),
            event("b1", "bo", kind="digest"),
            event("c1", "cy"),
            event("d1", "dan"),
            # As a producer inserting rows directly could: stored, then refused on claim.
            event("x1", ""),
        ]
    )


async def run_and_scrape() -> tuple[dict[Series, float], dict[Series, float]]:
    clock = FakeClock(START)
    store = MemoryStore(clock=clock)
    metrics = MetricsObserver()
    await fill(store)
    dispatcher = Dispatcher(
        store,
        default_senders(),
        worker_id="w",
        options=DispatchOptions(poll_interval=0.01),
        clock=clock,
        observers=[metrics],
    )
    async with (
        serve_health(LOOPBACK, 0, metrics.registry, store, lambda: True) as port,
        httpx.AsyncClient(base_url=f"http://{LOOPBACK}:{port}", trust_env=False) as client,
    ):
        before = await scrape(client)
        running = asyncio.create_task(dispatcher.run())
        deadline = time.monotonic() + 5
        during = await scrape(client)
        while differences(during, EXPECTED_AFTER_RUN) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
            during = await scrape(client)
        dispatcher.stop()
        await running
    return before, during


def test_a_scrape_shows_the_counters_moving_during_a_run() -> None:
    before, during = asyncio.run(run_and_scrape())

    expected_before = {**dict.fromkeys(EXPECTED_AFTER_RUN, 0), **BACKLOG_BEFORE_RUN}
    assert {key: before.get(key) for key in expected_before} == expected_before
    assert differences(during, EXPECTED_AFTER_RUN) == {}
    label_values = {value for _, labels in during for _, value in labels}
    assert label_values.isdisjoint({"ana", "bo", "cy", "dan", "a1", "c1", "x1"})


async def get(
    path: str, store: PendingWork, alive: Callable[[], bool], database_timeout: float = 2.0
) -> httpx.Response:
    async with (
        serve_health(
            LOOPBACK, 0, MetricsObserver().registry, store, alive, database_timeout=database_timeout
        ) as port,
        httpx.AsyncClient(trust_env=False) as client,
    ):
        return await client.get(f"http://{LOOPBACK}:{port}{path}")


def memory_store() -> MemoryStore:
    return MemoryStore(clock=FakeClock(START))


def test_healthz_is_ok_with_a_reachable_store_and_live_workers() -> None:
    response = asyncio.run(get("/healthz", memory_store(), lambda: True))
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "workers": "ok"}


def test_healthz_is_unhealthy_when_the_workers_stopped() -> None:
    response = asyncio.run(get("/healthz", memory_store(), lambda: False))
    assert response.status_code == 503
    assert response.json() == {"status": "unhealthy", "database": "ok", "workers": "stopped"}


def test_healthz_is_unhealthy_when_the_database_is_down_without_naming_it() -> None:
    async def scenario() -> httpx.Response:
        store = PostgresStore(UNREACHABLE_URL)
        try:
            return await get("/healthz", store, lambda: True, database_timeout=0.2)
        finally:
            await store.close()

    started = time.monotonic()
    response = asyncio.run(scenario())
    assert time.monotonic() - started < 2
    assert response.status_code == 503
    assert response.json() == {
        "status": "unhealthy",
        "database": "no answer within 0.2s",
        "workers": "ok",
    }
    for secret in (UNREACHABLE_URL, "s3cret", "tidings:", "127.0.0.1:1"):
        assert secret not in response.text


def test_an_unknown_path_is_not_found_and_other_methods_are_refused() -> None:
    assert asyncio.run(get("/nope", memory_store(), lambda: True)).status_code == 404

    async def post() -> httpx.Response:
        async with (
            serve_health(
                LOOPBACK, 0, MetricsObserver().registry, memory_store(), lambda: True
            ) as port,
            httpx.AsyncClient(trust_env=False) as client,
        ):
            return await client.post(f"http://{LOOPBACK}:{port}/metrics")

    refused = asyncio.run(post())
    assert refused.status_code == 405
    assert refused.headers["allow"] == "GET"

"""Benchmark: how long from a producer's committed INSERT to the notification row.

One ``tidings run`` process (as deployed) waits on a fresh database. A producer inserts
probe events one by one with plain SQL in their own transactions (``--probes``, default
100, ``--gap`` seconds apart, default 0.1), noting when each commit returned; each
probe's latency is its notification's ``created_at`` (the decision's moment, on the same
machine's clock) minus that instant. Two conditions:

- idle: nothing else arrives;
- half load: a second producer inserts other events steadily at half the runner's
  drain rate (measured first: ``--drain-events`` events drained by the same runner) in
  batches every 10 ms, while the probes go in.

PostgreSQL wakes the runner with LISTEN/NOTIFY; SQLite has no notifications, so a
runner there looks every ``poll_interval`` (the setting; ``--poll`` here, default the
setting's default), and its latency is bounded by it.

    .venv/bin/python bench/latency.py [--database sqlite | --database postgresql://USER@HOST:PORT/DB]
        [--probes 100] [--gap 0.1] [--poll SECONDS]

On PostgreSQL the database in the URL is only used to connect: a fresh
``tidings_bench_<hex>`` database is made and dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from outbox_memory import fresh_database

from tidings import AsyncTidings

_REPO = Path(__file__).resolve().parents[1]
_STARTED = b" started on "
_COLUMNS = "(event_id, user_id, kind, severity, title, body)"


class Producer:
    """Plain-SQL inserts in their own transactions, as an application's would be."""

    def __init__(self, url: str) -> None:
        self._url = url
        if url.startswith("postgresql://"):
            self._pg: psycopg.Connection[Any] | None = psycopg.connect(url, autocommit=True)
            self._lite: sqlite3.Connection | None = None
        else:
            self._pg = None
            self._lite = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
            self._lite.execute("PRAGMA busy_timeout = 5000")

    def insert(self, rows: Sequence[tuple[str, ...]]) -> float:
        """Insert ``rows`` in one transaction; the moment the commit returned."""
        if self._pg is not None:
            with self._pg.transaction(), self._pg.cursor() as cursor:
                cursor.executemany(
                    f"INSERT INTO events {_COLUMNS} VALUES (%s, %s, %s, %s, %s, %s)", rows
                )
        else:
            assert self._lite is not None
            now = datetime.now().astimezone().isoformat(timespec="microseconds")
            self._lite.execute("BEGIN IMMEDIATE")
            self._lite.executemany(
                f"INSERT INTO events {_COLUMNS[:-1]}, enqueued_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(*row, now) for row in rows],
            )
            self._lite.execute("COMMIT")
        return time.time()

    def query(self, text: str) -> list[tuple[Any, ...]]:
        if self._pg is not None:
            return self._pg.execute(text).fetchall()
        assert self._lite is not None
        return self._lite.execute(text).fetchall()

    def close(self) -> None:
        if self._pg is not None:
            self._pg.close()
        if self._lite is not None:
            self._lite.close()


def _event(prefix: str, n: int) -> tuple[str, ...]:
    # Every event its own key: each one is notified, so each has a notification row.
    return (f"{prefix}-{n}", f"{prefix}-u{n}", "probe", "watch", "Probe", "latency")


@contextlib.contextmanager
def runner(url: str, poll: float | None) -> Iterator[subprocess.Popen[bytes]]:
    """One ``tidings run`` process, yielded once it has started."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("TIDINGS_")}
    if poll is not None:
        env["TIDINGS_POLL_INTERVAL"] = str(poll)
    command = [sys.executable, "-m", "tidings.runner.cli", "--database", url, "run"]
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=_REPO
    )
    try:
        assert process.stderr is not None
        for line in process.stderr:
            if _STARTED in line:
                break
        else:
            raise SystemExit(f"the runner exited before it started ({process.wait()})")
        threading.Thread(target=process.stderr.read, daemon=True).start()  # drain
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def _wait_for(check: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit("timed out waiting for the runner")
        time.sleep(0.05)


def _pending(producer: Producer) -> int:
    [(count,)] = producer.query("SELECT count(*) FROM events WHERE status = 'pending'")
    return int(count)


def drain_rate(producer: Producer, events: int) -> float:
    """Events per second the running runner drains, from a burst inserted at once."""
    tag = uuid.uuid4().hex[:6]
    for start in range(0, events, 5000):
        producer.insert([_event(f"drain{tag}", n) for n in range(start, min(events, start + 5000))])
    started = time.time()
    _wait_for(lambda: _pending(producer) == 0, 300)
    return events / (time.time() - started)


def probe(producer: Producer, probes: int, gap: float) -> tuple[list[float], list[float]]:
    """Latencies in seconds of ``probes`` single-event inserts ``gap`` apart: from the
    commit to the notification, and as the database tells it (``decided_at`` minus
    ``enqueued_at``, the insert's transaction start)."""
    tag = uuid.uuid4().hex[:6]
    committed: dict[str, float] = {}
    for n in range(probes):
        committed[f"p{tag}-{n}"] = producer.insert([_event(f"p{tag}", n)])
        time.sleep(gap)
    query = f"SELECT event_id, created_at FROM notifications WHERE event_id LIKE 'p{tag}-%'"
    _wait_for(lambda: len(producer.query(query)) == probes, 60)
    found = producer.query(query)
    stored = producer.query(
        f"SELECT enqueued_at, decided_at FROM events WHERE event_id LIKE 'p{tag}-%'"
    )
    return (
        [_epoch(created_at) - committed[event_id] for event_id, created_at in found],
        [_epoch(decided) - _epoch(enqueued) for enqueued, decided in stored],
    )


def _epoch(created_at: object) -> float:
    moment = (
        created_at if isinstance(created_at, datetime) else datetime.fromisoformat(str(created_at))
    )
    return moment.timestamp()


def under_load(
    producer_url: str, rate: float, run: Callable[[], tuple[list[float], list[float]]]
) -> tuple[list[float], list[float]]:
    """``run`` while another producer inserts ``rate`` events per second in 10 ms batches."""
    stop = threading.Event()

    def load() -> None:
        background = Producer(producer_url)
        tag = uuid.uuid4().hex[:6]
        sent, started = 0, time.monotonic()
        try:
            while not stop.is_set():
                due = int((time.monotonic() - started) * rate)
                if due > sent:
                    background.insert([_event(f"load{tag}", n) for n in range(sent, due)])
                    sent = due
                time.sleep(0.01)
        finally:
            background.close()

    thread = threading.Thread(target=load)
    thread.start()
    try:
        time.sleep(1.0)  # the load is steady before the first probe
        return run()
    finally:
        stop.set()
        thread.join()


def _summary(latencies: Sequence[float]) -> str:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    ms = 1000
    return (
        f"p50 {statistics.median(ordered) * ms:.1f} ms, p99 {p99 * ms:.1f} ms,"
        f" max {ordered[-1] * ms:.1f} ms ({len(ordered)} probes)"
    )


async def _migrate(url: str) -> None:
    async with AsyncTidings.open(url) as tidings:
        await tidings.migrate()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--database", default="sqlite", help="sqlite, or a PostgreSQL URL")
    parser.add_argument("--probes", type=int, default=100)
    parser.add_argument("--gap", type=float, default=0.1)
    parser.add_argument("--poll", type=float, help="the runner's poll_interval (s)")
    parser.add_argument("--drain-events", type=int, default=20_000)
    options = parser.parse_args(argv)
    with fresh_database(options.database) as url:
        asyncio.run(_migrate(url))
        producer = Producer(url)
        try:
            with runner(url, options.poll):
                idle = probe(producer, options.probes, options.gap)
                rate = drain_rate(producer, options.drain_events)
                loaded = under_load(
                    url, rate / 2, lambda: probe(producer, options.probes, options.gap)
                )
        finally:
            producer.close()
    store = "PostgreSQL" if options.database.startswith("postgresql://") else "SQLite"
    print(f"{store}, one runner process, probes {options.gap * 1000:.0f} ms apart")
    print(f"idle:      {_summary(idle[0])}")
    print(f"half load: {_summary(loaded[0])} (load {rate / 2:,.0f} events/s; drain {rate:,.0f}/s)")
    print("as the database tells it, decided_at - enqueued_at:")
    print(f"idle:      {_summary(idle[1])}")
    print(f"half load: {_summary(loaded[1])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

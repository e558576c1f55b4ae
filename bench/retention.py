"""Benchmark: under retention, the database stops growing once the horizon is reached.

One ``tidings run`` process (as deployed) with ``TIDINGS_RETENTION`` set to a short
horizon (default 1m; the runner prunes at start and every quarter of the horizon)
drains a continuous stream that this script enqueues at ``--rate`` events per second
(default 400) over ``--keys`` (user, kind) keys (default 2,000), with a 1 s cooldown so
that most events are notified; half the users also get an email, skipped because SMTP
is not set up, so every notification has deliveries too. Every ``--every`` seconds
(default 15) it prints the database's size and its rows; after ``--minutes`` (default 6)
it stops the runner and says how much the size moved over the last half of the run,
well after the horizon, against how much the stream would have added without
retention.

    .venv/bin/python bench/retention.py [--minutes 6] [--horizon 1m] [--rate 400]
        [--database sqlite | --database postgresql://USER@HOST:PORT/DB]

SQLite's size is the file and its write-ahead log: pages of removed rows are reused by
new ones, so the file stays at its high-water mark (``tidings prune --vacuum`` would
hand them back). PostgreSQL's is ``pg_total_relation_size`` of the four tables:
autovacuum makes removed rows' space reusable, so it levels off too, a little later.
A server with autovacuum off (a test server's setting) reclaims nothing, and the size
grows as without retention: then this script runs ``VACUUM`` of the four tables every
``--vacuum-every`` seconds (default 60, autovacuum's default naptime) in its stead, and
says so; ``--vacuum-every 0`` shows the growth instead. On PostgreSQL the database in
the URL is only used to connect: the run gets a fresh ``tidings_bench_<hex>`` database,
dropped when it ends.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from outbox_memory import fresh_database

from tidings import AsyncTidings
from tidings.core import Event, Severity
from tidings.runner.config import parse_duration

TABLES = ("events", "notifications", "deliveries", "digests")


def measure(url: str) -> tuple[int, dict[str, int]]:
    """The database's size in bytes and its rows per table."""
    if url.startswith("postgresql://"):
        with psycopg.connect(url) as connection:
            sizes = [f"pg_total_relation_size('{table}')" for table in TABLES]
            counts = [f"(SELECT count(*) FROM {table})" for table in TABLES]
            found = connection.execute(f"SELECT {' + '.join(sizes)}, {', '.join(counts)}")
            total, *counted = found.fetchone() or ()
        return int(total), dict(zip(TABLES, (int(n) for n in counted), strict=True))
    path = url.removeprefix("sqlite:///")
    size = sum(os.path.getsize(p) for p in (path, f"{path}-wal") if os.path.exists(p))
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as connection:
        rows = {t: connection.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
    return size, rows


async def prepare(url: str, keys: int) -> None:
    async with AsyncTidings.open(url) as tidings:
        await tidings.migrate()
        for n in range(0, keys // 2, 2):  # half the users: email too
            for kind in ("kind0", "kind1"):
                await tidings.set_preference(f"user{n}", kind, ["in_app", "email"])


async def produce(url: str, rate: int, keys: int, until: float) -> int:
    """Enqueue ``rate`` events a second, in ten batches a second, until ``until``."""
    sent = 0
    async with AsyncTidings.open(url) as tidings:
        store = tidings.runtime.store
        started = time.monotonic()
        while time.monotonic() < until:
            due = int((time.monotonic() - started) * rate)
            if due > sent:
                await store.enqueue(
                    [
                        Event(
                            event_id=f"e{n}",
                            user_id=f"user{n % keys // 2}",
                            kind=f"kind{n % keys % 2}",
                            severity=Severity.WATCH,
                            title=f"Event {n}",
                            body="x" * 200,
                        )
                        for n in range(sent, due)
                    ]
                )
                sent = due
            await asyncio.sleep(0.1)
    return sent


def start_runner(url: str, horizon: str, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "TIDINGS_RETENTION": horizon,
        "TIDINGS_COOLDOWN_SECONDS": "1",
        "TIDINGS_POLL_INTERVAL": "0.2",
    }
    with log.open("ab") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "tidings.runner.cli", "--database", url, "run"],
            stdout=sink,
            stderr=sink,
            env=env,
        )


def autovacuum_is_off(url: str) -> bool:
    if not url.startswith("postgresql://"):
        return False
    with psycopg.connect(url) as connection:
        found = connection.execute("SHOW autovacuum").fetchone()
    return found is not None and found[0] == "off"


def vacuum(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(f"VACUUM {', '.join(TABLES)}")


async def stand_in_for_autovacuum(url: str, every: float, until: float) -> None:
    while time.monotonic() + every < until:
        await asyncio.sleep(every)
        await asyncio.to_thread(vacuum, url)


async def sample(url: str, every: float, until: float) -> list[tuple[float, int, dict[str, int]]]:
    samples = []
    started = time.monotonic()
    print(f"{'s':>5} {'MB':>7} " + " ".join(f"{table:>13}" for table in TABLES))
    while time.monotonic() < until:
        await asyncio.sleep(every)
        size, rows = await asyncio.to_thread(measure, url)
        elapsed = time.monotonic() - started
        samples.append((elapsed, size, rows))
        print(f"{elapsed:5.0f} {size / 1e6:7.2f} " + " ".join(f"{rows[t]:13,}" for t in TABLES))
    return samples


async def bench(url: str, args: argparse.Namespace, log: Path) -> None:
    await prepare(url, args.keys)
    runner = start_runner(url, args.horizon, log)
    until = time.monotonic() + args.minutes * 60
    standing_in = args.vacuum_every > 0 and autovacuum_is_off(url)
    if standing_in:
        print(f"autovacuum is off on this server: VACUUM every {args.vacuum_every:g} s instead")
    try:
        sent, samples, _ = await asyncio.gather(
            produce(url, args.rate, args.keys, until),
            sample(url, args.every, until),
            stand_in_for_autovacuum(url, args.vacuum_every, until)
            if standing_in
            else asyncio.sleep(0),
        )
    finally:
        runner.send_signal(signal.SIGTERM)
        runner.wait(timeout=60)
    horizon = parse_duration(args.horizon).total_seconds()
    growing = [s for s in samples if s[0] <= horizon] or samples[:1]
    per_second = growing[-1][1] / growing[-1][0]  # before anything is old enough to go
    half = [s for s in samples if s[0] >= samples[-1][0] / 2]
    first, last = half[0], half[-1]
    print(
        f"\n{sent:,} events in {args.minutes:g} min at {args.rate}/s, horizon {args.horizon}:"
        f" {first[1] / 1e6:.2f} MB at {first[0]:.0f} s, {last[1] / 1e6:.2f} MB at"
        f" {last[0]:.0f} s ({(last[1] - first[1]) / 1e6:+.2f} MB); growing as it did before"
        f" the horizon ({per_second / 1e3:.0f} kB/s), it would have added"
        f" {per_second * (last[0] - first[0]) / 1e6:.1f} MB meanwhile"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=6.0)
    parser.add_argument("--horizon", default="1m", help="the retention setting (default 1m)")
    parser.add_argument("--rate", type=int, default=400, help="events per second")
    parser.add_argument("--keys", type=int, default=2000)
    parser.add_argument("--every", type=float, default=15.0, help="seconds between samples")
    parser.add_argument("--database", default="sqlite")
    parser.add_argument(
        "--vacuum-every",
        type=float,
        default=60.0,
        help="PostgreSQL with autovacuum off: seconds between VACUUMs in its stead (0: none)",
    )
    args = parser.parse_args()
    parse_duration(args.horizon)  # a bad horizon fails here, not in the runner
    with fresh_database(args.database) as url, tempfile.TemporaryDirectory() as folder:
        print(f"runner log: {Path(folder) / 'runner.log'} (kept until the end)")
        asyncio.run(bench(url, args, Path(folder) / "runner.log"))


if __name__ == "__main__":
    main()

"""Benchmark: a runner's memory stays flat however long its outbox grows.

For each size (default 20,000 and 200,000 events), a fresh database is filled with that
many events, one per (user, kind), each planning an email as well as the in-app entry;
then one ``tidings run`` process (as deployed) decides them all while it delivers
through an SMTP server that takes ``--delay`` seconds (default 1) per message. Email is
far slower than deciding, so the outbox grows to nearly every delivery; the runner
holds a bounded hand of them (``deliveries_in_hand`` per channel) and leaves the rest
in the database. Once every event is decided and the runner has sent for at least
``--seconds`` (default 30; at most ten times that in all), it is stopped and its peak
resident memory (``VmHWM``) is reported, with how many deliveries it held and how many
waited in the outbox at that moment.

    .venv/bin/python bench/outbox_memory.py [--sizes 20000 200000] [--delay 1.0]
        [--database sqlite | --database postgresql://USER@HOST:PORT/DB]

On PostgreSQL the database in the URL is only used to connect: each size gets a fresh
``tidings_bench_<hex>`` database, dropped when it ends. Linux only (``/proc``).
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
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql
from smtp_concurrency import HOST, slow_smtp_server

from tidings import AsyncTidings
from tidings.core import Event, Severity
from tidings.core.records import RecipientChange

USERS = 1_000
CHUNK = 10_000


@contextlib.contextmanager
def fresh_database(database: str) -> Iterator[str]:
    """The URL of an empty database: a SQLite file in a temporary folder, or a new
    PostgreSQL database on the server ``database`` names, dropped on the way out."""
    if not database.startswith("postgresql://"):
        with tempfile.TemporaryDirectory() as folder:
            yield f"sqlite:///{Path(folder) / 'tidings.db'}"
        return
    name = f"tidings_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield urlunsplit(urlsplit(database)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(database, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


async def _fill(url: str, size: int) -> None:
    async with AsyncTidings.open(url) as tidings:
        await tidings.migrate()
        store = tidings.runtime.store
        for n in range(USERS):
            await store.update_recipient(
                RecipientChange(user_id=f"user{n}", email=f"user{n}@example.test")
            )
        for start in range(0, size, CHUNK):
            await store.enqueue(
                [
                    Event(event_id=f"e{n}", user_id=f"user{n % USERS}", kind=f"k{n // USERS}",
                          severity=Severity.WATCH, title="Alert", body="Something happened")
                    for n in range(start, min(start + CHUNK, size))
                ]
            )  # fmt: skip


def _count(url: str, where: str) -> int:
    """``SELECT count(*)`` of one table and condition, read while the runner works."""
    query = f"SELECT count(*) FROM {where}"
    if url.startswith("postgresql://"):
        with psycopg.connect(url) as connection:
            row = connection.execute(query).fetchone()
    else:
        with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as connection:
            row = connection.execute(query).fetchone()
    return int(row[0]) if row else 0


_UNDECIDED = "events WHERE status = 'pending'"
_HELD = "deliveries WHERE status IN ('pending', 'failed') AND claimed_by IS NOT NULL"
_WAITING = "deliveries WHERE status IN ('pending', 'failed') AND claimed_by IS NULL"


def _memory_kib(pid: int) -> dict[str, int]:
    """The process's resident memory now and at its peak (``VmRSS``, ``VmHWM``), in KiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields


def measure(url: str, port: int, seconds: float) -> dict[str, float]:
    """Run one runner until every event is decided and ``seconds`` have passed (at most
    ten times that); its memory."""
    env = {
        **{key: value for key, value in os.environ.items() if not key.startswith("TIDINGS_")},
        "TIDINGS_DEFAULT_CHANNELS": "in_app,email",
        "SMTP_HOST": HOST,
        "SMTP_PORT": str(port),
        "SMTP_TLS_MODE": "none",
        "SMTP_FROM_ADDRESS": "bench@tidings.test",
    }
    runner = subprocess.Popen(
        [sys.executable, "-m", "tidings.runner.cli", "--database", url, "run"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    started = time.monotonic()
    try:
        undecided = -1
        while time.monotonic() - started < seconds * 10 and (
            undecided != 0 or time.monotonic() - started < seconds
        ):
            time.sleep(2)
            undecided = _count(url, _UNDECIDED)
        memory = _memory_kib(runner.pid)
        held, waiting = _count(url, _HELD), _count(url, _WAITING)
    finally:
        runner.send_signal(signal.SIGTERM)
        try:
            runner.wait(timeout=60)
        except subprocess.TimeoutExpired:
            runner.kill()
    return {
        "seconds": time.monotonic() - started,
        "undecided": undecided,
        "peak_mib": memory["VmHWM"] / 1024,
        "now_mib": memory["VmRSS"] / 1024,
        "held": held,
        "outbox": waiting,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 200_000])
    parser.add_argument("--delay", type=float, default=1.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--database", default="sqlite")
    args = parser.parse_args(argv)

    kind = "PostgreSQL" if args.database.startswith("postgresql://") else "SQLite"
    print(f"{kind}, one runner, SMTP {args.delay:g} s per message, 32 sends at once")
    print()
    print("| events (emails) | seconds | decided | held by the runner | waiting in the outbox"
          " | peak RSS | RSS at the end |")  # fmt: skip
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    peaks = []
    with slow_smtp_server(args.delay) as port:
        for size in args.sizes:
            with fresh_database(args.database) as url:
                asyncio.run(_fill(url, size))
                found = measure(url, port, args.seconds)
            peaks.append(found["peak_mib"])
            print(f"| {size:,} | {found['seconds']:.0f} | {size - found['undecided']:,.0f} | "
                  f"{found['held']:,.0f} | {found['outbox']:,.0f} | {found['peak_mib']:.0f} MiB | "
                  f"{found['now_mib']:.0f} MiB |")  # fmt: skip
    print(f"\npeak memory, largest outbox / smallest: {peaks[-1] / peaks[0]:.2f}x (flat: about 1)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

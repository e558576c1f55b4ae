"""Benchmark: what the backlog query costs on a long history.

``store.backlog()`` is read by every ``/metrics`` scrape (the backlog gauges), by
``/healthz`` (its database check) and by a run until idle. This fills a database with
``--events`` events (all decided but ``--pending``), a notification for every other one
and two deliveries each (all delivered but a few due now and a few waiting: a retry, the
end of quiet hours), and as many digests (all decided but a few), then times the store's
own ``backlog()`` and shows the plan of the statement it runs, in three states:

- steady: the history above, vacuumed and analysed;
- backlog: ``--backlog`` more events pending (a runner fell behind);
- drained: those events decided in one go, before any vacuum, so PostgreSQL's
  ``events_open`` index still holds an entry for each until vacuum (autovacuum is
  switched off for the tables here, to see the worst case).

    .venv/bin/python bench/backlog_query.py [--database sqlite | --database postgresql://USER@HOST:PORT/DB]
        [--events 3000000] [--pending 1000] [--backlog 1000000] [--runs 30] [--keep]

On PostgreSQL the database in the URL is only used to connect: a fresh
``tidings_bench_<hex>`` database is made and dropped (``--keep``: kept, to look further).
SQLite uses a temporary file.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from tidings.adapters.postgres import PostgresStore
from tidings.adapters.postgres.connection import PostgresDatabase
from tidings.adapters.sqlite import SqliteStore
from tidings.adapters.sqlite.connection import SqliteDatabase
from tidings.adapters.sqlite.rows import time_text
from tidings.core.records import Backlog

NOW = datetime(2026, 1, 1, tzinfo=UTC)
"""The stores' clock: deliveries before it are due, after it waiting."""
DUE, RETRYING, HELD = 500, 200, 300
"""Open deliveries: pending due now, failed waiting for a retry, pending held."""
DIGESTS_PENDING, DIGESTS_DUE = 50, 20


def _pg_fill(connection: psycopg.Connection[Any], events: int, pending: int) -> None:
    decided = events - pending
    connection.execute(
        "INSERT INTO events (event_id, user_id, kind, severity, title, body, status,"
        " enqueued_at, decided_at, notification_id)"
        " SELECT 'e' || g, 'u' || (g %% 50000), 'alert', 'watch', 'Alert', 'Something happened',"
        "  CASE WHEN g > %(decided)s THEN 'pending' WHEN g %% 2 = 0 THEN 'notified'"
        "   ELSE 'skipped' END,"
        "  %(now)s - interval '1 second' * (%(events)s - g),"
        "  CASE WHEN g <= %(decided)s THEN %(now)s - interval '1 second' * (%(events)s - g) END,"
        "  CASE WHEN g <= %(decided)s AND g %% 2 = 0 THEN 'n' || g END"
        " FROM generate_series(1, %(events)s) AS g",
        {"decided": decided, "events": events, "now": NOW},
    )
    connection.execute(
        "INSERT INTO notifications (id, event_id, user_id, kind, severity, title, body,"
        " created_at, dispatched_via)"
        " SELECT 'n' || g, 'e' || g, 'u' || (g %% 50000), 'alert', 'watch', 'Alert', 'Body',"
        "  %(now)s - interval '1 second' * (%(events)s - g), ARRAY['in_app']"
        " FROM generate_series(2, %(decided)s, 2) AS g",
        {"decided": decided, "events": events, "now": NOW},
    )
    connection.execute(
        "INSERT INTO deliveries (id, notification_id, channel, status, attempts,"
        " next_attempt_at, delivered_at)"
        " SELECT 'd' || g || c, 'n' || g, c, 'delivered', 1, NULL,"
        "  %(now)s - interval '1 second' * (%(events)s - g)"
        " FROM generate_series(2, %(decided)s, 2) AS g, unnest(ARRAY['email', 'webhook']) AS c",
        {"decided": decided, "events": events, "now": NOW},
    )
    # The open ones: the newest notifications' deliveries.
    connection.execute(
        "WITH newest AS (SELECT id, row_number() OVER (ORDER BY id DESC) AS n FROM deliveries"
        "  ORDER BY id DESC LIMIT %(open)s)"
        " UPDATE deliveries d SET"
        "  status = CASE WHEN n <= %(retrying)s THEN 'failed' ELSE 'pending' END,"
        "  delivered_at = NULL, attempts = CASE WHEN n <= %(retrying)s THEN 1 ELSE 0 END,"
        "  next_attempt_at = CASE WHEN n <= %(waiting)s THEN %(now)s + interval '1 hour'"
        "   ELSE %(now)s - interval '1 minute' END"
        " FROM newest WHERE d.id = newest.id",
        {"open": DUE + RETRYING + HELD, "retrying": RETRYING, "waiting": RETRYING + HELD,
         "now": NOW},
    )  # fmt: skip
    connection.execute(
        "INSERT INTO digests (id, user_id, kind, status, opened_at, due_at, decided_at)"
        " SELECT 'digest:' || g, 'u' || g, 'alert',"
        "  CASE WHEN g <= %(pending)s THEN 'pending' ELSE 'notified' END,"
        "  %(now)s - interval '1 day', %(now)s + interval '1 minute' * (g - %(due)s - 1),"
        "  CASE WHEN g > %(pending)s THEN %(now)s END"
        " FROM generate_series(1, %(events)s / 30) AS g",
        {"pending": DIGESTS_PENDING, "due": DIGESTS_DUE, "events": events, "now": NOW},
    )


def _sqlite_fill(connection: sqlite3.Connection, events: int, pending: int) -> None:
    decided = events - pending
    past, future = time_text(NOW - timedelta(minutes=1)), time_text(NOW + timedelta(hours=1))
    long_ago = time_text(NOW - timedelta(days=30))
    series = "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < :events)"
    values = {"events": events, "decided": decided, "at": long_ago}
    connection.execute(
        f"{series} INSERT INTO events (event_id, user_id, kind, severity, title, body, status,"
        " enqueued_at, decided_at, notification_id)"
        " SELECT 'e' || n, 'u' || (n % 50000), 'alert', 'watch', 'Alert', 'Something happened',"
        "  CASE WHEN n > :decided THEN 'pending' WHEN n % 2 = 0 THEN 'notified'"
        "   ELSE 'skipped' END, :at, CASE WHEN n <= :decided THEN :at END,"
        "  CASE WHEN n <= :decided AND n % 2 = 0 THEN 'n' || n END FROM g",
        values,
    )
    connection.execute(
        f"{series} INSERT INTO notifications (id, event_id, user_id, kind, severity, title,"
        " body, created_at, dispatched_via)"
        " SELECT 'n' || n, 'e' || n, 'u' || (n % 50000), 'alert', 'watch', 'Alert', 'Body', :at,"
        " '[\"in_app\"]' FROM g WHERE n <= :decided AND n % 2 = 0",
        values,
    )
    connection.execute(
        f"{series} INSERT INTO deliveries (id, notification_id, channel, status, attempts,"
        " next_attempt_at, delivered_at)"
        " SELECT 'd' || n || c.channel, 'n' || n, c.channel, 'delivered', 1, NULL, :at"
        " FROM g, (SELECT 'email' AS channel UNION ALL SELECT 'webhook') AS c"
        " WHERE n <= :decided AND n % 2 = 0",
        values,
    )
    newest = connection.execute(
        "SELECT id FROM deliveries ORDER BY rowid DESC LIMIT ?", (DUE + RETRYING + HELD,)
    ).fetchall()
    for n, (delivery_id,) in enumerate(newest, start=1):
        connection.execute(
            "UPDATE deliveries SET status = ?, attempts = ?, delivered_at = NULL,"
            " next_attempt_at = ? WHERE id = ?",
            (
                "failed" if n <= RETRYING else "pending",
                1 if n <= RETRYING else 0,
                future if n <= RETRYING + HELD else past,
                delivery_id,
            ),
        )
    connection.execute(
        f"{series} INSERT INTO digests (id, user_id, kind, status, opened_at, due_at,"
        " decided_at)"
        " SELECT 'digest:' || n, 'u' || n, 'alert',"
        "  CASE WHEN n <= :pending THEN 'pending' ELSE 'notified' END, :at,"
        "  CASE WHEN n <= :due THEN :past ELSE :future END,"
        "  CASE WHEN n > :pending THEN :at END FROM g WHERE n <= :events / 30",
        {**values, "pending": DIGESTS_PENDING, "due": DIGESTS_DUE, "past": past,
         "future": future},
    )  # fmt: skip


async def _timed(backlog: Callable[[], Awaitable[Backlog]], runs: int) -> str:
    started = time.perf_counter()
    first = await backlog()
    first_ms = (time.perf_counter() - started) * 1000
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        await backlog()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return (
        f"{first}\n  first {first_ms:.2f} ms; then over {runs} runs: median"
        f" {statistics.median(times):.2f} ms, p95 {times[int(len(times) * 0.95) - 1]:.2f} ms,"
        f" max {times[-1]:.2f} ms"
    )


@contextmanager
def _recorded_statements() -> Iterator[list[tuple[str, dict[str, object]]]]:
    """The statements the stores run, as their database layers are handed them."""
    statements: list[tuple[str, dict[str, object]]] = []
    pg_execute, sqlite_read = PostgresDatabase.execute, SqliteDatabase.read

    async def execute(self: PostgresDatabase, cursor: Any, text: str, **values: object) -> None:
        statements.append((text, values))
        await pg_execute(self, cursor, text, **values)

    class Recording:
        def __init__(self, connection: sqlite3.Connection) -> None:
            self._connection = connection

        def execute(self, text: str, values: Any = ()) -> sqlite3.Cursor:
            statements.append((text, dict(values)))
            return self._connection.execute(text, values)

    async def read(self: SqliteDatabase, work: Callable[[Any], Any]) -> Any:
        return await sqlite_read(self, lambda connection: work(Recording(connection)))

    PostgresDatabase.execute = execute  # type: ignore[method-assign]
    SqliteDatabase.read = read  # type: ignore[method-assign]
    try:
        yield statements
    finally:
        PostgresDatabase.execute = pg_execute  # type: ignore[method-assign]
        SqliteDatabase.read = sqlite_read  # type: ignore[method-assign]


def _counts(connection: psycopg.Connection[Any] | sqlite3.Connection) -> str:
    tables = ("events", "notifications", "deliveries", "digests")
    return ", ".join(
        f"{table} {connection.execute(f'SELECT count(*) FROM {table}').fetchone()[0]:,}"  # type: ignore[index]
        for table in tables
    )


async def _postgres(server_url: str, args: argparse.Namespace) -> None:
    name = f"tidings_bench_{uuid.uuid4().hex[:12]}"
    url = f"{server_url.rpartition('/')[0]}/{name}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        store = PostgresStore(url, clock=lambda: NOW)
        try:
            await store.migrate()
            with psycopg.connect(url, autocommit=True) as connection:
                for table in ("events", "deliveries", "digests"):
                    connection.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = off)")
                started = time.perf_counter()
                _pg_fill(connection, args.events, args.pending)
                connection.execute("VACUUM ANALYZE")
                print(f"PostgreSQL: filled in {time.perf_counter() - started:.0f} s")
                await _pg_states(store, connection, url, args)
        finally:
            await store.close()
    finally:
        if args.keep:
            print(f"\nkept: {url}")
        else:
            with psycopg.connect(server_url, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _pg_states(
    store: PostgresStore, connection: psycopg.Connection[Any], url: str, args: argparse.Namespace
) -> None:
    async def state(title: str) -> None:
        print(f"\n== PostgreSQL, {title}: {_counts(connection)}")
        with _recorded_statements() as statements:
            print(await _timed(store.backlog, args.runs))
        text, _ = statements[-1]
        plan = connection.execute(
            "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + text.replace("{now}", "%(now)s"),
            {"now": NOW},
        ).fetchall()
        print("\n".join(f"  {line}" for (line,) in plan))

    await state("steady")
    last = args.events
    connection.execute(
        "INSERT INTO events (event_id, user_id, kind, severity, title, body, enqueued_at)"
        " SELECT 'e' || g, 'u' || (g %% 50000), 'alert', 'watch', 'Alert', 'Body', %(now)s"
        " FROM generate_series(%(first)s, %(last)s) AS g",
        {"first": last + 1, "last": last + args.backlog, "now": NOW},
    )
    connection.execute("ANALYZE events")
    await state(f"backlog of {args.backlog:,} more pending events")
    connection.execute(
        "UPDATE events SET status = 'skipped', decided_at = %(now)s WHERE seq > %(last)s",
        {"now": NOW, "last": last},
    )
    await state("drained (those decided), not vacuumed")
    connection.execute("VACUUM ANALYZE events")
    await state("drained, vacuumed")


async def _sqlite(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = str(Path(directory) / "bench.db")
        store = SqliteStore(path, clock=lambda: NOW)
        try:
            await store.migrate()
            connection = sqlite3.connect(path, isolation_level=None)
            started = time.perf_counter()
            connection.execute("BEGIN")
            _sqlite_fill(connection, args.events, args.pending)
            connection.execute("COMMIT")
            connection.execute("ANALYZE")
            print(f"SQLite: filled in {time.perf_counter() - started:.0f} s")
            await _sqlite_states(store, connection, args)
            connection.close()
        finally:
            await store.close()


async def _sqlite_states(
    store: SqliteStore, connection: sqlite3.Connection, args: argparse.Namespace
) -> None:
    async def state(title: str) -> None:
        print(f"\n== SQLite, {title}: {_counts(connection)}")
        with _recorded_statements() as statements:
            print(await _timed(store.backlog, args.runs))
        text, values = statements[-1]
        plan = connection.execute("EXPLAIN QUERY PLAN " + text, values).fetchall()
        print("\n".join(f"  {'  ' * (parent > 0)}{detail}" for _, parent, _, detail in plan))

    await state("steady")
    [[last]] = connection.execute("SELECT max(seq) FROM events").fetchall()
    at = time_text(NOW)
    connection.execute(
        "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < ?)"
        " INSERT INTO events (event_id, user_id, kind, severity, title, body, enqueued_at)"
        " SELECT 'b' || n, 'u' || (n % 50000), 'alert', 'watch', 'Alert', 'Body', ? FROM g",
        (args.backlog, at),
    )
    await state(f"backlog of {args.backlog:,} more pending events")
    connection.execute(
        "UPDATE events SET status = 'skipped', decided_at = ? WHERE seq > ?", (at, last)
    )
    await state("drained (those decided)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default="sqlite", help="sqlite, or a PostgreSQL URL")
    parser.add_argument("--events", type=int, default=3_000_000)
    parser.add_argument("--pending", type=int, default=1_000)
    parser.add_argument("--backlog", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--keep", action="store_true", help="keep the PostgreSQL database")
    args = parser.parse_args(argv)
    if args.database == "sqlite":
        asyncio.run(_sqlite(args))
    else:
        asyncio.run(_postgres(args.database, args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

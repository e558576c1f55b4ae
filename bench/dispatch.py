"""Benchmark: tidings' dispatcher against the reference's one-event-at-a-time loop.

Both runs get the same workload (events spread over (user, kind) keys, mixed
severities, some users with preferences including a silent kind) on fresh
databases with the same schema, in the same process, so the ratio is fair:

- tidings: events are enqueued into the durable intake (timed apart), then
  ``Dispatcher.run(until_idle=True)`` claims, decides and records them (event
  status, explanation, notification, deliveries) through the store;
- naive: the reference's ``process_event``, four statements per event (per-kind
  preference, global preference, last notification time, insert), each insert its
  own commit, over an in-memory list.

Run as ``.venv/bin/python bench/dispatch.py [--events N] [--keys K] [--database sqlite]``.
Each kind of store has its own pair of functions; only SQLite exists today.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path

import attrs

from adapters.sqlite import SqliteStore
from adapters.sqlite.rows import time_text
from core import GLOBAL_KIND, Channel, Event, Preference, Severity
from runner.clock import system_clock
from runner.dispatcher import Dispatcher, DispatchOptions
from runner.senders import default_senders

TARGET_RATIO = 0.5
"""tidings must dispatch at least this fraction of the naive loop's events/s."""

_KINDS = ("burnout_overload", "deploy_failed", "weekly_digest", "quota_warning", "build_slow")
_SEVERITIES = (Severity.INFO, Severity.WATCH, Severity.CRITICAL)
_SEVERITY_WEIGHTS = (6, 3, 1)
_REFERENCE_COOLDOWN = timedelta(hours=24)
_KNOWN_CHANNELS = frozenset(channel.value for channel in Channel)


class BenchError(Exception):
    """A run finished but its end state is wrong: the figures cannot be trusted."""


@attrs.frozen(kw_only=True)
class Workload:
    """What both runs process: preferences to store first, then events in order."""

    preferences: tuple[tuple[str, str, Preference], ...]
    events: tuple[Event, ...]


@attrs.frozen(kw_only=True)
class Measurement:
    """One timed run: how many events it went through, how long, how many notified."""

    run: str
    events: int
    seconds: float
    notified: int

    @property
    def per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else float("inf")


@attrs.frozen(kw_only=True)
class Report:
    """What one store kind's runs produced."""

    tidings: Measurement
    naive: Measurement
    enqueue_seconds: float


# -- workload -------------------------------------------------------------------------


def _user_preferences(number: int, user: str) -> list[tuple[str, str, Preference]]:
    """A deterministic mix: a global row, a silent kind, a raised minimum, odd names."""
    found: list[tuple[str, str, Preference]] = []
    if number % 13 == 0:
        found.append((user, GLOBAL_KIND, Preference((), Severity.INFO)))
    elif number % 5 == 0:
        found.append((user, GLOBAL_KIND, Preference(("in_app",), Severity.CRITICAL)))
    if number % 7 == 0:
        found.append((user, "weekly_digest", Preference((), Severity.INFO)))
    if number % 3 == 0:
        found.append((user, "deploy_failed", Preference(("in_app",), Severity.WATCH)))
    if number % 11 == 0:
        found.append((user, "quota_warning", Preference((" In_App", "pager"), Severity.INFO)))
    return found


def make_workload(events: int, keys: int, seed: int) -> Workload:
    """``events`` events spread evenly over ``keys`` (user, kind) keys, shuffled."""
    users = -(-keys // len(_KINDS))
    all_keys = [(f"user-{u:05d}", kind) for u in range(users) for kind in _KINDS][:keys]
    preferences: list[tuple[str, str, Preference]] = []
    for number in range(users):
        preferences.extend(_user_preferences(number, f"user-{number:05d}"))
    rng = random.Random(seed)
    order = [all_keys[i % len(all_keys)] for i in range(events)]
    rng.shuffle(order)
    severities = rng.choices(_SEVERITIES, weights=_SEVERITY_WEIGHTS, k=events)
    return Workload(
        preferences=tuple(preferences),
        events=tuple(
            Event(
                event_id=f"bench-{index:07d}",
                user_id=user,
                kind=kind,
                severity=severity,
                title=f"{kind} for {user}",
                body=f"Benchmark event {index}, severity {severity.value}.",
                payload_json=json.dumps({"index": index}) if index % 4 == 0 else None,
            )
            for index, ((user, kind), severity) in enumerate(zip(order, severities, strict=True))
        ),
    )


# -- SQLite ---------------------------------------------------------------------------


async def _prepare_sqlite(store: SqliteStore, workload: Workload) -> None:
    """The repo's migration and preference writes, so both files hold the same rows."""
    await store.migrate()
    for user, kind, preference in workload.preferences:
        await store.set_preference(user, kind, preference)


async def _tidings_sqlite_async(workload: Workload, path: Path) -> tuple[float, float, int]:
    store = SqliteStore(str(path), clock=system_clock)
    try:
        await _prepare_sqlite(store, workload)
        start = time.perf_counter()
        accepted = await store.enqueue(workload.events)
        enqueue_seconds = time.perf_counter() - start
        if accepted != len(workload.events):
            raise BenchError(f"enqueue accepted {accepted} of {len(workload.events)} events")
        dispatcher = Dispatcher(
            store,
            default_senders(),
            worker_id="bench",
            options=DispatchOptions(),
            clock=system_clock,
        )
        start = time.perf_counter()
        summary = await dispatcher.run(until_idle=True)
        seconds = time.perf_counter() - start
    finally:
        await store.close()
    return enqueue_seconds, seconds, summary.notified


def _count(connection: sqlite3.Connection, sql: str) -> int:
    return int(connection.execute(sql).fetchone()[0])


def _verify_tidings_sqlite(path: Path, events: int, reported_notified: int) -> int:
    """Every event terminal; one notification (and one in-app delivery) per notified."""
    with contextlib.closing(sqlite3.connect(path)) as connection:
        statuses = dict(connection.execute("SELECT status, count(*) FROM events GROUP BY status"))
        notifications = _count(connection, "SELECT count(*) FROM notifications")
        linked = _count(
            connection,
            "SELECT count(*) FROM events e JOIN notifications n"
            " ON n.id = e.notification_id AND n.event_id = e.event_id"
            " WHERE e.status = 'notified'",
        )
        delivered = _count(
            connection,
            "SELECT count(*) FROM deliveries WHERE channel = 'in_app' AND status = 'delivered'",
        )
    terminal = sum(statuses.get(s, 0) for s in ("notified", "skipped", "rejected"))
    notified = int(statuses.get("notified", 0))
    problems = [
        f"{terminal} of {events} events terminal ({statuses})" if terminal != events else "",
        f"{notifications} notifications for {notified} notified events"
        if notifications != notified
        else "",
        f"{linked} notified events linked to their notification" if linked != notified else "",
        f"{delivered} in-app deliveries for {notified} notified" if delivered != notified else "",
        f"dispatcher reported {reported_notified} notified, the database holds {notified}"
        if reported_notified != notified
        else "",
    ]
    if any(problems):
        raise BenchError("tidings end state is wrong: " + "; ".join(p for p in problems if p))
    return notified


def bench_tidings_sqlite(workload: Workload, path: Path) -> tuple[Measurement, float]:
    enqueue_seconds, seconds, reported = asyncio.run(_tidings_sqlite_async(workload, path))
    notified = _verify_tidings_sqlite(path, len(workload.events), reported)
    run = Measurement(
        run="tidings (sqlite)", events=len(workload.events), seconds=seconds, notified=notified
    )
    return run, enqueue_seconds


def _naive_connection(path: Path) -> sqlite3.Connection:
    """Autocommit per statement, with SqliteStore's pragmas."""
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("PRAGMA synchronous = NORMAL")
    connection.execute("PRAGMA busy_timeout = 10000")
    connection.execute("PRAGMA foreign_keys = ON")
    return connection


_PREFERENCE_SQL = (
    "SELECT channels, min_severity FROM notification_preferences WHERE user_id = ? AND kind = ?"
)
_LAST_SQL = (
    "SELECT created_at FROM notifications WHERE user_id = ? AND kind = ?"
    " ORDER BY created_at DESC LIMIT 1"
)
_INSERT_SQL = (
    "INSERT INTO notifications (id, event_id, user_id, kind, severity, title, body,"
    " payload_json, created_at, dispatched_via) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _reference_effective(
    kind_row: tuple[str, str] | None, global_row: tuple[str, str] | None
) -> tuple[list[str], Severity]:
    """``effective_channels_and_min_severity``: known names only; global keeps the default."""
    if kind_row is not None:
        names, severity = json.loads(kind_row[0]), Severity(kind_row[1])
    elif global_row is not None:
        names, severity = json.loads(global_row[0]), Severity.INFO
    else:
        names, severity = ["in_app"], Severity.INFO
    return [name for name in names if name in _KNOWN_CHANNELS], severity


def _reference_process_event(connection: sqlite3.Connection, event: Event) -> bool:
    """The reference's ``process_event`` with in-app as the only (always-succeeding) send."""
    kind_row = connection.execute(_PREFERENCE_SQL, (event.user_id, event.kind)).fetchone()
    global_row = connection.execute(_PREFERENCE_SQL, (event.user_id, GLOBAL_KIND)).fetchone()
    channels, min_severity = _reference_effective(kind_row, global_row)
    if event.severity.rank < min_severity.rank or not channels:
        return False
    last = connection.execute(_LAST_SQL, (event.user_id, event.kind)).fetchone()
    now = system_clock()
    if last is not None and now - datetime.fromisoformat(last[0]) < _REFERENCE_COOLDOWN:
        return False
    delivered = [name for name in channels if name == Channel.IN_APP.value]
    connection.execute(
        _INSERT_SQL,
        (
            uuid.uuid4().hex,
            event.event_id,
            event.user_id,
            event.kind,
            event.severity.value,
            event.title,
            event.body,
            event.payload_json,
            time_text(now),
            json.dumps(delivered),
        ),
    )
    return True


def bench_naive_sqlite(workload: Workload, path: Path) -> Measurement:
    async def prepare() -> None:
        store = SqliteStore(str(path), clock=system_clock)
        try:
            await _prepare_sqlite(store, workload)
        finally:
            await store.close()

    asyncio.run(prepare())
    with contextlib.closing(_naive_connection(path)) as connection:
        start = time.perf_counter()
        notified = sum(_reference_process_event(connection, e) for e in workload.events)
        seconds = time.perf_counter() - start
        stored = _count(connection, "SELECT count(*) FROM notifications")
    if stored != notified:
        raise BenchError(f"naive loop inserted {notified} notifications, the file holds {stored}")
    return Measurement(
        run="naive loop (sqlite)", events=len(workload.events), seconds=seconds, notified=notified
    )


def run_sqlite(workload: Workload) -> Report:
    with tempfile.TemporaryDirectory(prefix="tidings-bench-") as folder:
        tidings, enqueue_seconds = bench_tidings_sqlite(workload, Path(folder) / "tidings.db")
        naive = bench_naive_sqlite(workload, Path(folder) / "naive.db")
    return Report(tidings=tidings, naive=naive, enqueue_seconds=enqueue_seconds)


# -- command line -----------------------------------------------------------------------


def store_runner(database: str) -> Callable[[Workload], Report]:
    """The runs for a ``--database`` value; a PostgreSQL URL will map to its own pair."""
    if database == "sqlite":
        return run_sqlite
    raise BenchError(f"--database {database!r} is not supported yet (use sqlite)")


def _table(runs: Sequence[Measurement]) -> str:
    lines = ["| run | events | seconds | events/s |", "| --- | ---: | ---: | ---: |"]
    lines.extend(f"| {r.run} | {r.events} | {r.seconds:.3f} | {r.per_second:,.0f} |" for r in runs)
    return "\n".join(lines)


def _print_report(report: Report, workload: Workload, keys: int) -> None:
    events = len(workload.events)
    print(
        f"{events} events over {keys} (user, kind) keys,"
        f" {len(workload.preferences)} preference rows, in-app channel only\n"
    )
    print(_table((report.tidings, report.naive)))
    ratio = report.tidings.per_second / report.naive.per_second
    verdict = "ok" if ratio >= TARGET_RATIO else "BELOW TARGET"
    print(f"\nratio tidings/naive: {ratio:.2f} (target >= {TARGET_RATIO}): {verdict}")
    print(
        f"tidings enqueue (not in the ratio): {events} events in {report.enqueue_seconds:.3f} s"
        f" ({events / max(report.enqueue_seconds, 1e-9):,.0f} events/s)"
    )
    agree = "agree" if report.tidings.notified == report.naive.notified else "DIFFER"
    print(
        f"notified: tidings {report.tidings.notified}, naive {report.naive.notified} ({agree});"
        " tidings end state verified (all events terminal, one notification per notified)"
    )


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=20_000, help="events to dispatch")
    parser.add_argument("--keys", type=int, default=2_000, help="distinct (user, kind) keys")
    parser.add_argument("--database", default="sqlite", help="store kind: sqlite")
    parser.add_argument("--seed", type=int, default=42, help="workload random seed")
    args = parser.parse_args(argv)
    if args.events < 1 or args.keys < 1:
        parser.error("--events and --keys must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = _arguments(argv)
    try:
        runner = store_runner(args.database)
        workload = make_workload(args.events, args.keys, args.seed)
        report = runner(workload)
    except BenchError as error:
        print(f"bench/dispatch.py: {error}", file=sys.stderr)
        return 1
    _print_report(report, workload, min(args.keys, args.events))
    return 0 if report.tidings.notified == report.naive.notified else 1


if __name__ == "__main__":
    sys.exit(main())

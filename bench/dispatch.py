"""Benchmark: tidings' dispatcher against the reference's one-event-at-a-time loop.

Both runs get the same workload (events spread over (user, kind) keys, mixed
severities, some users with preferences including a silent kind) on fresh
databases with the same schema, in the same process (on PostgreSQL tidings runs as
runner subprocesses, as deployed), so the ratio is fair:

- tidings: events are enqueued into the durable intake (timed apart), then
  ``Dispatcher.run(until_idle=True)`` claims, decides and records them (event
  status, explanation, notification, deliveries) through the store;
- naive: the reference's ``process_event``, four statements per event (per-kind
  preference, global preference, last notification time, insert), each insert its
  own commit, over an in-memory list.

Run as ``.venv/bin/python bench/dispatch.py [--events N] [--keys K] [--database sqlite]``.
Each kind of store has its own pair of functions. Every run is repeated (``--repeat``,
default 5 on SQLite and 3 on PostgreSQL, alternating, fresh files or databases each
round) and the fastest of each side is reported with every round's time and the
ratios of the medians: this shared 2-core machine is noisy, and the yardsticks (the
naive loop's round trips, the raw insert) swing as much as tidings does.

PostgreSQL: ``--database postgresql://USER@HOST:PORT/DB [--processes P]`` names a
server (the database in the URL is only used to connect; nothing in it is touched).
The script creates three fresh databases a round (``tidings_bench_<hex>_*``) and drops them
``WITH (FORCE)`` when it ends, whatever happens. In-app channel only:

- tidings: ``PostgresStore.migrate()``, the workload's preferences, the events
  enqueued (timed apart); then P ``python -m tidings.runner.cli --database URL run
  --until-idle --json`` processes, their modules byte-compiled first as an installed
  package's are, are started at once (``TIDINGS_POLL_INTERVAL=0.05``,
  every other ``TIDINGS_*`` setting removed so the defaults apply) and timed until
  all have exited 0; process start-up and the idle check are in the time. The end
  state is then checked in SQL: every event terminal, one notification (and one
  delivered in-app delivery) per notified event, at most one notification per
  (user, kind), the same (user, kind) set as the naive loop notified, and the sum of
  the processes' own ``notified`` counts equal to the database's;
- naive: the reference's ``process_event`` on a second database (same migrations and
  preferences), one psycopg sync connection with ``autocommit=True``, one event at a
  time: SELECT per-kind preference, SELECT global preference, then (when severity
  and channels allow, as in the reference) SELECT max(created_at) for the (user,
  kind) and INSERT the notification when outside the 24 h cooldown;
- raw insert: notification rows (as many as tidings created, or the event count N
  when tidings created fewer than ``RAW_MIN_ROWS``; the output says which) inserted
  into a third migrated database in ONE transaction with ``executemany`` (psycopg
  pipelines the single-row INSERTs; not COPY, which is faster still), as a yardstick
  for what writing the rows alone costs on this server.

Targets on PostgreSQL: tidings/naive >= 10 and tidings/raw insert >= 1/3.

Workloads: ``--workload`` picks ``--keys`` as a fraction of ``--events``
(``--keys`` overrides it). Each key gets events/keys events; the share notified is
about the share of keys with an allowed event over the event count. With the
default 20000 events (seed 42):

- ``skip-heavy``: keys = events / 10 (2000 keys): 1806 notified, 9% (the default);
- ``mixed``: keys = events / 4 (5000 keys): 4475 notified, 22%;
- ``notify-heavy``: keys = events (20000 keys, one event each): 17263 notified, 86%.
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import contextlib
import functools
import json
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import attrs
import psycopg
from psycopg import sql

from tidings.adapters.postgres import PostgresStore
from tidings.adapters.sqlite import SqliteStore
from tidings.adapters.sqlite.rows import time_text
from tidings.core import GLOBAL_KIND, Channel, Event, Preference, Severity
from tidings.runner.clock import system_clock
from tidings.runner.dispatch import Dispatcher, DispatchOptions
from tidings.runner.dispatch.senders import default_senders

TARGET_RATIO = 0.5
"""tidings must dispatch at least this fraction of the naive loop's events/s."""

POSTGRES_NAIVE_TARGET = 10.0
"""On PostgreSQL, tidings must dispatch at least this many times the naive loop's rate."""

POSTGRES_RAW_TARGET = 1 / 3
"""On PostgreSQL, tidings' events/s must reach this fraction of the raw insert rows/s."""

RAW_MIN_ROWS = 5_000
"""Fewer notifications than this and the raw insert writes one row per event instead."""

WORKLOADS = {"skip-heavy": 10, "mixed": 4, "notify-heavy": 1}
"""``--workload`` presets: keys = events // divisor (see the module docstring)."""

_REPO = Path(__file__).resolve().parent.parent
_RUNNER_TIMEOUT = 600.0

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
    """What one store kind's runs produced; ``raw`` and ``notes`` only on PostgreSQL."""

    tidings: Measurement
    naive: Measurement
    enqueue_seconds: float
    raw: Measurement | None = None
    notes: tuple[str, ...] = ()


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


def _end_state_problems(
    statuses: dict[str, int],
    events: int,
    *,
    notifications: int,
    linked: int,
    delivered: int,
    reported_notified: int,
) -> list[str]:
    """What is wrong with a drained tidings database, if anything (empty: nothing)."""
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
    return [problem for problem in problems if problem]


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
    problems = _end_state_problems(
        statuses,
        events,
        notifications=notifications,
        linked=linked,
        delivered=delivered,
        reported_notified=reported_notified,
    )
    if problems:
        raise BenchError("tidings end state is wrong: " + "; ".join(problems))
    return int(statuses.get("notified", 0))


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


def _effective(
    kind_row: tuple[Sequence[str], str] | None, global_row: tuple[Sequence[str], str] | None
) -> tuple[list[str], Severity]:
    """``effective_channels_and_min_severity``: known names only; global keeps the default."""
    if kind_row is not None:
        names, severity = kind_row[0], Severity(kind_row[1])
    elif global_row is not None:
        names, severity = global_row[0], Severity.INFO
    else:
        names, severity = ["in_app"], Severity.INFO
    return [name for name in names if name in _KNOWN_CHANNELS], severity


def _reference_effective(
    kind_row: tuple[str, str] | None, global_row: tuple[str, str] | None
) -> tuple[list[str], Severity]:
    """SQLite stores the channel list as JSON text."""
    return _effective(
        (json.loads(kind_row[0]), kind_row[1]) if kind_row is not None else None,
        (json.loads(global_row[0]), global_row[1]) if global_row is not None else None,
    )


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


def _fastest(runs: Sequence[Measurement]) -> Measurement:
    return min(runs, key=lambda run: run.seconds)


def _seconds_list(runs: Sequence[Measurement]) -> str:
    return ", ".join(f"{run.seconds:.3f}" for run in runs)


def run_sqlite(workload: Workload, repeat: int = 1) -> Report:
    """``repeat`` rounds of both runs, alternating, each on fresh files; the fastest
    of each side is reported, so a noisy moment on a shared machine decides neither."""
    tidings_runs: list[Measurement] = []
    naive_runs: list[Measurement] = []
    enqueue_seconds: list[float] = []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory(prefix="tidings-bench-") as folder:
            tidings, enqueued = bench_tidings_sqlite(workload, Path(folder) / "tidings.db")
            naive_runs.append(bench_naive_sqlite(workload, Path(folder) / "naive.db"))
        tidings_runs.append(tidings)
        enqueue_seconds.append(enqueued)
    median_ratio = statistics.median(r.seconds for r in naive_runs) / statistics.median(
        r.seconds for r in tidings_runs
    )
    notes = (
        f"fastest of {repeat} rounds; all seconds: tidings {_seconds_list(tidings_runs)};"
        f" naive {_seconds_list(naive_runs)}; ratio of the medians {median_ratio:.2f}",
    )
    return Report(
        tidings=_fastest(tidings_runs),
        naive=_fastest(naive_runs),
        enqueue_seconds=min(enqueue_seconds),
        notes=notes if repeat > 1 else (),
    )


# -- PostgreSQL -----------------------------------------------------------------------

Key = tuple[str, str]
PgConnection = psycopg.Connection[tuple[Any, ...]]


def _database_url(server: str, name: str) -> str:
    """``server`` with its database replaced by ``name`` (user, host, query kept)."""
    return urlunsplit(urlsplit(server)._replace(path=f"/{name}"))


@contextlib.contextmanager
def _fresh_databases(server: str) -> Iterator[Callable[[str], str]]:
    """Yields ``create(role) -> url``; every database created is dropped on exit."""
    prefix = f"tidings_bench_{uuid.uuid4().hex[:8]}"
    created: list[str] = []

    def create(role: str) -> str:
        name = f"{prefix}_{role}"
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        created.append(name)
        return _database_url(server, name)

    try:
        yield create
    finally:
        if created:
            with psycopg.connect(server, autocommit=True) as admin:
                for name in created:
                    admin.execute(
                        sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                            sql.Identifier(name)
                        )
                    )


async def _prepare_postgres_async(url: str, workload: Workload, *, enqueue: bool) -> float:
    """Migrate, store the preferences and (timed) enqueue the events; the enqueue time."""
    store = PostgresStore(url)
    try:
        await store.migrate()
        for user, kind, preference in workload.preferences:
            await store.set_preference(user, kind, preference)
        if not enqueue:
            return 0.0
        start = time.perf_counter()
        accepted = await store.enqueue(workload.events)
        seconds = time.perf_counter() - start
    finally:
        await store.close()
    if accepted != len(workload.events):
        raise BenchError(f"enqueue accepted {accepted} of {len(workload.events)} events")
    return seconds


@attrs.frozen(kw_only=True)
class RunnerRun:
    """P runner processes started at once: time until the last exited, each one's exit."""

    seconds: float
    exits: tuple[float, ...]
    notified: int


_PASSED_THROUGH = frozenset(
    f"TIDINGS_{name.upper()}"
    for name in ("escalate_past_cooldown", "quiet_hours_hold_critical", "digest_after_cooldown")
)
"""The policy's switches: kept, so that the same command measures a rule on and off
(``TIDINGS_DIGEST_AFTER_COOLDOWN=true .venv/bin/python bench/dispatch.py ...``)."""


def _runner_environment() -> dict[str, str]:
    """The caller's environment without any ``TIDINGS_*`` setting but the policy's
    switches, and a short poll."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("TIDINGS_") or name in _PASSED_THROUGH
    }
    env["TIDINGS_POLL_INTERVAL"] = "0.05"
    return env


def _stop(runners: Sequence[subprocess.Popen[bytes]]) -> None:
    for runner in runners:
        if runner.poll() is None:
            runner.kill()
            runner.wait()


def _wait_all(runners: Sequence[subprocess.Popen[bytes]], start: float) -> list[float]:
    """Each runner's exit time after ``start``. Past the timeout, or if the wait is
    interrupted (Ctrl-C), the runners still alive are killed: none outlives the bench."""
    exits: list[float | None] = [None] * len(runners)
    try:
        while any(found is None for found in exits):
            for index, runner in enumerate(runners):
                if exits[index] is None and runner.poll() is not None:
                    exits[index] = time.perf_counter() - start
            if time.perf_counter() - start > _RUNNER_TIMEOUT:
                raise BenchError(f"runner processes still running after {_RUNNER_TIMEOUT:.0f} s")
            time.sleep(0.001)
    finally:
        _stop(runners)
    return [found for found in exits if found is not None]


def _byte_compile() -> None:
    """Compile tidings' modules, as installing a package does: run from a checkout
    (an editable install) in a shell with ``PYTHONDONTWRITEBYTECODE=1``, every runner
    would compile its sources again at start-up, a cost no deployment pays."""
    for package in ("core", "adapters", "runner"):
        compileall.compile_dir(_REPO / package, quiet=1)


def run_runner_processes(url: str, processes: int, folder: Path, label: str) -> RunnerRun:
    """Start ``processes`` ``tidings run --until-idle`` processes at once, wait for all."""
    command = [sys.executable, "-m", "tidings.runner.cli", "--database", url, "run", "--until-idle"]
    command.append("--json")
    logs = [(folder / f"{label}-{n}.out", folder / f"{label}-{n}.err") for n in range(processes)]
    env = _runner_environment()
    with contextlib.ExitStack() as stack:
        sinks = [
            (stack.enter_context(o.open("wb")), stack.enter_context(e.open("wb"))) for o, e in logs
        ]
        start = time.perf_counter()
        runners = [
            subprocess.Popen(command, stdout=out, stderr=err, env=env, cwd=_REPO)
            for out, err in sinks
        ]
        exits = _wait_all(runners, start)
    failed = [
        f"runner {n} exited {runner.returncode}: {logs[n][1].read_text()[-2000:]}"
        for n, runner in enumerate(runners)
        if runner.returncode != 0
    ]
    if failed:
        raise BenchError("; ".join(failed))
    notified = sum(int(json.loads(out.read_text())["notified"]) for out, _ in logs)
    return RunnerRun(seconds=max(exits), exits=tuple(exits), notified=notified)


def _scalar(connection: PgConnection, query: str) -> int:
    row = connection.execute(query.encode()).fetchone()
    assert row is not None
    return int(row[0])


def _notified_keys(connection: PgConnection) -> set[Key]:
    found = connection.execute(b"SELECT user_id, kind FROM notifications").fetchall()
    return {(str(user), str(kind)) for user, kind in found}


def _verify_tidings_postgres(url: str, events: int, reported_notified: int) -> set[Key]:
    """The SQLite checks, plus: at most one notification per (user, kind), nothing open."""
    with psycopg.connect(url) as connection:
        found = connection.execute(b"SELECT status, count(*) FROM events GROUP BY status")
        statuses = {str(status): int(count) for status, count in found.fetchall()}
        notifications = _scalar(connection, "SELECT count(*) FROM notifications")
        linked = _scalar(
            connection,
            "SELECT count(*) FROM events e JOIN notifications n"
            " ON n.id = e.notification_id AND n.event_id = e.event_id"
            " WHERE e.status = 'notified'",
        )
        delivered = _scalar(
            connection,
            "SELECT count(*) FROM deliveries WHERE channel = 'in_app' AND status = 'delivered'",
        )
        still_open = _scalar(
            connection, "SELECT count(*) FROM deliveries WHERE status IN ('pending', 'failed')"
        )
        keys = _notified_keys(connection)
    problems = _end_state_problems(
        statuses,
        events,
        notifications=notifications,
        linked=linked,
        delivered=delivered,
        reported_notified=reported_notified,
    )
    if len(keys) != notifications:
        problems.append(f"{notifications} notifications for {len(keys)} (user, kind) keys")
    if still_open:
        problems.append(f"{still_open} deliveries still pending or failed")
    if problems:
        raise BenchError("tidings end state is wrong: " + "; ".join(problems))
    return keys


def bench_tidings_postgres(
    workload: Workload, url: str, processes: int, folder: Path
) -> tuple[Measurement, float, set[Key], RunnerRun, RunnerRun]:
    """The timed run, its enqueue time, the notified keys, the run and an idle rerun."""
    enqueue_seconds = asyncio.run(_prepare_postgres_async(url, workload, enqueue=True))
    timed = run_runner_processes(url, processes, folder, "run")
    keys = _verify_tidings_postgres(url, len(workload.events), timed.notified)
    # The same processes on the drained database: start-up, migrate check, idle check.
    idle = run_runner_processes(url, processes, folder, "idle")
    run = Measurement(
        run=f"tidings (postgresql, {processes} runner process{'es' if processes > 1 else ''})",
        events=len(workload.events),
        seconds=timed.seconds,
        notified=len(keys),
    )
    return run, enqueue_seconds, keys, timed, idle


_PG_PREFERENCE_SQL = (
    b"SELECT channels, min_severity FROM notification_preferences WHERE user_id = %s AND kind = %s"
)
_PG_LAST_SQL = b"SELECT max(created_at) FROM notifications WHERE user_id = %s AND kind = %s"
_PG_INSERT_SQL = (
    b"INSERT INTO notifications (id, event_id, user_id, kind, severity, title, body,"
    b" payload_json, created_at, dispatched_via) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)


def _reference_process_event_pg(connection: PgConnection, event: Event) -> bool:
    """The reference's ``process_event`` on PostgreSQL, one autocommit round trip each."""
    kind_row = connection.execute(_PG_PREFERENCE_SQL, (event.user_id, event.kind)).fetchone()
    global_row = connection.execute(_PG_PREFERENCE_SQL, (event.user_id, GLOBAL_KIND)).fetchone()
    channels, min_severity = _effective(kind_row, global_row)
    if event.severity.rank < min_severity.rank or not channels:
        return False
    last = connection.execute(_PG_LAST_SQL, (event.user_id, event.kind)).fetchone()
    now = system_clock()
    if last is not None and last[0] is not None and now - last[0] < _REFERENCE_COOLDOWN:
        return False
    delivered = [name for name in channels if name == Channel.IN_APP.value]
    connection.execute(
        _PG_INSERT_SQL,
        (
            uuid.uuid4().hex,
            event.event_id,
            event.user_id,
            event.kind,
            event.severity.value,
            event.title,
            event.body,
            event.payload_json,
            now,
            delivered,
        ),
    )
    return True


def bench_naive_postgres(workload: Workload, url: str) -> tuple[Measurement, set[Key]]:
    asyncio.run(_prepare_postgres_async(url, workload, enqueue=False))
    with psycopg.connect(url, autocommit=True) as connection:
        start = time.perf_counter()
        notified = sum(_reference_process_event_pg(connection, e) for e in workload.events)
        seconds = time.perf_counter() - start
        keys = _notified_keys(connection)
        stored = _scalar(connection, "SELECT count(*) FROM notifications")
    if stored != notified or len(keys) != notified:
        raise BenchError(
            f"naive loop inserted {notified} notifications, the database holds {stored}"
            f" over {len(keys)} (user, kind) keys"
        )
    run = Measurement(
        run="naive loop (postgresql)",
        events=len(workload.events),
        seconds=seconds,
        notified=notified,
    )
    return run, keys


def bench_raw_insert_postgres(workload: Workload, url: str, rows: int) -> Measurement:
    """``rows`` notification rows, shaped like tidings', in one executemany transaction."""
    asyncio.run(PostgresStore(url).migrate())
    now = system_clock()
    values = [
        (uuid.uuid4().hex, e.event_id, e.user_id, e.kind, e.severity.value, e.title, e.body,
         e.payload_json, now, [Channel.IN_APP.value])
        for e in workload.events[:rows]
    ]  # fmt: skip
    with psycopg.connect(url, autocommit=True) as connection:
        start = time.perf_counter()
        with connection.transaction(), connection.cursor() as cursor:
            cursor.executemany(_PG_INSERT_SQL, values)
        seconds = time.perf_counter() - start
        stored = _scalar(connection, "SELECT count(*) FROM notifications")
    if stored != len(values):
        raise BenchError(f"raw insert wrote {stored} of {len(values)} rows")
    return Measurement(
        run=f"raw insert (postgresql, {len(values)} notification rows, executemany, 1 transaction)",
        events=len(values),
        seconds=seconds,
        notified=len(values),
    )


def _raw_rows(workload: Workload, notified: int) -> tuple[int, str]:
    if notified >= RAW_MIN_ROWS or notified >= len(workload.events):
        return notified, f"{notified} rows: as many as tidings created"
    return len(workload.events), (
        f"{len(workload.events)} rows: one per event, since tidings created only"
        f" {notified} (< {RAW_MIN_ROWS})"
    )


def _runner_notes(processes: int, timed: RunnerRun, idle: RunnerRun) -> tuple[str, ...]:
    exits = ", ".join(f"{seconds:.2f}" for seconds in sorted(timed.exits))
    idle_exits = ", ".join(f"{seconds:.2f}" for seconds in sorted(idle.exits))
    return (
        f"runner processes exited after {exits} s (sum of their own notified counts:"
        f" {timed.notified})",
        f"fixed cost in the tidings time: {processes} runner process(es) on the drained"
        f" database exit after {idle_exits} s (interpreter start-up, migrate check, idle check)",
    )


@attrs.frozen(kw_only=True)
class _PostgresRound:
    tidings: Measurement
    enqueue_seconds: float
    timed: RunnerRun
    idle: RunnerRun
    naive: Measurement
    raw: Measurement
    raw_note: str
    keys: set[Key]


def _postgres_round(
    workload: Workload, processes: int, create: Callable[[str], str], label: str
) -> _PostgresRound:
    with tempfile.TemporaryDirectory(prefix="tidings-bench-") as folder:
        tidings, enqueue_seconds, tidings_keys, timed, idle = bench_tidings_postgres(
            workload, create(f"tidings{label}"), processes, Path(folder)
        )
    naive, naive_keys = bench_naive_postgres(workload, create(f"naive{label}"))
    rows, raw_note = _raw_rows(workload, tidings.notified)
    raw = bench_raw_insert_postgres(workload, create(f"raw{label}"), rows)
    if tidings_keys != naive_keys:
        raise BenchError(
            f"notified (user, kind) keys differ: {len(tidings_keys - naive_keys)} only in"
            f" tidings, {len(naive_keys - tidings_keys)} only in the naive loop"
        )
    return _PostgresRound(
        tidings=tidings, enqueue_seconds=enqueue_seconds, timed=timed, idle=idle,
        naive=naive, raw=raw, raw_note=raw_note, keys=tidings_keys,
    )  # fmt: skip


def run_postgres(server: str, processes: int, workload: Workload, repeat: int = 1) -> Report:
    """``repeat`` rounds of the three runs, each on fresh databases; the fastest of
    each is reported with every round's time, as on SQLite."""
    _byte_compile()
    try:
        with _fresh_databases(server) as create:
            rounds = [_postgres_round(workload, processes, create, str(n)) for n in range(repeat)]
    except psycopg.Error as error:
        raise BenchError(f"PostgreSQL: {error}") from error
    fastest = min(rounds, key=lambda r: r.tidings.seconds)
    naive = _fastest([r.naive for r in rounds])
    draining = fastest.tidings.seconds - max(fastest.idle.exits)
    without_start = (
        f"not in the ratios: without that fixed cost the drain took {draining:.2f} s,"
        f" {len(workload.events) / draining:,.0f} events/s"
        f" ({len(workload.events) / draining / naive.per_second:.2f}x naive)"
        if draining > 0
        else "not in the ratios: the fixed cost is most of the time at this size"
    )
    notes = (
        *_runner_notes(processes, fastest.timed, fastest.idle),
        without_start,
        f"raw insert: {fastest.raw_note}",
        f"notified (user, kind) keys: tidings and naive identical ({len(fastest.keys)});"
        " at most one notification per key",
    )
    if repeat > 1:
        medians = [statistics.median(run.seconds for run in side) for side in zip(
            *((r.tidings, r.naive, r.raw) for r in rounds), strict=True
        )]  # fmt: skip
        notes = (
            f"fastest of {repeat} rounds; all seconds: tidings"
            f" {_seconds_list([r.tidings for r in rounds])}; naive"
            f" {_seconds_list([r.naive for r in rounds])}; raw insert"
            f" {_seconds_list([r.raw for r in rounds])}; ratios of the medians:"
            f" {medians[1] / medians[0]:.2f} naive, {medians[2] / medians[0]:.2f} raw insert",
            *notes,
        )
    return Report(
        tidings=fastest.tidings,
        naive=naive,
        enqueue_seconds=min(r.enqueue_seconds for r in rounds),
        raw=_fastest([r.raw for r in rounds]),
        notes=notes,
    )


# -- command line -----------------------------------------------------------------------


def is_postgres(database: str) -> bool:
    return database.startswith(("postgresql://", "postgres://"))


def store_runner(
    database: str, processes: int = 1, repeat: int = 1
) -> Callable[[Workload], Report]:
    """The runs for a ``--database`` value: ``sqlite`` or a PostgreSQL server URL."""
    if database == "sqlite":
        return functools.partial(run_sqlite, repeat=repeat)
    if is_postgres(database):
        return functools.partial(run_postgres, database, processes, repeat=repeat)
    raise BenchError(f"--database {database!r} is not supported (use sqlite or postgresql://...)")


def _table(runs: Sequence[Measurement]) -> str:
    lines = ["| run | events | seconds | events/s |", "| --- | ---: | ---: | ---: |"]
    lines.extend(f"| {r.run} | {r.events} | {r.seconds:.3f} | {r.per_second:,.0f} |" for r in runs)
    return "\n".join(lines)


def _verdict(ratio: float, target: float) -> str:
    return "ok" if ratio >= target else "BELOW TARGET"


def _print_postgres_report(
    report: Report, raw: Measurement, workload: Workload, keys: int, processes: int
) -> None:
    events = len(workload.events)
    print(
        f"{events} events over {keys} (user, kind) keys,"
        f" {len(workload.preferences)} preference rows, in-app channel only;"
        f" PostgreSQL, {processes} runner process{'es' if processes > 1 else ''}\n"
    )
    print(_table((report.tidings, report.naive, raw)))
    naive_ratio = report.tidings.per_second / report.naive.per_second
    raw_ratio = report.tidings.per_second / raw.per_second
    print(
        f"\nratio tidings/naive: {naive_ratio:.2f} (target >= {POSTGRES_NAIVE_TARGET:g}):"
        f" {_verdict(naive_ratio, POSTGRES_NAIVE_TARGET)}"
    )
    print(
        f"ratio tidings/raw insert: {raw_ratio:.2f} (target >= {POSTGRES_RAW_TARGET:.2f}):"
        f" {_verdict(raw_ratio, POSTGRES_RAW_TARGET)}"
    )
    print(
        f"tidings enqueue (not in the ratios): {events} events in {report.enqueue_seconds:.3f} s"
        f" ({events / max(report.enqueue_seconds, 1e-9):,.0f} events/s)"
    )
    for note in report.notes:
        print(note)
    agree = "agree" if report.tidings.notified == report.naive.notified else "DIFFER"
    print(
        f"notified: tidings {report.tidings.notified}, naive {report.naive.notified} ({agree});"
        " tidings end state verified (all events terminal, one notification per notified)"
    )


def _print_report(report: Report, workload: Workload, keys: int, processes: int = 1) -> None:
    if report.raw is not None:
        _print_postgres_report(report, report.raw, workload, keys, processes)
        return
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
    for note in report.notes:
        print(note)
    agree = "agree" if report.tidings.notified == report.naive.notified else "DIFFER"
    print(
        f"notified: tidings {report.tidings.notified}, naive {report.naive.notified} ({agree});"
        " tidings end state verified (all events terminal, one notification per notified)"
    )


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=20_000, help="events to dispatch")
    parser.add_argument(
        "--keys",
        type=int,
        default=None,
        help="distinct (user, kind) keys (default 2000, or as --workload says)",
    )
    parser.add_argument(
        "--workload",
        choices=sorted(WORKLOADS),
        default=None,
        help="keys as a share of --events: skip-heavy events/10 (~9%% notified),"
        " mixed events/4 (~22%%), notify-heavy events (~86%%); --keys overrides",
    )
    parser.add_argument(
        "--database",
        default="sqlite",
        help="store kind: sqlite, or a PostgreSQL server URL (postgresql://...);"
        " the script creates and drops its own databases there",
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        help="PostgreSQL only: runner processes started at once (default 1)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=None,
        help="rounds of every run, alternating; the fastest of each is reported"
        " (default 5 on SQLite, 3 on PostgreSQL)",
    )
    parser.add_argument("--seed", type=int, default=42, help="workload random seed")
    args = parser.parse_args(argv)
    if args.keys is None:
        args.keys = max(1, args.events // WORKLOADS[args.workload]) if args.workload else 2_000
    if args.events < 1 or args.keys < 1:
        parser.error("--events and --keys must be positive")
    if args.repeat is None:
        args.repeat = 3 if is_postgres(args.database) else 5
    if args.processes < 1 or args.repeat < 1:
        parser.error("--processes and --repeat must be positive")
    if args.processes != 1 and not is_postgres(args.database):
        parser.error("--processes applies to PostgreSQL only")
    return args


def _terminated(signum: int, frame: object) -> None:
    """SIGTERM unwinds like Ctrl-C: runner processes are killed, databases dropped."""
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    args = _arguments(argv)
    signal.signal(signal.SIGTERM, _terminated)
    try:
        runner = store_runner(args.database, args.processes, args.repeat)
        workload = make_workload(args.events, args.keys, args.seed)
        report = runner(workload)
    except BenchError as error:
        print(f"bench/dispatch.py: {error}", file=sys.stderr)
        return 1
    _print_report(report, workload, min(args.keys, args.events), args.processes)
    return 0 if report.tidings.notified == report.naive.notified else 1


if __name__ == "__main__":
    sys.exit(main())

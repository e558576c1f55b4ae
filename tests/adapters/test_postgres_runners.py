"""Many runner processes on one PostgreSQL database: races, crashes, lost connections.

Each test starts real ``tidings run`` processes against a fresh database and checks
the end state in SQL: every event terminal, one notification per (user, kind) inside
the cooldown, every planned delivery settled.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from tidings.adapters.postgres import PostgresStore
from tidings.core import Event, Preference, Severity

KEYS = 200


def events_over_keys(count: int, keys: int, prefix: str = "e") -> list[Event]:
    return [
        Event(
            event_id=f"{prefix}{n}",
            user_id=f"user{n % keys}",
            kind=f"kind{n % 2}",
            severity=Severity.CRITICAL,
            title=f"Event {n}",
            body="body",
        )
        for n in range(count)
    ]


def prepare(url: str, events: list[Event], email_users: int = 0) -> None:
    async def go() -> None:
        store = PostgresStore(url)
        try:
            await store.migrate()
            for n in range(email_users):
                for kind in ("kind0", "kind1"):
                    preference = Preference(("in_app", "email"), Severity.INFO)
                    await store.set_preference(f"user{n}", kind, preference)
            for start in range(0, len(events), 5000):
                await store.enqueue(events[start : start + 5000])
        finally:
            await store.close()

    asyncio.run(go())


def start_runner(
    url: str, log: Path, lease_seconds: float = 2.0, batch_size: int | None = 100
) -> subprocess.Popen[bytes]:
    """A ``tidings run --until-idle`` process. Small batches by default: many
    transactions for a kill or a cut to land in the middle of; None for the default."""
    env = {
        **os.environ,
        "TIDINGS_LEASE_SECONDS": str(lease_seconds),
        "TIDINGS_POLL_INTERVAL": "0.2",
    }
    if batch_size is not None:
        env["TIDINGS_BATCH_SIZE"] = str(batch_size)
    with log.open("ab") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "tidings.runner.cli", "--database", url, "run", "--until-idle"],
            stdout=sink,
            stderr=sink,
            env=env,
        )


def finish(runners: list[subprocess.Popen[bytes]], log: Path, timeout: float = 300) -> None:
    for runner in runners:
        try:
            status = runner.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            runner.kill()
            raise AssertionError(f"runner did not finish:\n{log.read_text()[-3000:]}") from None
        assert status == 0, log.read_text()[-3000:]


def scalar(url: str, sql: str) -> object:
    with psycopg.connect(url) as connection:
        row = connection.execute(sql).fetchone()
    assert row is not None
    return row[0]


def decided(url: str) -> int:
    return int(str(scalar(url, "SELECT count(*) FROM events WHERE decided_at IS NOT NULL")))


def wait_until_decided(url: str, count: int, timeout: float = 60) -> None:
    """Return once ``count`` events are decided: the runners are then mid-drain,
    however fast they start and go."""
    deadline = time.monotonic() + timeout
    while decided(url) < count:
        assert time.monotonic() < deadline, f"fewer than {count} events decided in {timeout} s"
        time.sleep(0.01)


def assert_drained(url: str, events: int, keys: int) -> None:
    with psycopg.connect(url) as connection:
        found = connection.execute("SELECT status, count(*) FROM events GROUP BY status")
        statuses: dict[str, int] = dict(found.fetchall())
    assert set(statuses) <= {"notified", "skipped"}, statuses
    assert sum(statuses.values()) == events
    assert statuses["notified"] == keys
    assert scalar(url, "SELECT count(*) FROM notifications") == keys
    assert scalar(url, "SELECT count(DISTINCT (user_id, kind)) FROM notifications") == keys
    assert scalar(url, "SELECT count(*) FROM deliveries WHERE status IN ('pending', 'failed')") == 0


def test_four_runners_race_for_one_cooldown(postgres_url: str, tmp_path: Path) -> None:
    events = events_over_keys(20_000, KEYS)
    prepare(postgres_url, events)
    log = tmp_path / "runners.log"

    runners = [start_runner(postgres_url, log, batch_size=None) for _ in range(4)]
    finish(runners, log)

    assert_drained(postgres_url, len(events), KEYS)
    # Several runners decided events: the race was real.
    decided = [
        int(notified) + int(skipped)
        for notified, skipped in re.findall(
            r"stopped: notified (\d+); skipped (\d+)", log.read_text()
        )
    ]
    assert len(decided) == 4 and sum(decided) == len(events)
    assert sum(1 for count in decided if count) >= 2, decided


def test_runners_killed_at_random_moments_lose_nothing(postgres_url: str, tmp_path: Path) -> None:
    events = events_over_keys(6_000, KEYS, prefix="k")
    prepare(postgres_url, events, email_users=50)
    log = tmp_path / "runners.log"
    chance = random.Random(7)

    for round_ in range(4):
        runners = [start_runner(postgres_url, log, lease_seconds=1.0) for _ in range(2)]
        # Killed at a random point of each quarter of the drain.
        wait_until_decided(postgres_url, int(len(events) * (round_ + chance.random()) / 5))
        for runner in runners:
            runner.send_signal(signal.SIGKILL)
            runner.wait()
    finish([start_runner(postgres_url, log, lease_seconds=1.0)], log)

    assert_drained(postgres_url, len(events), KEYS)
    # users 0..49 asked for email too (each user has one kind): one settled email
    # delivery per notification, skipped since email is not configured here.
    assert scalar(postgres_url, "SELECT count(*) FROM deliveries WHERE channel = 'email'") == 50
    assert scalar(postgres_url, "SELECT count(*) FROM deliveries WHERE status = 'skipped'") == 50


def test_a_runner_survives_its_connections_being_cut(postgres_url: str, tmp_path: Path) -> None:
    events = events_over_keys(8_000, KEYS, prefix="c")
    prepare(postgres_url, events)
    log = tmp_path / "runner.log"
    database = postgres_url.rpartition("/")[2]

    runner = start_runner(postgres_url, log)
    with psycopg.connect(postgres_url.rpartition("/")[0] + "/postgres", autocommit=True) as admin:
        for cut in range(3):
            wait_until_decided(postgres_url, len(events) * (cut + 1) // 5)
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                (database,),
            )
    finish([runner], log)

    assert_drained(postgres_url, len(events), KEYS)
    output = log.read_text()
    assert "store unreachable" in output
    assert "store reachable again" in output


@pytest.mark.parametrize(
    "text",
    [
        "'; DROP TABLE events; --",
        'Robert"); DELETE FROM notifications WHERE ("1"="1',
        "$$; SELECT pg_sleep(10); $$",
        "\\x00 \\' %s %(x)s {0}",
        "ünïcødé ✓ 🚀",
    ],
)
def test_sql_metacharacters_are_stored_verbatim(postgres_url: str, text: str) -> None:
    event = Event(
        event_id=text,
        user_id=text,
        kind=text,
        severity=Severity.WATCH,
        title=text,
        body=text,
        payload_json='{"text": "' + text.replace("\\", "\\\\").replace('"', '\\"') + '"}',
    )
    prepare(postgres_url, [event])
    subprocess.run(
        [
            sys.executable,
            "-m",
            "tidings.runner.cli",
            "--database",
            postgres_url,
            "run",
            "--until-idle",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    with psycopg.connect(postgres_url) as connection:
        row = connection.execute(
            "SELECT event_id, user_id, kind, title, body, payload_json FROM notifications"
        ).fetchall()
        tables = connection.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        ).fetchone()
    assert row == [(text, text, text, text, text, event.payload_json)]
    assert tables == (10,)  # nine tables and schema_migrations, none dropped


def test_a_runner_survives_a_postgresql_restart(postgres_url: str, tmp_path: Path) -> None:
    events = events_over_keys(12_000, KEYS, prefix="r")
    prepare(postgres_url, events)
    log = tmp_path / "runner.log"
    version = next(Path("/etc/postgresql").iterdir()).name

    runner = start_runner(postgres_url, log)
    wait_until_decided(postgres_url, 1)
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"],
        check=True,
        timeout=120,
    )
    finish([runner], log)

    assert_drained(postgres_url, len(events), KEYS)
    output = log.read_text()
    assert "store unreachable" in output
    assert "store reachable again" in output

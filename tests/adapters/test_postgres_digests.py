"""Digests are decided exactly once, however many runner processes share the database,
and whichever of them is killed mid-drain.

With ``TIDINGS_DIGEST_AFTER_COOLDOWN`` a key's events skipped inside its cooldown are
held for the key's digest (``events.digest_id``); when the cooldown ends the digest is
decided once, by the poll's sweep or before the key's next event, and its notification
(``event_id`` = the digest's id) lists the held events' ids in the order they came.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import psycopg

from tests.adapters.test_postgres_runners import events_over_keys, finish, prepare, scalar

COOLDOWN = timedelta(seconds=2)


def start(
    url: str,
    log: Path,
    runners: list[subprocess.Popen[bytes]],
    *,
    until_idle: bool = False,
    batch_size: int | None = None,
    workers: int | None = None,
) -> subprocess.Popen[bytes]:
    """A ``tidings run`` process with digests on and a 2 s cooldown, kept in ``runners``
    (the fixture kills any left running)."""
    env = {
        **os.environ,
        "TIDINGS_LEASE_SECONDS": "1.0",
        "TIDINGS_POLL_INTERVAL": "0.1",
        "TIDINGS_COOLDOWN_SECONDS": str(COOLDOWN.total_seconds()),
        "TIDINGS_DIGEST_AFTER_COOLDOWN": "true",
    }
    if batch_size is not None:
        env["TIDINGS_BATCH_SIZE"] = str(batch_size)
    command = [sys.executable, "-m", "tidings.runner.cli", "--database", url, "run"]
    if until_idle:
        command.append("--until-idle")
    if workers is not None:
        command += ["--workers", str(workers)]
    with log.open("ab") as sink:
        runner = subprocess.Popen(command, stdout=sink, stderr=sink, env=env)
    runners.append(runner)
    return runner


def count(url: str, sql: str) -> int:
    return int(str(scalar(url, sql)))


def wait_until_settled(url: str, events: int, log: Path, timeout: float = 30) -> None:
    """Every event decided, and no digest left pending (they are due 2 s after a key's
    last notification)."""
    deadline = time.monotonic() + timeout
    while not (
        count(url, "SELECT count(*) FROM events WHERE decided_at IS NOT NULL") == events
        and count(url, "SELECT count(*) FROM digests") > 0
        and count(url, "SELECT count(*) FROM digests WHERE status = 'pending'") == 0
    ):
        assert time.monotonic() < deadline, (
            f"not settled in {timeout} s:\n{log.read_text()[-3000:]}"
        )
        time.sleep(0.1)


def stop(runners: list[subprocess.Popen[bytes]], log: Path) -> None:
    """SIGTERM the live runners, once each has logged its start (its signal handlers are
    in place by then; its id holds its pid), and expect each to exit cleanly."""
    live = [runner for runner in runners if runner.poll() is None]
    deadline = time.monotonic() + 15
    for runner in live:
        started = re.compile(rf"runner \S+-{runner.pid}-\S+ started")
        while not started.search(log.read_text()):
            assert time.monotonic() < deadline, f"runner {runner.pid} did not start"
            time.sleep(0.02)
        runner.send_signal(signal.SIGTERM)
    finish(live, log, 30)


def assert_digests_exact(url: str, events: int) -> dict[str, int]:
    """Each held event is in one notified digest, listed once, in the digest's
    notification, in the order it was accepted; no event or digest notified twice."""
    figures = {
        "events": count(url, "SELECT count(*) FROM events"),
        "undecided": count(url, "SELECT count(*) FROM events WHERE decided_at IS NULL"),
        "held": count(url, "SELECT count(*) FROM events WHERE digest_id IS NOT NULL"),
        "held_not_cooldown_skips": count(
            url,
            "SELECT count(*) FROM events WHERE digest_id IS NOT NULL"
            " AND (status <> 'skipped' OR reason <> 'cooldown')",
        ),
        "held_in_no_notified_digest": count(
            url,
            "SELECT count(*) FROM events e LEFT JOIN digests d ON d.id = e.digest_id"
            " WHERE e.digest_id IS NOT NULL AND (d.id IS NULL OR d.status <> 'notified')",
        ),
        "digests": count(url, "SELECT count(*) FROM digests"),
        "digests_notified": count(url, "SELECT count(*) FROM digests WHERE status = 'notified'"),
        "digests_without_held": count(
            url,
            "SELECT count(*) FROM digests d"
            " WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.digest_id = d.id)",
        ),
        "digest_ids_not_prefixed": count(
            url, "SELECT count(*) FROM digests WHERE id NOT LIKE 'digest-%'"
        ),
        "notifications": count(url, "SELECT count(*) FROM notifications"),
        "duplicate_notification_event_ids": count(
            url, "SELECT count(*) - count(DISTINCT event_id) FROM notifications"
        ),
        "notified_digests_without_one_notification": count(
            url,
            "SELECT count(*) FROM digests d WHERE d.status = 'notified'"
            " AND (SELECT count(*) FROM notifications n WHERE n.event_id = d.id) <> 1",
        ),
    }
    assert figures["events"] == events, figures
    for must_be_zero in (
        "undecided",
        "held_not_cooldown_skips",
        "held_in_no_notified_digest",
        "digests_without_held",
        "digest_ids_not_prefixed",
        "duplicate_notification_event_ids",
        "notified_digests_without_one_notification",
    ):
        assert figures[must_be_zero] == 0, (must_be_zero, figures)
    assert figures["digests_notified"] == figures["digests"], figures

    with psycopg.connect(url) as connection:
        payloads = connection.execute(
            "SELECT d.id, n.payload_json FROM digests d JOIN notifications n ON n.event_id = d.id"
        ).fetchall()
        held_rows = connection.execute(
            "SELECT digest_id, event_id FROM events WHERE digest_id IS NOT NULL ORDER BY seq"
        ).fetchall()
    held: dict[str, list[str]] = {}
    for digest_id, event_id in held_rows:
        held.setdefault(str(digest_id), []).append(str(event_id))
    listed: list[str] = []
    for digest_id, payload in payloads:
        event_ids = json.loads(str(payload))["event_ids"]
        assert event_ids == held[str(digest_id)], digest_id
        listed += event_ids
    assert len(listed) == len(set(listed)) == figures["held"], figures
    return figures


def notifications_closer_than_the_cooldown(url: str) -> list[tuple[object, ...]]:
    """A key's notifications (events' and digests') at least a cooldown apart: a digest
    starts the key's next cooldown, so two digests of one window would show here."""
    with psycopg.connect(url) as connection:
        return connection.execute(
            "SELECT user_id, kind, event_id, gap FROM (SELECT user_id, kind, event_id,"
            " created_at - lag(created_at) OVER (PARTITION BY user_id, kind"
            "  ORDER BY created_at) AS gap FROM notifications) AS spaced"
            " WHERE gap < %s",
            (COOLDOWN - timedelta(milliseconds=1),),
        ).fetchall()


def test_four_runners_send_each_keys_digest_once(
    postgres_url: str, tmp_path: Path, runners: list[subprocess.Popen[bytes]]
) -> None:
    keys, per_key = 40, 10
    events = events_over_keys(keys * per_key, keys, prefix="d")
    prepare(postgres_url, events)
    log = tmp_path / "runners.log"

    for _ in range(4):
        start(postgres_url, log, runners)
    wait_until_settled(postgres_url, len(events), log)
    stop(runners, log)

    figures = assert_digests_exact(postgres_url, len(events))
    assert figures["held"] == keys * (per_key - 1), figures
    assert figures["digests"] == keys, figures
    assert figures["notifications"] == 2 * keys, figures
    assert count(postgres_url, "SELECT count(DISTINCT (user_id, kind)) FROM digests") == keys
    assert notifications_closer_than_the_cooldown(postgres_url) == []


def test_runners_killed_mid_sweep_send_each_digest_once(
    postgres_url: str, tmp_path: Path, runners: list[subprocess.Popen[bytes]]
) -> None:
    keys, waves, per_wave = 30, 4, 3
    log = tmp_path / "runners.log"
    chance = random.Random(11)
    prepare(postgres_url, [])

    live = [start(postgres_url, log, runners, batch_size=5, workers=1) for _ in range(3)]
    enqueued = 0
    for kill in range(waves * 4):
        if kill % 4 == 0:  # a wave: every key gets a few more events
            wave = events_over_keys(keys * per_wave, keys, prefix=f"w{kill}-")
            prepare(postgres_url, wave)
            enqueued += len(wave)
        time.sleep(0.3)
        victim = chance.randrange(len(live))
        live[victim].send_signal(signal.SIGKILL)
        live[victim].wait()
        live[victim] = start(postgres_url, log, runners, batch_size=5, workers=1)
    stop(live, log)

    # Stopped: nothing held may be forgotten (its digest is notified, or still pending).
    assert (
        count(
            postgres_url,
            "SELECT count(*) FROM events e LEFT JOIN digests d ON d.id = e.digest_id"
            " WHERE e.digest_id IS NOT NULL AND (d.id IS NULL OR d.status = 'skipped')",
        )
        == 0
    )
    # One runner finishes; --until-idle exits once no digest is due now, so it runs
    # again while a digest is pending (due when its key's cooldown ends).
    for _ in range(4):
        finish([start(postgres_url, log, runners, until_idle=True)], log, 30)
        if count(postgres_url, "SELECT count(*) FROM digests WHERE status = 'pending'") == 0:
            break
        time.sleep(0.5)

    assert count(postgres_url, "SELECT count(*) FROM digests WHERE status = 'pending'") == 0
    figures = assert_digests_exact(postgres_url, enqueued)
    assert figures["held"] > 0 and figures["digests"] >= keys, figures
    assert notifications_closer_than_the_cooldown(postgres_url) == []

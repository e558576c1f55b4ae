"""How many of the server's connections a tidings process holds (``pg_stat_activity``).

Servers cap connections (``max_connections``), and every runner, command and producer
shares them: a runner holds two while it waits for events (the pool's one and the
listener), grows with the work it has and shrinks back; a one-shot command holds one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg

from tests.adapters.test_postgres_runners import decided, events_over_keys, prepare
from tests.conftest import database_url


def connections(url: str) -> int:
    """The sessions open on ``url``'s database, this one excepted."""
    name = url.rpartition("/")[2]
    with psycopg.connect(database_url("postgres"), autocommit=True) as admin:
        row = admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (name,)
        ).fetchone()
    assert row is not None
    return int(row[0])


@contextmanager
def most_connections(url: str) -> Iterator[list[int]]:
    """Count the database's sessions every 20 ms while the block runs; the list holds
    the highest count seen once it ends."""
    most = [0]
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            most[0] = max(most[0], connections(url))
            time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        yield most
    finally:
        done.set()
        watcher.join()


def tidings(url: str, *argv: str, **environment: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tidings.runner.cli", "--database", url, *argv],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "TIDINGS_POLL_INTERVAL": "0.1", **environment},
    )


def stop(runner: subprocess.Popen[bytes]) -> None:
    runner.send_signal(signal.SIGTERM)
    assert runner.wait(timeout=30) == 0


def wait_for(condition: str, check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not {condition} within {timeout} s"
        time.sleep(0.05)


def test_an_idle_runner_holds_two_connections(postgres_url: str) -> None:
    """Its lanes look for events every poll interval (here 0.1 s) and its renewals and
    retries run beside them, yet it keeps one pooled connection and the listener."""
    prepare(postgres_url, [])
    runner = tidings(postgres_url, "run")
    try:
        wait_for("listening", lambda: connections(postgres_url) == 2, timeout=20)
        with most_connections(postgres_url) as most:
            time.sleep(3)
        assert most[0] == 2
    finally:
        stop(runner)


def test_a_runner_grows_with_its_work_up_to_its_pool_size_then_shrinks_back(
    postgres_url: str,
) -> None:
    """``TIDINGS_POOL_SIZE`` caps the pool: three pooled connections (one lane) and the
    listener at most; once the backlog is drained the pool closes what goes unused."""
    events = events_over_keys(6_000, 200)
    prepare(postgres_url, [])
    runner = tidings(postgres_url, "run", TIDINGS_POOL_SIZE="3", TIDINGS_BATCH_SIZE="100")
    try:
        wait_for("listening", lambda: connections(postgres_url) == 2, timeout=20)
        with most_connections(postgres_url) as most:
            prepare(postgres_url, events)
            wait_for("drained", lambda: decided(postgres_url) == len(events), timeout=60)
        assert most[0] <= 3 + 1 + 1  # the pool, the listener, and prepare()'s own
        wait_for("shrunk", lambda: connections(postgres_url) == 2, timeout=20)
    finally:
        stop(runner)


def test_enqueue_holds_one_connection(postgres_url: str) -> None:
    """``tidings enqueue`` stores batch after batch on one connection and opens no
    listener; here it is fed slowly, so it is connected all along."""
    prepare(postgres_url, [])
    lines = [
        json.dumps({"user_id": f"u{n}", "kind": "k", "severity": "watch", "title": "T",
                    "body": "B"}) + "\n"
        for n in range(3_500)
    ]  # fmt: skip
    enqueue = tidings(postgres_url, "enqueue", "-")
    assert enqueue.stdin is not None
    with most_connections(postgres_url) as most:
        for start in range(0, len(lines), 500):
            enqueue.stdin.write("".join(lines[start : start + 500]).encode())
            enqueue.stdin.flush()
            time.sleep(0.2)
        enqueue.stdin.close()
        assert enqueue.wait(timeout=60) == 0
    assert most[0] == 1
    with psycopg.connect(postgres_url) as connection:
        assert connection.execute("SELECT count(*) FROM events").fetchone() == (3_500,)

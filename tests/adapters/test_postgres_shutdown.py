"""Stopping a runner while it delivers: real ``tidings run`` processes on PostgreSQL,
email through a real (slow) SMTP server.

A stopped runner hands back what it has not started, finishes what is in flight
while it keeps renewing those claims, and exits within its grace period; a second
signal exits at once. Every delivery reaches the server once: counted by its
``X-Tidings-Delivery`` header, as a receiver deduplicating on ``Message-ID`` would.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.smtp_server import Mailbox, StartServer
from tidings.adapters.postgres import PostgresStore
from tidings.core import Event, Severity
from tidings.core.records import RecipientChange

LEASE_SECONDS = 2.0


class SlowMailbox(Mailbox):
    """Takes ``delay`` seconds to accept each message; counts deliveries by their id."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay
        self.counted: Counter[str] = Counter()
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await asyncio.sleep(self.delay)
        reply = await super().handle_DATA(server, session, envelope)
        with self._lock:
            self.counted[str(self.received[-1].message["X-Tidings-Delivery"])] += 1
        return reply

    def total(self) -> int:
        with self._lock:
            return sum(self.counted.values())


def prepare(url: str, count: int) -> None:
    """``count`` events of as many users, each with an email address."""

    async def go() -> None:
        store = PostgresStore(url)
        try:
            await store.migrate()
            for n in range(count):
                await store.update_recipient(
                    RecipientChange(user_id=f"u{n}", email=f"u{n}@example.com")
                )
            await store.enqueue(
                [
                    Event(event_id=f"e{n}", user_id=f"u{n}", kind="overload",
                          severity=Severity.WATCH, title="Overload", body="b")
                    for n in range(count)
                ]
            )  # fmt: skip
        finally:
            await store.close()

    asyncio.run(go())


def start_runner(
    url: str,
    log: Path,
    smtp_port: int,
    *,
    until_idle: bool,
    grace: float | None = None,
    sends: int | None = None,
    in_hand: int | None = None,
    lease: float = LEASE_SECONDS,
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "TIDINGS_LEASE_SECONDS": str(lease),
        "TIDINGS_POLL_INTERVAL": "0.2",
        "TIDINGS_DEFAULT_CHANNELS": "in_app,email",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp_port),
        "SMTP_TLS_MODE": "none",
        "SMTP_FROM_ADDRESS": "tidings@example.com",
    }
    if grace is not None:
        env["TIDINGS_SHUTDOWN_GRACE"] = str(grace)
    if sends is not None:
        env["TIDINGS_SENDS_PER_CHANNEL"] = str(sends)
    if in_hand is not None:
        env["TIDINGS_DELIVERIES_IN_HAND"] = str(in_hand)
    command = [sys.executable, "-m", "tidings.runner.cli", "--database", url, "run"]
    with log.open("ab") as sink:
        return subprocess.Popen(
            [*command, "--until-idle"] if until_idle else command,
            stdout=sink,
            stderr=sink,
            env=env,
        )


def wait_until(condition: Any, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"never {what} in {timeout} s"
        time.sleep(0.01)


def seconds_to_exit(runner: subprocess.Popen[bytes], log: Path, timeout: float = 120) -> float:
    started = time.monotonic()
    try:
        status = runner.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        runner.kill()
        raise AssertionError(f"runner did not exit:\n{log.read_text()[-3000:]}") from None
    assert status == 0, log.read_text()[-3000:]
    return time.monotonic() - started


def email_deliveries(url: str) -> dict[str, tuple[str, int]]:
    with psycopg.connect(url) as connection:
        rows = connection.execute(
            "SELECT id, status, attempts FROM deliveries WHERE channel = 'email'"
        ).fetchall()
    return {delivery_id: (status, attempts) for delivery_id, status, attempts in rows}


def two_runners_one_stopped(
    url: str,
    tmp_path: Path,
    start_smtp_server: StartServer,
    runners: list[subprocess.Popen[bytes]],
    *,
    delay: float,
    count: int,
    grace: float | None = None,
    other_sends: int = 4,
) -> tuple[SlowMailbox, subprocess.Popen[bytes], subprocess.Popen[bytes], Path]:
    """Runner A starts first and takes a hand of deliveries: four sends at once in a
    hand of twelve, so while the outbox lasts eight wait their turn. B (``--until-idle``)
    joins once A's first message has arrived."""  # fmt: skip
    prepare(url, count)
    mailbox = SlowMailbox(delay)
    port = start_smtp_server(mailbox)
    log = tmp_path / "runners.log"
    stopped = start_runner(url, log, port, until_idle=False, grace=grace, sends=4, in_hand=12)
    runners.append(stopped)
    wait_until(lambda: mailbox.received, "a first message arrived")
    other = start_runner(url, log, port, until_idle=True, sends=other_sends)
    runners.append(other)
    return mailbox, stopped, other, log


def test_a_stopped_runner_hands_back_what_it_has_not_sent_and_nothing_is_sent_twice(
    postgres_url: str,
    tmp_path: Path,
    start_smtp_server: StartServer,
    runners: list[subprocess.Popen[bytes]],
) -> None:
    mailbox, stopped, other, log = two_runners_one_stopped(
        postgres_url, tmp_path, start_smtp_server, runners, delay=0.5, count=80, grace=10
    )
    wait_until(lambda: mailbox.total() >= 20, "20 messages arrived")

    stopped.send_signal(signal.SIGTERM)
    assert seconds_to_exit(stopped, log) < 10  # the grace period
    seconds_to_exit(other, log)

    deliveries = email_deliveries(postgres_url)
    assert len(deliveries) == 80
    assert set(mailbox.counted) == set(deliveries)
    assert [n for n, count in mailbox.counted.items() if count > 1] == []
    assert set(deliveries.values()) == {("delivered", 1)}
    assert "handed back" in log.read_text()


@pytest.mark.parametrize("second_signal", [False, True])
def test_a_stopping_runner_exits_on_time_and_sooner_on_a_second_signal(
    postgres_url: str,
    tmp_path: Path,
    start_smtp_server: StartServer,
    runners: list[subprocess.Popen[bytes]],
    second_signal: bool,
) -> None:
    """Sends slower than the grace period: the stopping runner cuts them at its end and
    hands them back unattempted (or at once on a second signal); the other runner
    sends them, and every delivery is settled after one attempt."""
    mailbox, stopped, other, log = two_runners_one_stopped(
        postgres_url, tmp_path, start_smtp_server, runners, delay=3.0, count=40,
        grace=30 if second_signal else 1.0, other_sends=32,
    )  # fmt: skip

    stopped.send_signal(signal.SIGTERM)
    if second_signal:
        time.sleep(0.5)
        stopped.send_signal(signal.SIGINT)
    assert seconds_to_exit(stopped, log) < 2.5
    seconds_to_exit(other, log)

    deliveries = email_deliveries(postgres_url)
    assert set(deliveries.values()) == {("delivered", 1)}  # a cut send is no attempt
    assert set(mailbox.counted) == set(deliveries)

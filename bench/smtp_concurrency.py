"""Benchmark: deliveries through a slow SMTP server run concurrently, not one at a time.

An aiosmtpd server on 127.0.0.1 takes ``--delay`` seconds (default 0.1) to accept each
message. tidings dispatches ``--events`` notifications (default 1,000), one per
(user, kind), each with an email delivery, through the real Dispatcher, SQLite store
and EmailSender. In the same run, a one-at-a-time loop (the reference's shape: send,
wait, send) sends ``--sample`` messages to the same server; its rate gives the time
the whole batch would take that way.

    .venv/bin/python bench/smtp_concurrency.py [--events 1000] [--delay 0.1] [--sample 30]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tidings.adapters.channels.email import EmailSender
from tidings.adapters.channels.smtp_config import SmtpConfig
from tidings.adapters.memory import MemoryStore
from tidings.adapters.sqlite import SqliteStore
from tidings.core import Channel, Event, Preference, Severity
from tidings.core.records import DeliveryJob, DeliveryStatus, Notification, RecipientChange
from tidings.runner.clock import system_clock
from tidings.runner.dispatch import Dispatcher, DispatchOptions
from tidings.runner.dispatch.senders import default_senders

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
    return port


_SLOW_SERVER = """
import asyncio, sys
from aiosmtpd.controller import Controller

class SlowMailbox:
    async def handle_DATA(self, server, session, envelope):
        await asyncio.sleep(float(sys.argv[2]))
        return "250 OK"

controller = Controller(SlowMailbox(), hostname="127.0.0.1", port=int(sys.argv[1]))
controller.start()
print("ready", flush=True)
sys.stdin.read()
controller.stop()
"""


@contextmanager
def slow_smtp_server(delay: float) -> Iterator[int]:
    """An aiosmtpd server in its own process (its own GIL, like a real server) that
    waits ``delay`` seconds before accepting each message; yields its port."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-c", _SLOW_SERVER, str(port), str(delay)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        if server.stdout.readline().strip() != "ready":
            raise RuntimeError("the SMTP server did not start")
        yield port
    finally:
        server.communicate(input="", timeout=10)


def _config(port: int) -> SmtpConfig:
    return SmtpConfig(host=HOST, port=port, tls_mode="none", from_address="bench@tidings.test")


async def email_store(folder: Path, events: int) -> SqliteStore:
    """A fresh SQLite store holding ``events`` events, each one email to its own user."""
    store = SqliteStore(str(folder / "tidings.db"), clock=system_clock)
    await store.migrate()
    for n in range(events):
        await store.update_recipient(
            RecipientChange(user_id=f"user{n}", email=f"user{n}@example.test")
        )
        await store.set_preference(f"user{n}", "alert", Preference(("email",), Severity.INFO))
    await store.enqueue(
        [
            Event(event_id=f"e{n}", user_id=f"user{n}", kind="alert",
                  severity=Severity.WATCH, title="Alert", body="Something happened")
            for n in range(events)
        ]
    )  # fmt: skip
    return store


async def _tidings(folder: Path, port: int, events: int, sends: int) -> tuple[float, int]:
    store = await email_store(folder, events)
    email = EmailSender(_config(port), store, clock=system_clock)
    senders = {**default_senders(), Channel.EMAIL: email}
    options = DispatchOptions(sends_per_channel=sends, poll_interval=0.05)
    dispatcher = Dispatcher(store, senders, worker_id="bench", options=options, clock=system_clock)
    started = time.perf_counter()
    await dispatcher.run(until_idle=True)
    elapsed = time.perf_counter() - started
    await email.aclose()
    delivered = len(await store.deliveries(status=DeliveryStatus.DELIVERED, limit=events + 1))
    await store.close()
    return elapsed, delivered


async def _one_at_a_time(port: int, sample: int) -> float:
    """The reference's loop: each send waits for the one before it."""
    directory = MemoryStore(clock=system_clock)
    await directory.update_recipient(RecipientChange(user_id="u", email="u@example.test"))
    sender = EmailSender(_config(port), directory, clock=system_clock)
    notification = Notification(
        id="n", event_id="s", user_id="u", kind="alert", severity=Severity.WATCH,
        title="Alert", body="Something happened", payload_json=None,
        created_at=system_clock(), read_at=None, dispatched_via=(),
    )  # fmt: skip
    job = DeliveryJob(delivery_id="d", channel=Channel.EMAIL, attempts=0, notification=notification)
    started = time.perf_counter()
    for _ in range(sample):
        await sender.send(job)
    elapsed = time.perf_counter() - started
    await sender.aclose()
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--delay", type=float, default=0.1)
    parser.add_argument("--sample", type=int, default=30)
    parser.add_argument("--sends", type=int, default=DispatchOptions().sends_per_channel)
    args = parser.parse_args(argv)

    with slow_smtp_server(args.delay) as port, tempfile.TemporaryDirectory() as folder:
        elapsed, delivered = asyncio.run(_tidings(Path(folder), port, args.events, args.sends))
        loop_elapsed = asyncio.run(_one_at_a_time(port, args.sample))

    loop_total = loop_elapsed / args.sample * args.events
    print(f"{args.events} emails, one per (user, kind), server delay {args.delay * 1000:.0f} ms")
    print()
    print("| run | emails | seconds | emails/s |")
    print("| --- | ---: | ---: | ---: |")
    print(f"| tidings ({args.sends} in flight) | {delivered} | {elapsed:.2f} | "
          f"{delivered / elapsed:,.0f} |")  # fmt: skip
    print(f"| one at a time ({args.sample} sent, scaled to {args.events}) | {args.events} | "
          f"{loop_total:.2f} | {args.events / loop_total:,.1f} |")  # fmt: skip
    print(f"\nspeed-up: {loop_total / elapsed:.1f}x")
    if delivered != args.events:
        print(f"error: {delivered} of {args.events} delivered", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

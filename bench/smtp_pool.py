"""Benchmark: pooled SMTP connections against a new connection per message.

An aiosmtpd server on 127.0.0.1, in its own process, offers STARTTLS (a trustme
certificate) and requires it and AUTH, and takes ``--delay`` seconds (default 0.1) to
accept each message (``--spread 0.5``: from 50% to 150% of it; ``--rtt``: each reply
held that long, as a distant relay's). tidings dispatches ``--events`` notifications
(default 1,000), each with an email delivery, through the real Dispatcher, SQLite
store and the email sender that ``tidings run`` builds from ``SMTP_*``
(``channel_senders``: STARTTLS, ``SMTP_CA_FILE``, AUTH), ``--sends`` at once (default:
the runner's ``sends_per_channel``). Each run is one of:

- pooled: ``SMTP_POOL_SIZE`` connections at most (each of ``--pool-sizes``), each
  carrying up to ``SMTP_MAX_MESSAGES_PER_CONNECTION`` messages (the default, 100);
- per message: the behaviour before the pool, one connection (TCP, STARTTLS, AUTH,
  QUIT) per message, as many at once as sends: ``SMTP_MAX_MESSAGES_PER_CONNECTION=1``
  and ``SMTP_POOL_SIZE`` = ``--sends``.

The runs alternate, ``--rounds`` times, against the same server; the table gives each
run and the median per kind. The server counts the logins (one per connection). "other
load" is the CPU that processes other than the benchmark and its server used during a
run, in cores (from ``/proc/stat``): on a shared machine, a run with other load is slower.

    .venv/bin/python bench/smtp_pool.py [--events 1000] [--delay 0.1] [--spread 0]
                                        [--rtt 0] [--rounds 3] [--pool-sizes 32] [--sends 32]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import attrs
import trustme
from smtp_concurrency import email_store

from tidings.adapters.channels.smtp_config import POOL_SIZE
from tidings.core.records import DeliveryStatus
from tidings.runner.clock import system_clock
from tidings.runner.config import load_settings
from tidings.runner.dispatch import Dispatcher, DispatchOptions, channel_senders

HOST = "127.0.0.1"
USERNAME = "bench"
PASSWORD = "bench-pa55word"  # noqa: S105 (the throwaway server's)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
    return port


_SLOW_SERVER = """
import asyncio, logging, random, ssl, sys, time
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult

port, delay, spread, rtt, cert, key, user, password = sys.argv[1:9]
delay, spread, rtt = float(delay), float(spread), float(rtt)
logging.getLogger("mail.log").setLevel(logging.ERROR)  # not a line per login
logins = 0

def authenticate(server, session, envelope, mechanism, auth_data):
    global logins
    logins += 1
    valid = auth_data.login == user.encode() and auth_data.password == password.encode()
    return AuthResult(success=valid, handled=False)

class SlowMailbox:
    async def handle_DATA(self, server, session, envelope):
        await asyncio.sleep(delay * random.uniform(1 - spread, 1 + spread))
        return "250 OK"

class FarSMTP(SMTP):
    async def push(self, status):
        if rtt:
            await asyncio.sleep(rtt)  # each reply one round trip away
        await super().push(status)

class FarController(Controller):
    def factory(self):
        return FarSMTP(self.handler, **self.SMTP_kwargs)

context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
context.load_cert_chain(cert, key)
controller = FarController(
    SlowMailbox(), hostname="127.0.0.1", port=int(port), tls_context=context,
    require_starttls=True, authenticator=authenticate, auth_required=True,
)
controller.start()
print("ready", flush=True)
for line in sys.stdin:
    print(logins, time.process_time(), flush=True)
controller.stop()
"""


@attrs.frozen
class SlowServer:
    port: int
    ca_file: str
    process: subprocess.Popen[str]

    def tally(self) -> tuple[int, float]:
        """Logins so far (one per connection), and the CPU seconds the server used."""
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write("tally\n")
        self.process.stdin.flush()
        logins, cpu = self.process.stdout.readline().split()
        return int(logins), float(cpu)


@contextmanager
def slow_smtp_server(
    folder: Path, delay: float, spread: float = 0.0, rtt: float = 0.0
) -> Iterator[SlowServer]:
    """The server in its own process (its own GIL, like a real one), with a certificate
    from a throwaway CA whose PEM file is ``ca_file``. It accepts a message after
    ``delay`` seconds, give or take ``spread`` of it (uniformly), and holds each reply
    ``rtt`` seconds, as a relay that far away would seem to (the TCP and TLS handshakes
    themselves stay at loopback speed)."""
    ca = trustme.CA()
    certificate = ca.issue_cert(HOST)
    cert, key, ca_file = folder / "server.pem", folder / "server.key", folder / "ca.pem"
    for blob in certificate.cert_chain_pems:
        blob.write_to_path(str(cert), append=True)
    certificate.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(ca_file))
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", _SLOW_SERVER, str(port), str(delay), str(spread), str(rtt),
         str(cert), str(key), USERNAME, PASSWORD],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        if process.stdout.readline().strip() != "ready":
            raise RuntimeError("the SMTP server did not start")
        yield SlowServer(port, str(ca_file), process)
    finally:
        process.communicate(input="", timeout=10)


@attrs.frozen
class Run:
    kind: str
    pool_size: int
    seconds: float
    delivered: int
    connections: int
    cpu: float
    """CPU seconds tidings used."""
    server_cpu: float
    """CPU seconds the SMTP server used."""
    others: float | None
    """Cores busy with other processes meanwhile, on average (Linux only)."""


async def _dispatch(folder: Path, environ: dict[str, str], events: int, sends: int) -> Run:
    """Dispatch ``events`` email deliveries with the sender built from ``environ``."""
    store = await email_store(folder, events)
    settings = load_settings({}, environ=environ)
    options = DispatchOptions(sends_per_channel=sends, poll_interval=0.05)
    started = time.perf_counter()
    async with channel_senders(store, settings) as senders:
        dispatcher = Dispatcher(
            store, senders, worker_id="bench", options=options, clock=system_clock
        )
        await dispatcher.run(until_idle=True)
    elapsed = time.perf_counter() - started  # the pool's QUITs included
    delivered = len(await store.deliveries(status=DeliveryStatus.DELIVERED, limit=events + 1))
    await store.close()
    return Run("", 0, elapsed, delivered, 0, 0.0, 0.0, None)


def _run(server: SlowServer, kind: str, pool_size: int, args: argparse.Namespace) -> Run:
    environ = {
        "SMTP_HOST": HOST,
        "SMTP_PORT": str(server.port),
        "SMTP_TLS_MODE": "starttls",
        "SMTP_CA_FILE": server.ca_file,
        "SMTP_USER": USERNAME,
        "SMTP_PASSWORD": PASSWORD,
        "SMTP_FROM_ADDRESS": "bench@tidings.test",
        "SMTP_POOL_SIZE": str(pool_size),
        **({"SMTP_MAX_MESSAGES_PER_CONNECTION": "1"} if kind == "per message" else {}),
    }
    logins, server_cpu = server.tally()
    busy, cpu = _machine_busy(), time.process_time()
    with tempfile.TemporaryDirectory() as folder:
        run = asyncio.run(_dispatch(Path(folder), environ, args.events, args.sends))
    cpu = time.process_time() - cpu
    busy = None if busy is None else (_machine_busy() or 0.0) - busy
    logins_after, server_cpu_after = server.tally()
    server_cpu = server_cpu_after - server_cpu
    ours = cpu + server_cpu
    others = None if busy is None else max(0.0, busy - ours) / run.seconds
    return attrs.evolve(
        run,
        kind=kind,
        pool_size=pool_size,
        connections=logins_after - logins,
        cpu=cpu,
        server_cpu=server_cpu,
        others=others,
    )


def _machine_busy() -> float | None:
    """CPU seconds all processes have used since boot (``/proc/stat``); None elsewhere."""
    try:
        ticks = [int(field) for field in Path("/proc/stat").read_text().split()[1:9]]
    except (OSError, ValueError):
        return None
    idle = ticks[3] + ticks[4]  # idle, iowait
    return (sum(ticks) - idle) / os.sysconf("SC_CLK_TCK")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--delay", type=float, default=0.1)
    parser.add_argument("--spread", type=float, default=0.0)
    parser.add_argument("--rtt", type=float, default=0.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pool-sizes", default=str(POOL_SIZE))
    parser.add_argument("--sends", type=int, default=DispatchOptions().sends_per_channel)
    args = parser.parse_args(argv)
    pool_sizes = [int(size) for size in args.pool_sizes.split(",")]

    runs: list[Run] = []
    with (
        tempfile.TemporaryDirectory() as folder,
        slow_smtp_server(Path(folder), args.delay, args.spread, args.rtt) as server,
    ):
        for _ in range(args.rounds):
            for size in pool_sizes:
                runs.append(_run(server, "pooled", size, args))
            runs.append(_run(server, "per message", args.sends, args))

    spread = f" ± {args.spread:.0%}" if args.spread else ""
    rtt = f", {args.rtt * 1000:g} ms per reply" if args.rtt else ""
    print(f"{args.events} emails, STARTTLS and AUTH, server delay {args.delay * 1000:.0f} ms"
          f"{spread}{rtt}, {args.sends} sends at once, {args.rounds} rounds")  # fmt: skip
    print()
    print("| run | connections at most | connections opened | seconds | emails/s | "
          "tidings CPU (s) | server CPU (s) | other load (cores) |")  # fmt: skip
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for run in runs:
        others = "?" if run.others is None else f"{run.others:.2f}"
        print(f"| {run.kind} | {run.pool_size} | {run.connections} | {run.seconds:.2f} | "
              f"{run.delivered / run.seconds:,.0f} | {run.cpu:.2f} | {run.server_cpu:.2f} | "
              f"{others} |")  # fmt: skip
    per_message = statistics.median(r.seconds for r in runs if r.kind == "per message")
    print()
    print(f"median per message: {per_message:.2f} s")
    for size in pool_sizes:
        pooled = statistics.median(
            r.seconds for r in runs if r.kind == "pooled" and r.pool_size == size
        )
        print(f"median pooled ({size} connections): {pooled:.2f} s, "
              f"{per_message / pooled:.1f}x faster than per message")  # fmt: skip
    short = [r for r in runs if r.delivered != args.events]
    for run in short:
        print(f"error: {run.kind} ({run.pool_size}): {run.delivered} of {args.events} delivered",
              file=sys.stderr)  # fmt: skip
    return 1 if short else 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: a runner's peak memory does not grow with the length of its queue.

For each size (default 100,000 and 1,000,000 events), a fresh SQLite database is
filled in chunks by one process, then drained by another (the real Dispatcher and
SqliteStore, in-app channel only), which reports its peak resident memory. The
intake is bounded and history is read in pages, so both peaks should be about equal.

    .venv/bin/python bench/memory.py [--sizes 100000 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tidings.adapters.sqlite import SqliteStore
from tidings.core import Event, Severity
from tidings.runner.clock import system_clock
from tidings.runner.dispatch.dispatcher import Dispatcher
from tidings.runner.dispatch.senders import default_senders

CHUNK = 10_000
KEYS = 5_000


async def _fill(path: str, size: int) -> None:
    store = SqliteStore(path, clock=system_clock)
    await store.migrate()
    for start in range(0, size, CHUNK):
        await store.enqueue(
            [
                Event(event_id=f"e{n}", user_id=f"user{n % KEYS}", kind="alert",
                      severity=Severity.WATCH, title="Alert", body="Something happened")
                for n in range(start, min(start + CHUNK, size))
            ]
        )  # fmt: skip
    await store.close()


async def _drain(path: str) -> float:
    store = SqliteStore(path, clock=system_clock)
    dispatcher = Dispatcher(store, default_senders(), worker_id="bench", clock=system_clock)
    started = time.perf_counter()
    await dispatcher.run(until_idle=True)
    await store.close()
    return time.perf_counter() - started


def _child(role: str, path: str, size: int) -> None:
    if role == "fill":
        asyncio.run(_fill(path, size))
        return
    seconds = asyncio.run(_drain(path))
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"{seconds:.1f} {peak_kib}")


def _run(role: str, path: Path, size: int) -> str:
    result = subprocess.run(
        [sys.executable, __file__, "--child", role, str(path), str(size)],
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument(
        "--child", nargs=3, metavar=("ROLE", "PATH", "SIZE"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.child:
        role, path, size = args.child
        _child(role, path, int(size))
        return 0

    print("| queued events | drain seconds | events/s | peak memory of the drain |")
    print("| ---: | ---: | ---: | ---: |")
    peaks = []
    for size in args.sizes:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "tidings.db"
            _run("fill", path, size)
            seconds, peak_kib = _run("drain", path, size).split()
        peaks.append(int(peak_kib))
        print(f"| {size:,} | {seconds} | {size / float(seconds):,.0f} | "
              f"{int(peak_kib) / 1024:.0f} MiB |")  # fmt: skip
    growth = peaks[-1] / peaks[0]
    print(f"\npeak memory, largest queue / smallest: {growth:.2f}x (flat means about 1)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

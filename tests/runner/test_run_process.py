"""A long-running ``tidings run`` process as an operator sees it: metrics and health on a
port while it works, JSON log lines, and a clean exit on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tidings.runner.cli import main


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def wait_for(url: str, deadline: float) -> httpx.Response:
    while True:
        try:
            return httpx.get(url, timeout=1)
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_a_running_process_serves_metrics_and_health_then_stops_on_sigterm(
    tmp_path: Path,
) -> None:
    database = f"sqlite:///{tmp_path / 'tidings.db'}"
    events = tmp_path / "events.jsonl"
    events.write_text(
        "".join(
            json.dumps({"user_id": f"u{n % 3}", "kind": "overload", "severity": "watch",
                        "title": "Overload", "body": "b"}) + "\n"
            for n in range(9)
        )
    )  # fmt: skip
    assert main(["--database", database, "migrate"]) == 0
    assert main(["--database", database, "enqueue", str(events)]) == 0
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tidings.runner.cli", "--database", database, "--json", "run",
         "--metrics-port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TIDINGS_POLL_INTERVAL": "0.05"},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        health = wait_for(f"http://127.0.0.1:{port}/healthz", deadline)
        assert health.status_code == 200
        assert health.json() == {"status": "ok", "database": "ok", "workers": "ok"}
        while "tidings_events_notified_total 3.0" not in (
            scrape := httpx.get(f"http://127.0.0.1:{port}/metrics").text
        ):
            assert time.monotonic() < deadline, scrape
            time.sleep(0.1)
        assert 'tidings_events_skipped_total{reason="cooldown"} 6.0' in scrape
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)

    assert process.returncode == 0, err
    assert json.loads(out) == {
        "notified": 3,
        "skipped": {"cooldown": 6},
        "rejected": 0,
        "deliveries": {"in_app:delivered": 3},
    }
    lines = [json.loads(line) for line in err.splitlines()]
    assert sum(line["message"] == "decision" for line in lines) == 9
    assert any(line["message"].startswith("runner ") and "stopped" in line["message"]
               for line in lines)  # fmt: skip

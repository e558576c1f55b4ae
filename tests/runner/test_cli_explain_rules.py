"""``tidings explain``'s dry run decides with the rules of issue #13 as the settings
switch them, and shows the inputs they compare: the last notification's severity and
the user's quiet hours."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from tests.runner.harness import Tidings


def test_the_dry_run_escalates_and_shows_what_it_compared(
    tidings: Tidings, monkeypatch: pytest.MonkeyPatch
) -> None:
    send = ("send", "--user", "ana", "--kind", "deploy_failed", "--title", "t", "--body", "b")
    assert tidings(*send, "--severity", "watch")[0] == 0
    assert tidings("run", "--until-idle")[0] == 0
    dry = ("explain", "--user", "ana", "--kind", "deploy_failed", "--severity", "critical")

    status, out, _ = tidings("--json", *dry)
    assert status == 0
    assert json.loads(out)["decision"]["reason"] == "cooldown"

    monkeypatch.setenv("TIDINGS_ESCALATE_PAST_COOLDOWN", "true")
    status, out, _ = tidings("--json", *dry)
    found = json.loads(out)
    assert found["decision"]["escalated_over"] == "watch"
    assert found["inputs"]["last_severity"] == "watch"
    assert "critical rises above the watch notified at" in found["explanation"]
    status, out, _ = tidings(*dry)
    assert "last notified: " in out
    assert "(watch); quiet hours: none" in out


def test_the_dry_run_shows_the_users_quiet_hours(tidings: Tidings) -> None:
    # A window around the real clock (the CLI reads it): from an hour ago to in two.
    now = datetime.now(UTC)
    starts, ends = f"{now - timedelta(hours=1):%H:%M}", f"{now + timedelta(hours=2):%H:%M}"
    quiet = ("--from", starts, "--to", ends, "--timezone", "UTC")
    assert tidings("prefs", "quiet-hours", "ana", *quiet)[0] == 0
    assert tidings("prefs", "set", "ana", "deploy_failed", "--channels", "in_app,email")[0] == 0
    dry = ("explain", "--user", "ana", "--kind", "deploy_failed", "--severity", "watch")
    status, out, _ = tidings("--json", *dry)
    assert status == 0
    found = json.loads(out)
    assert found["inputs"]["quiet_hours"] == f"{starts} to {ends} UTC"
    assert found["explanation"].endswith(f"; email held until {ends} UTC (quiet hours)")

"""``tidings deliveries`` says which pending deliveries quiet hours hold, and until when,
end to end on a real SQLite file: the note the decision recorded for an event's
delivery, and for a digest's (whose decision is no event's) the user's quiet hours."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from tests.runner.harness import Tidings
from tidings.runner.api import AsyncTidings
from tidings.testing import FakeClock

BERLIN = ZoneInfo("Europe/Berlin")


def _night_around_now() -> tuple[str, str]:
    """Quiet hours (from, to) in Berlin that hold now: from an hour ago to two hours on.
    The CLI reads the real clock, so the window is built around it."""
    now = datetime.now(BERLIN)
    return f"{now - timedelta(hours=1):%H:%M}", f"{now + timedelta(hours=2):%H:%M}"


def _held_text(ends: str) -> str:
    return f"held until {ends} Europe/Berlin (quiet hours)"


def test_a_delivery_held_by_quiet_hours_says_so_in_the_table_and_in_json(
    tidings: Tidings,
) -> None:
    starts, ends = _night_around_now()
    assert tidings(
        "prefs", "quiet-hours", "u42", "--from", starts, "--to", ends, "--timezone", "Europe/Berlin"
    )[0] == 0  # fmt: skip
    assert tidings("recipients", "set", "u42", "--email", "u42@example.com")[0] == 0
    for kind in ("overload", "deploy_failed"):
        assert tidings("prefs", "set", "u42", kind, "--channels", "in_app,email")[0] == 0
    for event_id, kind, severity in (("night", "overload", "watch"),
                                     ("urgent", "deploy_failed", "critical")):  # fmt: skip
        status, _, err = tidings(
            "send", "--user", "u42", "--kind", kind, "--severity", severity,
            "--title", "Title", "--body", "Body", "--event-id", event_id,
        )  # fmt: skip
        assert status == 0, err
    assert tidings("run", "--until-idle")[0] == 0

    status, out, _ = tidings("--json", "deliveries")
    assert status == 0
    emails = {d["kind"]: d for d in json.loads(out) if d["channel"] == "email"}
    held, urgent = emails["overload"], emails["deploy_failed"]
    assert (held["status"], held["attempts"], held["last_error"]) == ("pending", 0, None)
    assert held["held"] == _held_text(ends)
    due = datetime.fromisoformat(held["next_attempt_at"]).astimezone(BERLIN)
    assert f"{due:%H:%M}" == ends
    # A critical event is not held (quiet_hours_hold_critical is off): its email went at
    # once and was skipped, with no note of a hold.
    assert (urgent["status"], urgent["last_error"], urgent["held"]) == (
        "skipped",
        "smtp not configured",
        None,
    )
    in_app = [d for d in json.loads(out) if d["channel"] == "in_app"]
    assert [d["held"] for d in in_app] == [None, None]

    status, out, _ = tidings("deliveries", "--status", "pending")
    assert status == 0
    [line] = out.splitlines()[2:]
    assert line.split()[1:5] == ["u42", "overload", "email", "pending"]
    assert line.endswith(_held_text(ends))
    assert f"; email {_held_text(ends)}" in tidings("explain", "night")[1]


def test_a_digest_held_by_quiet_hours_says_so_too(tidings: Tidings, database: Path) -> None:
    starts, ends = _night_around_now()
    clock = FakeClock(datetime.now(BERLIN) - timedelta(minutes=10))

    async def digest_decided_at_night() -> None:
        async with AsyncTidings.open(
            f"sqlite:///{database}", clock=clock, cooldown_seconds=60, digest_after_cooldown=True
        ) as api:
            await api.set_quiet_hours("u42", starts=starts, ends=ends, timezone="Europe/Berlin")
            await api.set_recipient("u42", email="u42@example.com")
            await api.set_preference("u42", "overload", ["in_app", "email"], "info")
            for number in range(3):
                await api.send(
                    event_id=f"e{number}", user_id="u42", kind="overload", severity="watch",
                    title=f"Overload {number}", body="b",
                )  # fmt: skip
            await api.run_until_idle()
            clock.advance(timedelta(minutes=2))  # past the cooldown, still at night
            await api.run_until_idle()

    asyncio.run(digest_decided_at_night())

    status, out, _ = tidings("--json", "deliveries", "--status", "pending")
    assert status == 0
    found = json.loads(out)
    assert len(found) == 2  # the first event's email and the digest's, both held
    assert [d["held"] for d in found] == [_held_text(ends)] * 2
    status, out, _ = tidings("--json", "inbox", "u42")
    assert [n["title"] for n in json.loads(out)["notifications"]] == [
        "2 more overload events",
        "Overload 0",
    ]

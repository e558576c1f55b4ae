"""``tidings demo`` shows the three rules a policy and a user can switch on, each in one
sentence: an escalation past the cooldown, an email held by quiet hours, a digest of what
the cooldown held back; and the tour before them still runs as it did."""

from __future__ import annotations

import pytest

from tidings.runner.cli import main


@pytest.fixture
def tour(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The demo's output, lines; it ran without a word on stderr."""
    monkeypatch.setenv("SMTP_HOST", "smtp.invalid")  # the demo leaves email unconfigured
    monkeypatch.setenv("SMTP_FROM_ADDRESS", "tidings@example.com")
    monkeypatch.setenv("TIDINGS_COOLDOWN_SECONDS", "60")  # and keeps its own policy
    assert main(["demo"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert "Traceback" not in captured.out
    return captured.out.splitlines()


def _line(lines: list[str], start: str) -> str:
    [found] = [line for line in lines if line.lstrip().startswith(start)]
    return found


def test_each_rule_is_explained_in_one_sentence(tour: list[str]) -> None:
    escalation = _line(tour, "Escalation: ")
    assert "critical rises above the watch notified at " in escalation
    assert escalation.endswith(", past its cooldown, channels from the default policy.")

    quiet = _line(tour, "Quiet hours: ")
    assert quiet.endswith("; email held until 07:00 Europe/Berlin (quiet hours).")

    digest = _line(tour, "Digest: ")
    assert "held back evt-2 and evt-4" in digest
    assert '("...; held for the digest when it ends")' in digest
    assert '"2 more burnout_overload events"' in digest
    assert "recorded in the digests table" in digest


def test_the_clock_jumps_and_the_tour_shows_each_step(tour: list[str]) -> None:
    assert any(line.startswith("The demo's clock starts at ") for line in tour)
    assert _line(tour, "7. ").startswith("7. The demo's clock jumps 24 hours")

    # Before the jump the email waits, pending; after it, it went out (skipped: no SMTP)
    # and the digest's own email waits for the next night's end.
    held = [line.split() for line in tour if line.endswith("(quiet hours)") and "pending" in line]
    assert [words[:4] for words in held] == [["ana", "burnout_overload", "email", "pending"]] * 2
    assert any(line.split()[:4] == ["ana", "burnout_overload", "email", "skipped"] for line in tour)

    assert "8. ana's inbox (3 unread)" in tour
    assert any("2 more burnout_overload events" in line and "watch" in line for line in tour)
    assert sum("UTC  watch  Overload is" in line for line in tour) == 2


def test_the_tour_before_the_new_rules_is_kept(tour: list[str]) -> None:
    text = "\n".join(tour)
    assert "rejected at the door" in text
    assert "enqueued 9 events" in text
    assert "skipped: inside the cooldown for burnout_overload" in text
    assert "skipped: severity info is below the minimum watch" in text
    assert "skipped: the per-kind preference for weekly_digest enables no channels" in text
    assert "(ignored unknown channels: pager)" in text
    assert "6. ana's inbox (2 unread)" in text

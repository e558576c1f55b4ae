"""The intake pentest's findings, one test each, through the real command line.

Each hostile line sits between two good ones: the command must reject that line alone,
by number and reason, store both good ones, exit 2, and never raise. Before the fix each
of these ended in a traceback (or silently kept the last of two repeated keys).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.runner.harness import Tidings, event_bytes
from tidings.runner.cli import main
from tidings.runner.config import DEFAULT_MAX_LINE_BYTES

Enqueue = Callable[[bytes], tuple[int, str]]
SURROGATE = "must not contain lone surrogates (U+D800 to U+DFFF, not Unicode text)"


def stored(database: Path) -> list[str]:
    with contextlib.closing(sqlite3.connect(database)) as connection:
        return [row[0] for row in connection.execute("SELECT event_id FROM events ORDER BY seq")]


@pytest.fixture
def enqueue_between_good_lines(tidings: Tidings, tmp_path: Path, database: Path) -> Enqueue:
    """Enqueue ``before``, the hostile line, ``after``; check that exactly the two good
    lines were stored and the command exited 2; return the stderr and stored ids."""

    def run(hostile: bytes) -> tuple[int, str]:
        source = tmp_path / "events.jsonl"
        source.write_bytes(
            event_bytes(event_id="before") + b"\n" + hostile + b"\n" + event_bytes(event_id="after")
        )
        status, out, err = tidings("--json", "enqueue", str(source))
        counts = json.loads(out)
        assert (counts["enqueued"] + counts["duplicates"], counts["rejected"]) == (2, 1)
        assert stored(database) == ["before", "after"]
        assert err.count("\n") == 1, err
        return status, err

    return run


def test_a_deeply_nested_line_is_rejected_alone(enqueue_between_good_lines: Enqueue) -> None:
    deep = event_bytes()[:-1] + b', "payload": {"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}"
    assert enqueue_between_good_lines(deep) == (
        2,
        "rejected line 2: not valid JSON: nested deeper than 65 levels\n",
    )


def test_a_5000_digit_number_is_rejected_alone(enqueue_between_good_lines: Enqueue) -> None:
    huge = event_bytes()[:-1] + b', "payload": {"n": ' + b"7" * 5000 + b"}}"
    assert enqueue_between_good_lines(huge) == (
        2,
        "rejected line 2: not valid JSON: a number has too many digits\n",
    )


def test_invalid_utf8_is_rejected_alone(enqueue_between_good_lines: Enqueue) -> None:
    latin1 = event_bytes(title="Caf\xe9 closed").replace(b"\\u00e9", b"\xe9")
    position = latin1.index(0xE9) + 1
    assert enqueue_between_good_lines(latin1) == (
        2,
        f"rejected line 2: not valid UTF-8: invalid continuation byte at byte {position}\n",
    )


def test_a_lone_surrogate_escape_in_the_title_is_rejected_alone(
    enqueue_between_good_lines: Enqueue,
) -> None:
    line = event_bytes(title="Overload \ud800")
    assert b'"Overload \\ud800"' in line  # as JSON escapes it
    assert enqueue_between_good_lines(line) == (2, f"rejected line 2: title: {SURROGATE}\n")


def test_a_lone_surrogate_escape_in_the_payload_is_rejected_alone(
    enqueue_between_good_lines: Enqueue,
) -> None:
    line = event_bytes(payload={"hours": [52, {"note": "\udc00"}]})
    assert enqueue_between_good_lines(line) == (2, f"rejected line 2: payload: {SURROGATE}\n")
    line = event_bytes(payload_json=json.dumps({"note": "\udc00"}), event_id="x")
    assert enqueue_between_good_lines(line)[1] == f"rejected line 2: payload_json: {SURROGATE}\n"


def test_a_repeated_key_is_rejected_and_named(enqueue_between_good_lines: Enqueue) -> None:
    line = event_bytes()[:-1] + b', "user_id": "bob"}'
    assert enqueue_between_good_lines(line) == (
        2,
        "rejected line 2: not valid JSON: duplicate key 'user_id'\n",
    )


def test_a_repeated_key_in_the_payload_is_rejected_and_named(
    enqueue_between_good_lines: Enqueue,
) -> None:
    line = event_bytes(payload={"hours": 52})[:-2] + b', "hours": 0}}'
    assert enqueue_between_good_lines(line) == (
        2,
        "rejected line 2: not valid JSON: duplicate key 'hours'\n",
    )


def test_nan_and_infinity_are_rejected(enqueue_between_good_lines: Enqueue) -> None:
    for literal in ("NaN", "Infinity", "-Infinity"):
        line = event_bytes()[:-1] + f', "payload": {{"ratio": {literal}}}}}'.encode()
        assert enqueue_between_good_lines(line) == (
            2,
            f"rejected line 2: not valid JSON: {literal} is not a JSON number\n",
        )
        # Inside payload text, which used to be stored as given.
        line = event_bytes(payload_json=f'{{"ratio": {literal}}}')
        assert enqueue_between_good_lines(line) == (
            2,
            f"rejected line 2: payload_json: is not valid JSON: {literal} is not a JSON number\n",
        )


def test_an_oversize_line_is_skipped_and_the_lines_around_it_are_kept(
    enqueue_between_good_lines: Enqueue,
) -> None:
    size = 3 * DEFAULT_MAX_LINE_BYTES
    line = event_bytes(body="x" * size)
    assert enqueue_between_good_lines(line) == (
        2,
        f"rejected line 2: longer than {DEFAULT_MAX_LINE_BYTES} bytes (max_line_bytes): "
        f"{len(line)} bytes\n",
    )


def test_the_line_limit_is_a_setting(
    enqueue_between_good_lines: Enqueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIDINGS_MAX_LINE_BYTES", "200")
    line = event_bytes(body="x" * 200)
    assert enqueue_between_good_lines(line) == (
        2,
        f"rejected line 2: longer than 200 bytes (max_line_bytes): {len(line)} bytes\n",
    )


def test_a_bad_line_limit_is_named(tidings: Tidings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIDINGS_MAX_LINE_BYTES", "1MB")
    status, _, err = tidings("enqueue", "-")
    assert status == 2
    assert "max_line_bytes must be a whole number, got '1MB'" in err


def test_send_rejects_a_title_that_is_not_utf8_on_the_command_line(
    tmp_path: Path, database: Path
) -> None:
    """Undecodable argv bytes reach Python as lone surrogates ('\\udcff')."""
    script = Path(sys.executable).with_name("tidings")
    argv: list[str | bytes] = [script.name, "--database", f"sqlite:///{database}", "send"]
    argv += ["--user", "ana", "--kind", "k", "--severity", "info", "--body", "b"]
    result = subprocess.run(
        [*argv, "--title", b"Caf\xff"],
        executable=script,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == "rejected: title: is not valid UTF-8 text\n"
    assert not database.exists()  # refused before any store was opened


def test_undecodable_arguments_are_refused_and_each_named(tidings: Tidings) -> None:
    status, _, err = tidings(
        "send", "--user", "a\udcff", "--kind", "k\udcff", "--severity", "info",
        "--title", "t\udcff", "--body", "b\udcff", "--payload", '{"a": "\udcff"}',
        "--event-id", "e\udcff",
    )  # fmt: skip
    assert status == 2
    assert sorted(err.splitlines()) == sorted(
        f"rejected: {field}: is not valid UTF-8 text"
        for field in ("event_id", "user", "kind", "title", "body", "payload")
    )


def test_send_rejects_a_payload_with_a_repeated_key(tidings: Tidings, database: Path) -> None:
    status, _, err = tidings(
        "send", "--user", "ana", "--kind", "k", "--severity", "info", "--title", "t",
        "--body", "b", "--payload", '{"build": 812, "build": 813}',
    )  # fmt: skip
    assert (status, err) == (
        2,
        "rejected: payload_json: is not valid JSON: duplicate key 'build'\n",
    )
    assert stored(database) == []


def test_a_producers_row_with_a_surrogate_payload_is_rejected_and_the_inbox_still_reads(
    tidings: Tidings, database: Path
) -> None:
    """A row inserted with SQL is validated when claimed: its payload's escaped lone
    surrogate ends it rejected, so it never becomes a notification that breaks
    ``inbox --json`` on every call."""
    assert tidings("migrate")[0] == 0
    with contextlib.closing(sqlite3.connect(database)) as connection, connection:
        connection.executemany(
            "INSERT INTO events (event_id, user_id, kind, severity, title, body, payload_json,"
            " enqueued_at) VALUES (?, 'ana', ?, 'critical', 'Overload', 'b', ?, ?)",
            [
                ("hostile", "overload", '{"note": "\\ud800"}', datetime.now(UTC).isoformat()),
                ("repeated", "other", '{"a": 1, "a": 2}', datetime.now(UTC).isoformat()),
                ("fine", "deploy", '{"note": "\\ud83d\\ude00"}', datetime.now(UTC).isoformat()),
            ],
        )
    status, out, _ = tidings("--json", "run", "--until-idle")
    assert (status, json.loads(out)["notified"], json.loads(out)["rejected"]) == (0, 1, 2)
    status, out, _ = tidings("--json", "explain", "hostile")
    assert status == 0
    assert SURROGATE in out
    status, out, _ = tidings("--json", "inbox", "ana")
    assert status == 0
    [notification] = json.loads(out)["notifications"]
    assert notification["payload"] == {"note": "\U0001f600"}


def test_postgresql_keeps_every_good_line_of_a_file_with_a_bad_one(
    postgres_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """On PostgreSQL a surrogate used to fail the second batch of 1,000 on the way into
    the database, after the first was stored: 1,000 of 1,599 good lines were kept."""
    lines = [event_bytes(event_id=f"good-{n}") for n in range(1, 1601)]
    lines[1199] = event_bytes(event_id="hostile", title="\ud800")
    source = tmp_path / "events.jsonl"
    source.write_bytes(b"\n".join(lines) + b"\n")
    assert main(["--database", postgres_url, "migrate"]) == 0
    capsys.readouterr()
    status = main(["--database", postgres_url, "--json", "enqueue", str(source)])
    captured = capsys.readouterr()
    assert status == 2
    assert json.loads(captured.out) == {"enqueued": 1599, "duplicates": 0, "rejected": 1}
    assert captured.err == f"rejected line 1200: title: {SURROGATE}\n"


@pytest.mark.parametrize(
    "argv",
    [
        ("recipients", "set", "u\udc85", "--email", "u@example.com"),
        ("prefs", "set", "u\udc85", "k", "--channels", "in_app"),
        ("inbox", "u\udc85"),
        ("explain", "--user", "u", "--kind", "k\udc85", "--severity", "info"),
    ],
)
def test_no_command_stores_or_prints_undecodable_arguments(
    tidings: Tidings, argv: tuple[str, ...]
) -> None:
    status, out, err = tidings(*argv)
    assert (status, out) == (2, "")
    assert err.startswith("rejected: ")
    assert err.endswith(": is not valid UTF-8 text\n")

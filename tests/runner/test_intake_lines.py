"""Reading JSON lines: whatever bytes a line holds, it costs only itself.

Arbitrary byte lines, hostile ones (deep nesting, huge numbers, bad UTF-8, surrogates,
repeated keys, NaN, an oversize line) and good events are mixed; the line reader, and
the real ``tidings enqueue`` on SQLite, must keep exactly the good events, reject every
other non-blank line by its number, and never raise. An oversize line is skipped in
bounded memory.
"""

from __future__ import annotations

import contextlib
import io
import json
import sqlite3
import tempfile
import tracemalloc
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.core.test_validation import valid_events
from tests.runner.harness import event_bytes
from tidings.core import Event
from tidings.runner.cli import main
from tidings.runner.cli.event_lines import (
    OversizeLine,
    RejectedLine,
    read_event_lines,
    read_lines,
)
from tidings.runner.config import DEFAULT_MAX_LINE_BYTES

LIMIT = 4096


def good_line(index: int, fields: dict[str, Any], ascii_only: bool) -> bytes:
    """A valid event as a JSON line, its id naming its line."""
    return json.dumps({**fields, "event_id": f"good-{index}"}, ensure_ascii=ascii_only).encode()


HOSTILE = (
    event_bytes(payload={"deep": 1})[:-2] + b"[" * 100_000 + b"]" * 100_000 + b"}}",
    b"[" * 100_000,
    event_bytes()[:-1] + b', "n": ' + b"1" * 5000 + b"}",
    event_bytes(title="caf\xe9").replace(b"\\u00e9", b"\xe9"),  # Latin-1, not UTF-8
    b"\xff\xfe{\x00}",
    b"\xed\xa0\x80",  # a surrogate encoded as UTF-8: invalid
    event_bytes(title="\ud800"),
    event_bytes(payload={"a": ["\udfff"]}),
    event_bytes(payload_json='{"a": "\\ud800"}'),
    event_bytes()[:-1] + b', "user_id": "bob"}',
    event_bytes(payload={"a": 1})[:-2] + b', "a": 2}}',
    event_bytes(payload={"a": 1})[:-2] + b', "b": NaN}}',
    event_bytes(payload={"a": 1})[:-2] + b', "b": -Infinity}}',
    event_bytes(payload={"a": 1})[:-2] + b', "b": 1e999}}',
    event_bytes(body="x" * LIMIT),
    b"x" * (LIMIT + 1),
    b"\xef\xbb\xbf" + event_bytes(),  # a byte-order mark
    b"[1, 2]",
    b"{not json",
)

# Valid events that fit the small limit these tests read with, however escaped.
small_events = valid_events.filter(lambda fields: len(json.dumps(fields)) < LIMIT - 100)
# A line: ("good", fields, ascii) or ("other", bytes).
lines_strategy = st.lists(
    st.one_of(
        st.tuples(st.just("good"), small_events, st.booleans()),
        st.tuples(st.just("other"), st.binary(max_size=80).map(lambda b: b.replace(b"\n", b""))),
        st.tuples(st.just("other"), st.sampled_from(HOSTILE)),
    ),
    max_size=12,
)


def file_bytes(lines: list[tuple[Any, ...]], ending: bytes, final: bool) -> tuple[bytes, list[int]]:
    """The file's bytes, and the numbers of its good lines."""
    raw: list[bytes] = []
    good: list[int] = []
    for number, line in enumerate(lines, start=1):
        if line[0] == "good":
            raw.append(good_line(number, line[1], line[2]))
            good.append(number)
        else:
            raw.append(line[1])
    return ending.join(raw) + (ending if final and raw else b""), good


def bad_numbers(lines: list[tuple[Any, ...]]) -> list[int]:
    """The lines to reject: every one not good and not blank."""
    return [n for n, line in enumerate(lines, start=1) if line[0] != "good" and line[1].strip()]


endings = st.sampled_from([b"\n", b"\r\n"])


@given(lines=lines_strategy, ending=endings, final=st.booleans())
def test_the_line_reader_keeps_exactly_the_good_lines(
    lines: list[tuple[Any, ...]], ending: bytes, final: bool
) -> None:
    data, good = file_bytes(lines, ending, final)
    items = list(read_event_lines(read_lines(io.BytesIO(data), LIMIT), lambda: "assigned"))
    events = [item for item in items if isinstance(item, Event)]
    rejected = [item for item in items if isinstance(item, RejectedLine)]
    good_ids = [f"good-{n}" for n in good]
    assert [event.event_id for event in events] == good_ids
    assert [item.line for item in rejected] == bad_numbers(lines)
    assert all(item.reason for item in rejected)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=lines_strategy, ending=endings, final=st.booleans())
def test_tidings_enqueue_stores_exactly_the_good_lines(
    lines: list[tuple[Any, ...]], ending: bytes, final: bool
) -> None:
    data, good = file_bytes(lines, ending, final)
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder, "events.jsonl")
        source.write_bytes(data)
        config = Path(folder, "tidings.toml")
        config.write_text(f"max_line_bytes = {LIMIT}\n")
        database = Path(folder, "tidings.db")
        assert main(["--database", f"sqlite:///{database}", "migrate"]) == 0
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = main(
                [
                    *("--database", f"sqlite:///{database}", "--config", str(config)),
                    *("--json", "enqueue", str(source)),
                ]
            )
        with contextlib.closing(sqlite3.connect(database)) as connection:
            stored = [row[0] for row in connection.execute("SELECT event_id FROM events")]
    bad = bad_numbers(lines)
    assert status == (2 if bad else 0), err.getvalue()
    assert sorted(stored) == sorted(f"good-{n}" for n in good)
    assert json.loads(out.getvalue()) == {
        "enqueued": len(good),
        "duplicates": 0,
        "rejected": len(bad),
    }
    numbers = [int(line.split()[2].rstrip(":")) for line in err.getvalue().splitlines()]
    assert numbers == bad
    assert "Traceback" not in err.getvalue()


def test_read_lines_limits_each_line_not_counting_its_newline() -> None:
    data = (
        b"a" * 10
        + b"\n"
        + b"b" * 11
        + b"\n"
        + b"c" * 10
        + b"\r\n"
        + b"d" * 25
        + b"\n\n"
        + b"e" * 10
    )
    assert list(read_lines(io.BytesIO(data), 10)) == [
        b"a" * 10 + b"\n",
        OversizeLine(11, 10),
        OversizeLine(11, 10),  # the carriage return counts: it is part of the line
        OversizeLine(25, 10),
        b"\n",
        b"e" * 10,
    ]
    assert list(read_lines(io.BytesIO(b"f" * 11), 10)) == [OversizeLine(11, 10)]
    assert list(read_lines(io.BytesIO(b""), 10)) == []


def test_an_oversize_line_costs_its_limit_in_memory_not_its_size(tmp_path: Path) -> None:
    size = 30 * 1024 * 1024
    source = tmp_path / "events.jsonl"
    with source.open("wb") as handle:
        handle.write(event_bytes(event_id="before") + b"\n")
        handle.write(b'{"title": "' + b"x" * size + b'"}\n')
        handle.write(event_bytes(event_id="after") + b"\n")
    tracemalloc.start()
    try:
        with source.open("rb") as handle:
            items = list(read_event_lines(read_lines(handle, DEFAULT_MAX_LINE_BYTES), str))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [type(item) for item in items] == [Event, RejectedLine, Event]
    assert items[1] == RejectedLine(
        2, f"longer than {DEFAULT_MAX_LINE_BYTES} bytes (max_line_bytes): {size + 13} bytes"
    )
    assert peak < 4 * DEFAULT_MAX_LINE_BYTES  # today's reader held the whole 30 MiB line


def test_the_default_limit_fits_the_largest_valid_event_however_escaped() -> None:
    """A 64 KiB body of control characters and a 64 KiB payload of "é", escaped as an
    ASCII-only producer writes them, make one line under the default limit."""
    kib_64 = 64 * 1024
    payload = {"a": "é" * ((kib_64 - len('{"a":""}')) // 2)}
    line = good_line(
        1, {**json.loads(event_bytes()), "body": "\x01" * kib_64, "payload": payload}, True
    )
    assert len(line) < DEFAULT_MAX_LINE_BYTES
    [item] = read_event_lines(read_lines(io.BytesIO(line), DEFAULT_MAX_LINE_BYTES), str)
    assert isinstance(item, Event)


def test_text_lines_are_read_as_given() -> None:
    """Callers that already hold text (the demo) pass it as str lines."""
    items = list(read_event_lines([event_bytes().decode(), "  ", '{"a": 1, "a": 2}'], lambda: "e1"))
    assert [type(item) for item in items] == [Event, RejectedLine]
    assert items[1] == RejectedLine(3, "not valid JSON: duplicate key 'a'")

"""Reading events from JSON lines: each line stands alone, so one bad line costs only itself.

A line is read as bytes, at most ``max_line_bytes`` of it at a time: a longer line is
skipped in bounded chunks, never held whole, so a hostile file costs a line's limit in
memory, not its size. Each line is then decoded as strict UTF-8 and parsed as strict
JSON (``core.validation.strict_json``: depth bounded before parsing, no repeated keys,
no NaN or Infinity, no number past Python's digit limit) on its own, so whatever a line
holds ends as that line's rejection with a reason, never as an exception.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from typing import BinaryIO

import attrs
from returns.result import Failure, Result, Success

from tidings.core import Event, parse_event
from tidings.core.validation import MAX_PAYLOAD_DEPTH, strict_json

MAX_LINE_DEPTH = MAX_PAYLOAD_DEPTH + 1
"""The event object around the deepest payload ``parse_event`` accepts."""

_SKIP_CHUNK = 64 * 1024


@attrs.frozen
class RejectedLine:
    """A line that did not become an event, and every reason why."""

    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@attrs.frozen
class OversizeLine:
    """A line longer than the limit, skipped unread: only its size is kept."""

    size: int
    limit: int

    def __str__(self) -> str:
        return f"longer than {self.limit} bytes (max_line_bytes): {self.size} bytes"


def _skip_rest_of_line(stream: BinaryIO) -> int:
    """Read and drop the rest of the current line in bounded chunks; its size in bytes,
    newline excluded."""
    skipped = 0
    while chunk := stream.readline(_SKIP_CHUNK):
        if chunk.endswith(b"\n"):
            return skipped + len(chunk) - 1
        skipped += len(chunk)
    return skipped


def read_lines(stream: BinaryIO, max_bytes: int) -> Iterator[bytes | OversizeLine]:
    """Each line of ``stream`` (its newline kept) if it holds at most ``max_bytes`` bytes
    besides the newline, else an ``OversizeLine``: never more than the limit in memory."""
    while line := stream.readline(max_bytes + 1):
        if len(line) <= max_bytes or line.endswith(b"\n"):
            yield line
        else:
            yield OversizeLine(len(line) + _skip_rest_of_line(stream), max_bytes)


def _text(line: bytes | str | OversizeLine) -> Result[str, str]:
    """A line's text: bytes decode as strict UTF-8; text (from a caller that read it
    already) is taken as it is."""
    if isinstance(line, OversizeLine):
        return Failure(str(line))
    if isinstance(line, str):
        return Success(line)
    try:
        return Success(line.decode("utf-8"))
    except UnicodeDecodeError as error:
        return Failure(f"not valid UTF-8: {error.reason} at byte {error.start + 1}")


def _object(text: str) -> Result[dict[str, object], str]:
    """The JSON object a line holds, or why it holds none."""
    parsed = strict_json(text, MAX_LINE_DEPTH)
    if isinstance(parsed, Failure):
        return Failure(f"not valid JSON: {parsed.failure()}")
    data = parsed.value_or(None)
    if not isinstance(data, dict):
        return Failure(f"must be a JSON object, got {type(data).__name__}")
    return Success(data)


def _is_blank(line: bytes | str | OversizeLine) -> bool:
    return not isinstance(line, OversizeLine) and not line.strip()


def _event(new_event_id: Callable[[], str], data: dict[str, object]) -> Result[Event, str]:
    data.setdefault("event_id", new_event_id())
    return parse_event(data).alt(str)


def read_event_lines(
    lines: Iterable[bytes | str | OversizeLine], new_event_id: Callable[[], str]
) -> Iterator[Event | RejectedLine]:
    """Parse each non-blank line as an event; a missing ``event_id`` gets a new one."""
    for number, line in enumerate(lines, start=1):
        if _is_blank(line):
            continue
        match _text(line).bind(_object).bind(functools.partial(_event, new_event_id)):
            case Success(event):
                yield event
            case Failure(reason):
                yield RejectedLine(number, reason)

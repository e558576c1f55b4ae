"""Reading events from JSON lines: each line stands alone, so one bad line costs only itself."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator

import attrs
from returns.result import Failure, Success

from core import Event, parse_event


@attrs.frozen
class RejectedLine:
    """A line that did not become an event, and every reason why."""

    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


def read_event_lines(
    lines: Iterable[str], new_event_id: Callable[[], str]
) -> Iterator[Event | RejectedLine]:
    """Parse each non-blank line as an event; a missing ``event_id`` gets a new one."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as error:
            yield RejectedLine(number, f"not valid JSON: {error.msg} at column {error.colno}")
            continue
        if not isinstance(data, dict):
            yield RejectedLine(number, f"must be a JSON object, got {type(data).__name__}")
            continue
        data.setdefault("event_id", new_event_id())
        match parse_event(data):
            case Success(event):
                yield event
            case Failure(invalid):
                yield RejectedLine(number, str(invalid))

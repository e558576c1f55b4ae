"""Plain-text tables and JSON for the CLI: tables for people, JSON for scripts.

Stored text (titles, user ids, kinds, error notes) comes from producers and remote
servers. Printed raw, an escape sequence in it could rewrite the operator's terminal
(move the cursor, change the title, hide lines) and a bidi override could make a line
read differently from what it holds; so what reaches a terminal shows each such
character as an escape (``\x1b``, ``\u202e``) instead.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from tidings.core.records import Notification

_UNSAFE = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029"
    "\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)
"""Controls (C0 but the line feed, DEL, C1), bidi marks, overrides and isolates, line
separators, and lone surrogates (which a terminal's encoding cannot even write)."""


def _escape(found: re.Match[str]) -> str:
    code = ord(found.group(0))
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def for_terminal(text: str) -> str:
    """``text`` with every character that could act on a terminal shown as an escape;
    line feeds stay (the CLI's own output is made of lines)."""
    return _UNSAFE.sub(_escape, text)


def emit(as_json: bool, human: str, data: object) -> None:
    """A command's result on stdout: ``data`` as one JSON document for scripts, else
    ``human`` for a terminal, with stored text made safe to print."""
    print(to_json(data) if as_json else for_terminal(human))


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Columns padded to their widest cell; empty cells show as '-'."""
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [len(header) for header in headers]
    for row in cells:
        widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=True)]
    lines = [
        "  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)).rstrip()
        for line in [list(headers), ["-" * width for width in widths], *cells]
    ]
    return "\n".join(lines)


def _cell(value: object) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value).replace("\n", " ")


_UNSAFE_IN_JSON = re.compile(
    "[\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)
"""What ``json.dumps`` leaves raw when it keeps non-ASCII text and is unsafe to print."""


def to_json(data: Any) -> str:
    """One JSON document, readable UTF-8 but for the characters ``for_terminal`` escapes,
    written as ``\\uXXXX``: the output is valid JSON and safe to print whatever it holds."""
    text = json.dumps(data, default=_json_default, ensure_ascii=False, sort_keys=True)
    return _UNSAFE_IN_JSON.sub(lambda found: f"\\u{ord(found.group(0)):04x}", text)


def _json_default(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot render {type(value).__name__} as JSON")


def notification_json(notification: Notification) -> dict[str, Any]:
    return {
        "id": notification.id,
        "event_id": notification.event_id,
        "user_id": notification.user_id,
        "kind": notification.kind,
        "severity": notification.severity.value,
        "title": notification.title,
        "body": notification.body,
        "payload": json.loads(notification.payload_json) if notification.payload_json else None,
        "created_at": notification.created_at,
        "read_at": notification.read_at,
        "dispatched_via": [channel.value for channel in notification.dispatched_via],
    }

"""Plain-text tables and JSON for the CLI: tables for people, JSON for scripts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from core.records import Notification


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


def to_json(data: Any) -> str:
    return json.dumps(data, default=_json_default, ensure_ascii=False, sort_keys=True)


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

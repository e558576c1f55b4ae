"""How PostgreSQL rows arrive: dicts of native values, decoded by the shared row maps."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tidings.adapters.rowmaps import Decoding

Row = dict[str, Any]

NOTIFICATION_COLUMNS = (
    "n.id, n.event_id, n.user_id, n.kind, n.severity, n.title, n.body, n.payload_json,"
    " n.created_at, n.read_at, n.dispatched_via"
)


def _moment(value: datetime | None) -> datetime | None:
    return value


def _names(values: list[str]) -> tuple[str, ...]:
    return tuple(values)


def _document(value: object) -> object:
    return value


POSTGRES = Decoding(moment=_moment, names=_names, document=_document)
"""timestamptz, text[] and jsonb arrive as Python values already."""

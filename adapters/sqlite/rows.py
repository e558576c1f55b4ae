"""How SQLite holds times, name lists and documents, both ways."""

from __future__ import annotations

import functools
import json
from datetime import UTC, datetime

from tidings.adapters.rowmaps import Decoding
from tidings.core.values import Channel


@functools.lru_cache(maxsize=256)  # a batch writes the same instant many times
def time_text(moment: datetime) -> str:
    """UTC, fixed width: text order is time order, so SQL can compare times as text."""
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    return moment.isoformat(timespec="microseconds")


def time_or_null(moment: datetime | None) -> str | None:
    return time_text(moment) if moment is not None else None


def time_or_none(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def channels_text(channels: tuple[Channel, ...]) -> str:
    return json.dumps([channel.value for channel in channels])


@functools.lru_cache(maxsize=1024)
def _names(text: str) -> tuple[str, ...]:
    """Decoded once per distinct list: a few lists recur across every preference row."""
    return tuple(json.loads(text))


def _document(text: str | None) -> object:
    return json.loads(text) if text else None


SQLITE = Decoding(moment=time_or_none, names=_names, document=_document)
"""Times as fixed-width UTC text, name lists and decisions as JSON text."""

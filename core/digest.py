"""The digest: one notification for what a key's cooldown held back.

A cooldown skip whose preference (or policy) asks for digests is held for the key's
digest (``Skip.held_for_digest``). When the cooldown ends, the held events become one
event, built here, which is decided like any other at that moment: current
preferences, minimum, quiet hours; if notified it starts the key's next cooldown. Pure,
so stores, the replay and a host's tests build the same digest from the same events.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime

import attrs

from tidings.core.values import SEVERITY_RANK, Event, Severity

LISTED = 20
"""How many held events a digest's body lists; the rest are counted."""

DIGEST_PREFIX = "digest-"
"""Starts a digest's id, which is also its notification's event id."""


@attrs.frozen(kw_only=True)
class HeldEvent:
    """An event the cooldown held back, as the digest shows it."""

    event_id: str
    severity: Severity
    title: str
    held_at: datetime


def digest_event(digest_id: str, user_id: str, kind: str, held: Sequence[HeldEvent]) -> Event:
    """The digest of ``held`` (in the order they were held, at least one) as an event:
    titled with their number, the most severe of their severities, a body listing the
    first ``LISTED`` (time, severity, title), and every event id in its payload."""
    if not held:
        raise ValueError("a digest needs at least one held event")
    count = len(held)
    noun = "event" if count == 1 else "events"
    lines = [
        f"{item.held_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC  {item.severity.value}  {item.title}"
        for item in held[:LISTED]
    ]
    if count > LISTED:
        lines.append(f"and {count - LISTED} more")
    return Event(
        event_id=digest_id,
        user_id=user_id,
        kind=kind,
        severity=max((item.severity for item in held), key=SEVERITY_RANK.__getitem__),
        title=f"{count} more {kind} {noun}",
        body="\n".join(lines),
        payload_json=json.dumps(
            {"digest": True, "event_ids": [item.event_id for item in held]},
            separators=(",", ":"),
        ),
    )

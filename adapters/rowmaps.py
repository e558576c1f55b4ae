"""Rows to core values, field by field, for every SQL store.

SQLite and PostgreSQL hold the same columns in different types (times as ISO text or
timestamptz, name lists as JSON text or arrays, documents as JSON text or jsonb);
a ``Decoding`` says how, so each conversion is written once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol

import attrs

from tidings.adapters.zones import zone_named
from tidings.core import Event, Preference, Severity
from tidings.core.codec import outcome_from_mapping
from tidings.core.quiet_hours import QuietHours, parse_clock
from tidings.core.records import (
    DecidedEvent,
    DeliveryJob,
    DeliveryRecord,
    DeliveryStatus,
    EventRecord,
    EventStatus,
    Notification,
    Recipient,
)
from tidings.core.values import Channel

_EVENT_FIELDS = ("event_id", "user_id", "kind", "severity", "title", "body", "payload_json")


SEVERITY_RANK_SQL = "CASE severity WHEN 'critical' THEN 2 WHEN 'watch' THEN 1 ELSE 0 END"
"""A severity's rank in SQL (both dialects): of two notifications of a key recorded at
the same instant (a digest and an escalation above it in one batch, or two
escalations), the later is the more severe, so it is the key's last."""


class RowLike(Protocol):
    def __getitem__(self, key: str, /) -> Any: ...


@attrs.frozen
class Decoding:
    """How a store's columns hold times, lists of names and JSON documents."""

    moment: Callable[[Any], datetime | None]
    names: Callable[[Any], tuple[str, ...]]
    document: Callable[[Any], Any]


def preference(row: RowLike, decoding: Decoding) -> Preference:
    """A preference row; ``digest`` is read where the query selected it (SQLite keeps
    it as 0/1), else None: follow the policy."""
    try:
        digest = row["digest"]
    except (KeyError, IndexError):  # not selected: a dict row, a sqlite3.Row
        digest = None
    return Preference(
        decoding.names(row["channels"]),
        Severity(row["min_severity"]),
        digest=None if digest is None else bool(digest),
    )


_SEVERITIES = {severity.value: severity for severity in Severity}


def validated_event(columns: Sequence[Any]) -> Event | None:
    """An event row that passed validation when it was stored, as the event; None if
    the row says so but cannot be (edited since, or marked by someone else), so it is
    validated again instead of stopping the claim. ``columns``: the row's event
    columns in ``_EVENT_FIELDS`` order, as stored (of any type)."""
    event_id, user_id, kind, severity_name, title, body, payload_json = columns
    severity = _SEVERITIES.get(severity_name)
    texts_are_text = (
        type(event_id) is str
        and type(user_id) is str
        and type(kind) is str
        and type(title) is str
        and type(body) is str
        and (payload_json is None or type(payload_json) is str)
    )
    if severity is None or not texts_are_text:
        return None
    return Event(
        event_id=event_id,
        user_id=user_id,
        kind=kind,
        severity=severity,
        title=title,
        body=body,
        payload_json=payload_json,
    )


def stored_fields(columns: Sequence[Any]) -> dict[str, object]:
    """An event row's fields as stored, for validation: absent values are left out.
    ``columns``: the row's event columns in ``_EVENT_FIELDS`` order."""
    return {
        name: value for name, value in zip(_EVENT_FIELDS, columns, strict=True) if value is not None
    }


def _required(moment: datetime | None) -> datetime:
    assert moment is not None, "a NOT NULL time column was NULL"
    return moment


def notification(row: RowLike, decoding: Decoding) -> Notification:
    return Notification(
        id=row["id"],
        event_id=row["event_id"],
        user_id=row["user_id"],
        kind=row["kind"],
        severity=Severity(row["severity"]),
        title=row["title"],
        body=row["body"],
        payload_json=row["payload_json"],
        created_at=_required(decoding.moment(row["created_at"])),
        read_at=decoding.moment(row["read_at"]),
        dispatched_via=tuple(Channel(name) for name in decoding.names(row["dispatched_via"])),
    )


def delivery_job(row: RowLike, of: Notification) -> DeliveryJob:
    return DeliveryJob(
        delivery_id=row["delivery_id"],
        channel=Channel(row["channel"]),
        attempts=row["attempts"],
        notification=of,
    )


def delivery_record(row: RowLike, decoding: Decoding) -> DeliveryRecord:
    return DeliveryRecord(
        delivery_id=row["delivery_id"],
        notification_id=row["notification_id"],
        user_id=row["user_id"],
        kind=row["kind"],
        channel=Channel(row["channel"]),
        status=DeliveryStatus(row["status"]),
        attempts=row["attempts"],
        next_attempt_at=decoding.moment(row["next_attempt_at"]),
        last_error=row["last_error"],
        delivered_at=decoding.moment(row["delivered_at"]),
    )


def event_record(row: RowLike, decoding: Decoding) -> EventRecord:
    decision = decoding.document(row["decision"])
    return EventRecord(
        event_id=row["event_id"],
        user_id=str(row["user_id"]),
        kind=str(row["kind"]),
        severity=str(row["severity"]),
        title=str(row["title"]),
        status=EventStatus(row["status"]),
        outcome=outcome_from_mapping(decision) if decision else None,
        explanation=row["explanation"],
        error=row["error"],
        enqueued_at=_required(decoding.moment(row["enqueued_at"])),
        decided_at=decoding.moment(row["decided_at"]),
        notification_id=row["notification_id"],
    )


def recipient(row: RowLike) -> Recipient:
    return Recipient(
        user_id=row["user_id"],
        email=row["email"],
        webhook_url=row["webhook_url"],
        webhook_secret=row["webhook_secret"],
        webhook_disabled=row["webhook_disabled"],
    )


def decided_event(row: RowLike, decoding: Decoding) -> DecidedEvent:
    decided_at = _required(decoding.moment(row["decided_at"]))
    return DecidedEvent(
        position=(decided_at, row["seq"]),
        event=Event(
            event_id=row["event_id"],
            user_id=row["user_id"],
            kind=row["kind"],
            severity=Severity(row["severity"]),
            title=row["title"],
            body=row["body"],
            payload_json=row["payload_json"],
        ),
        decided_at=decided_at,
        notified=row["status"] == "notified",
    )


def quiet_hours(row: RowLike) -> QuietHours | None:
    """A stored quiet window (``starts``, ``ends`` as HH:MM, ``zone`` by name); None
    for one whose zone this machine's time zone data no longer knows, so that a
    user's deliveries go out rather than their decisions failing."""
    try:
        return QuietHours(
            starts=parse_clock("from", row["starts"]),
            ends=parse_clock("to", row["ends"]),
            zone=zone_named(row["zone"]),
        )
    except ValueError:
        return None

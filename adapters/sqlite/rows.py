"""Conversions between SQLite rows and core values, written out field by field."""

from __future__ import annotations

import functools
import json
import sqlite3
from datetime import UTC, datetime

from core import Event, Preference, Severity
from core.codec import outcome_from_mapping
from core.records import (
    DecidedEvent,
    DeliveryJob,
    DeliveryRecord,
    DeliveryStatus,
    EventRecord,
    EventStatus,
    IntakeItem,
    Notification,
    Recipient,
)
from core.values import Channel


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


def preference_from_row(row: sqlite3.Row) -> Preference:
    return Preference(tuple(json.loads(row["channels"])), Severity(row["min_severity"]))


def intake_item_from_row(row: sqlite3.Row) -> IntakeItem:
    fields: dict[str, object] = {"event_id": row["event_id"]}
    for name in ("user_id", "kind", "severity", "title", "body"):
        if row[name] is not None:
            fields[name] = row[name]
    if row["payload_json"] is not None:
        fields["payload_json"] = row["payload_json"]
    return IntakeItem(event_id=row["event_id"], fields=fields)


def notification_from_row(row: sqlite3.Row) -> Notification:
    return Notification(
        id=row["id"],
        event_id=row["event_id"],
        user_id=row["user_id"],
        kind=row["kind"],
        severity=Severity(row["severity"]),
        title=row["title"],
        body=row["body"],
        payload_json=row["payload_json"],
        created_at=datetime.fromisoformat(row["created_at"]),
        read_at=time_or_none(row["read_at"]),
        dispatched_via=tuple(Channel(name) for name in json.loads(row["dispatched_via"])),
    )


def delivery_job_from_row(row: sqlite3.Row, notification: Notification) -> DeliveryJob:
    return DeliveryJob(
        delivery_id=row["delivery_id"],
        channel=Channel(row["channel"]),
        attempts=row["attempts"],
        notification=notification,
    )


def delivery_record_from_row(row: sqlite3.Row) -> DeliveryRecord:
    return DeliveryRecord(
        delivery_id=row["id"],
        notification_id=row["notification_id"],
        user_id=row["user_id"],
        kind=row["kind"],
        channel=Channel(row["channel"]),
        status=DeliveryStatus(row["status"]),
        attempts=row["attempts"],
        next_attempt_at=time_or_none(row["next_attempt_at"]),
        last_error=row["last_error"],
        delivered_at=time_or_none(row["delivered_at"]),
    )


def event_record_from_row(row: sqlite3.Row) -> EventRecord:
    decision = row["decision_json"]
    return EventRecord(
        event_id=row["event_id"],
        user_id=str(row["user_id"]),
        kind=str(row["kind"]),
        severity=str(row["severity"]),
        title=str(row["title"]),
        status=EventStatus(row["status"]),
        outcome=outcome_from_mapping(json.loads(decision)) if decision else None,
        explanation=row["explanation"],
        error=row["error"],
        enqueued_at=datetime.fromisoformat(row["enqueued_at"]),
        decided_at=time_or_none(row["decided_at"]),
        notification_id=row["notification_id"],
    )


def recipient_from_row(row: sqlite3.Row) -> Recipient:
    return Recipient(
        user_id=row["user_id"],
        email=row["email"],
        webhook_url=row["webhook_url"],
        webhook_secret=row["webhook_secret"],
        webhook_disabled=row["webhook_disabled"],
    )


def decided_event_from_row(row: sqlite3.Row) -> DecidedEvent:
    decided_at = datetime.fromisoformat(row["decided_at"])
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

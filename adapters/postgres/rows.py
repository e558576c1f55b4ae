"""Conversions between PostgreSQL rows (as dicts) and core values, field by field."""

from __future__ import annotations

from typing import Any

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

Row = dict[str, Any]

NOTIFICATION_COLUMNS = (
    "n.id, n.event_id, n.user_id, n.kind, n.severity, n.title, n.body, n.payload_json,"
    " n.created_at, n.read_at, n.dispatched_via"
)


def preference_from_row(row: Row) -> Preference:
    return Preference(tuple(row["channels"]), Severity(row["min_severity"]))


def intake_item_from_row(row: Row) -> IntakeItem:
    fields: dict[str, object] = {
        name: row[name]
        for name in ("event_id", "user_id", "kind", "severity", "title", "body", "payload_json")
        if row[name] is not None
    }
    return IntakeItem(event_id=row["event_id"], fields=fields)


def notification_from_row(row: Row) -> Notification:
    return Notification(
        id=row["id"],
        event_id=row["event_id"],
        user_id=row["user_id"],
        kind=row["kind"],
        severity=Severity(row["severity"]),
        title=row["title"],
        body=row["body"],
        payload_json=row["payload_json"],
        created_at=row["created_at"],
        read_at=row["read_at"],
        dispatched_via=tuple(Channel(name) for name in row["dispatched_via"]),
    )


def delivery_job_from_row(row: Row) -> DeliveryJob:
    return DeliveryJob(
        delivery_id=row["delivery_id"],
        channel=Channel(row["channel"]),
        attempts=row["attempts"],
        notification=notification_from_row(row),
    )


def delivery_record_from_row(row: Row) -> DeliveryRecord:
    return DeliveryRecord(
        delivery_id=row["delivery_id"],
        notification_id=row["notification_id"],
        user_id=row["user_id"],
        kind=row["kind"],
        channel=Channel(row["channel"]),
        status=DeliveryStatus(row["status"]),
        attempts=row["attempts"],
        next_attempt_at=row["next_attempt_at"],
        last_error=row["last_error"],
        delivered_at=row["delivered_at"],
    )


def event_record_from_row(row: Row) -> EventRecord:
    return EventRecord(
        event_id=row["event_id"],
        user_id=str(row["user_id"]),
        kind=str(row["kind"]),
        severity=str(row["severity"]),
        title=str(row["title"]),
        status=EventStatus(row["status"]),
        outcome=outcome_from_mapping(row["decision"]) if row["decision"] else None,
        explanation=row["explanation"],
        error=row["error"],
        enqueued_at=row["enqueued_at"],
        decided_at=row["decided_at"],
        notification_id=row["notification_id"],
    )


def recipient_from_row(row: Row) -> Recipient:
    return Recipient(
        user_id=row["user_id"],
        email=row["email"],
        webhook_url=row["webhook_url"],
        webhook_secret=row["webhook_secret"],
        webhook_disabled=row["webhook_disabled"],
    )


def decided_event_from_row(row: Row) -> DecidedEvent:
    return DecidedEvent(
        position=(row["decided_at"], row["seq"]),
        event=Event(
            event_id=row["event_id"],
            user_id=row["user_id"],
            kind=row["kind"],
            severity=Severity(row["severity"]),
            title=row["title"],
            body=row["body"],
            payload_json=row["payload_json"],
        ),
        decided_at=row["decided_at"],
        notified=row["status"] == "notified",
    )

"""What recording a batch of decisions writes, worked out once for every store.

A store loads the batch's inputs (preferences, last notification per (user, kind))
in as few queries as it can, then feeds the events through a ``BatchRecorder`` in
order: it decides each one, remembers new notifications for the cooldown of later
events in the same batch, and collects plain rows. The store then writes the rows
in its own dialect, one statement per table. Memory, SQLite and PostgreSQL thus
record the same things the same way.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import attrs
from returns.result import Failure, Success

from tidings.adapters import rowmaps
from tidings.core import GLOBAL_KIND, Event, explain, parse_event
from tidings.core.codec import outcome_to_json
from tidings.core.decision import DecisionInputs, Plan, Skip, outcome_of
from tidings.core.ports import DecideFn
from tidings.core.records import (
    DeliveryJob,
    DeliveryStatus,
    EventStatus,
    Notification,
    RecordedEvent,
)
from tidings.core.validation import InvalidEvent
from tidings.core.values import Channel, Preference

Key = tuple[str, str]


@attrs.frozen(kw_only=True)
class DeliveryRow:
    id: str
    notification_id: str
    channel: Channel
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    claimed_by: str | None
    lease_until: datetime | None
    last_error: str | None = None


@attrs.frozen(kw_only=True)
class DecidedEventRow:
    event_id: str
    status: EventStatus
    outcome: Plan | Skip
    decision_json: str
    explanation: str
    decided_at: datetime
    notification_id: str | None


@functools.lru_cache(maxsize=16384)
def decision_texts(outcome: Plan | Skip) -> tuple[str, str]:
    """The decision as stored JSON and its explanation, rendered once per distinct
    outcome: ``decide`` shares its timeless outcomes, and a noisy key's cooldown skips
    repeat the same last notification time until the cooldown ends."""
    return outcome_to_json(outcome), explain(outcome)


@attrs.frozen
class ValidatedRows:
    """Claimed event rows sorted by validation: the events in claim order with their
    row numbers, and the refused rows as (row number, event id, error)."""

    events: list[Event]
    row_of: dict[str, int]
    rejected: list[tuple[int, str, InvalidEvent]]


CLAIMED_COLUMNS = "seq, event_id, user_id, kind, severity, title, body, payload_json, validated"
"""What a claim selects for ``validate_rows``, in this order: positional rows (plain
tuples from psycopg) skip building a mapping for each of thousands of rows."""


def validate_rows(rows: Iterable[Sequence[Any]]) -> ValidatedRows:
    """Validate claimed rows (``CLAIMED_COLUMNS``) as stores hold them; rows validated
    when tidings stored them are taken as they are."""
    valid = ValidatedRows(events=[], row_of={}, rejected=[])
    for row in rows:
        seq = row[0]
        if row[8] and (event := rowmaps.validated_event(row[1:8])) is not None:
            valid.events.append(event)
            valid.row_of[event.event_id] = seq
            continue
        match parse_event(rowmaps.stored_fields(row[1:8])):
            case Success(event):
                valid.events.append(event)
                valid.row_of[event.event_id] = seq
            case Failure(error):
                valid.rejected.append((seq, row[1], error))
    return valid


class BatchRecorder:
    """Decides events in order against loaded inputs and collects the rows to write.

    In-app delivery is the notification row itself, so it is recorded delivered at
    once; every other planned channel becomes a pending delivery, due now. The
    recording worker claims it and gets it back as a job to send now, while it has
    room on that channel (``take``: how many more of each channel it may hold; None,
    no limit); beyond that it stays unclaimed in the outbox, for whichever worker has
    room first (``core.ports.DispatchStore.claim_due_deliveries``).
    """

    def __init__(
        self,
        *,
        worker_id: str,
        decide: DecideFn,
        now: datetime,
        lease: timedelta,
        preferences: Mapping[Key, Preference],
        last_sent: dict[Key, datetime],
        take: Mapping[Channel, int] | None = None,
    ) -> None:
        self._worker_id = worker_id
        self._decide = decide
        self._now = now
        self._lease_until = now + lease
        self._preferences = preferences
        self._last_sent = last_sent
        self._room = None if take is None else dict(take)
        self.notifications: list[Notification] = []
        self.deliveries: list[DeliveryRow] = []
        self.events: list[DecidedEventRow] = []

    def record_each(self, events: Sequence[Event]) -> list[RecordedEvent]:
        """Decide and record ``events`` in order."""
        return [self.record(event) for event in events]

    def record(self, event: Event) -> RecordedEvent:
        key = (event.user_id, event.kind)
        inputs = DecisionInputs(
            kind_preference=self._preferences.get(key),
            global_preference=self._preferences.get((event.user_id, GLOBAL_KIND)),
            last_sent_at=self._last_sent.get(key),
        )
        outcome = outcome_of(self._decide(event, inputs, self._now))
        if isinstance(outcome, Skip):
            self._decided(event, EventStatus.SKIPPED, outcome, None)
            return RecordedEvent(
                event_id=event.event_id,
                user_id=event.user_id,
                outcome=outcome,
                notification_id=None,
            )
        self._last_sent[key] = self._now
        notification = self._notification(event, outcome)
        jobs = tuple(self._delivery(notification, channel) for channel in outcome.channels)
        self._decided(event, EventStatus.NOTIFIED, outcome, notification.id)
        return RecordedEvent(
            event_id=event.event_id,
            user_id=event.user_id,
            outcome=outcome,
            notification_id=notification.id,
            jobs=tuple(job for job in jobs if job is not None),
        )

    def _notification(self, event: Event, plan: Plan) -> Notification:
        notification = Notification(
            id=uuid.uuid4().hex,
            event_id=event.event_id,
            user_id=event.user_id,
            kind=event.kind,
            severity=event.severity,
            title=event.title,
            body=event.body,
            payload_json=event.payload_json,
            created_at=self._now,
            read_at=None,
            dispatched_via=(Channel.IN_APP,) if Channel.IN_APP in plan.channels else (),
        )
        self.notifications.append(notification)
        return notification

    def _delivery(self, notification: Notification, channel: Channel) -> DeliveryJob | None:
        in_app = channel is Channel.IN_APP
        claimed = not in_app and self._takes(channel)
        row = DeliveryRow(
            id=uuid.uuid4().hex,
            notification_id=notification.id,
            channel=channel,
            status=DeliveryStatus.DELIVERED if in_app else DeliveryStatus.PENDING,
            attempts=1 if in_app else 0,
            next_attempt_at=None if in_app else self._now,
            delivered_at=self._now if in_app else None,
            claimed_by=self._worker_id if claimed else None,
            lease_until=self._lease_until if claimed else None,
        )
        self.deliveries.append(row)
        if not claimed:
            return None
        return DeliveryJob(
            delivery_id=row.id, channel=channel, attempts=0, notification=notification
        )

    def _takes(self, channel: Channel) -> bool:
        """Whether the worker claims this delivery (and has room for one less after)."""
        if self._room is None:
            return True
        left = self._room.get(channel, 0)
        if left <= 0:
            return False
        self._room[channel] = left - 1
        return True

    def _decided(
        self, event: Event, status: EventStatus, outcome: Plan | Skip, notification_id: str | None
    ) -> None:
        decision_json, explanation = decision_texts(outcome)
        self.events.append(
            DecidedEventRow(
                event_id=event.event_id,
                status=status,
                outcome=outcome,
                decision_json=decision_json,
                explanation=explanation,
                decided_at=self._now,
                notification_id=notification_id,
            )
        )

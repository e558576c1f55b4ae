"""What recording a batch of decisions writes, worked out once for every store.

A store loads the batch's inputs (``BatchInputs``: preferences, last notification per
(user, kind), quiet hours, pending digests) in as few queries as it can, then feeds the
events through a ``BatchRecorder`` in order: it decides each one, sends a key's due
digest before its next event, remembers new notifications for the cooldown of later
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
from tidings.core.decision import (
    HELD_CHANNELS,
    DecisionInputs,
    Plan,
    Skip,
    SkipReason,
    outcome_of,
)
from tidings.core.digest import DIGEST_PREFIX, HeldEvent, digest_event
from tidings.core.ports import DecideFn
from tidings.core.quiet_hours import QuietHours
from tidings.core.records import (
    DeliveryJob,
    DeliveryStatus,
    EventStatus,
    Notification,
    RecordedEvent,
)
from tidings.core.validation import InvalidEvent
from tidings.core.values import Channel, Preference, Severity

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
    digest_id: str | None = None


@attrs.frozen(kw_only=True)
class PendingDigest:
    """A key's digest not sent yet: due when the cooldown that held its events ends;
    ``held`` is loaded only once it is due."""

    id: str
    due_at: datetime
    held: tuple[HeldEvent, ...] = ()


@attrs.frozen(kw_only=True)
class OpenedDigest:
    id: str
    user_id: str
    kind: str
    due_at: datetime


@attrs.frozen(kw_only=True)
class DecidedDigestRow:
    id: str
    status: EventStatus
    decision_json: str
    explanation: str
    notification_id: str | None


@attrs.frozen(kw_only=True)
class BatchInputs:
    """What a batch's keys need from the store, loaded before any is decided."""

    preferences: Mapping[Key, Preference] = attrs.Factory(dict)
    last_sent: Mapping[Key, tuple[datetime, Severity]] = attrs.Factory(dict)
    quiet_hours: Mapping[str, QuietHours] = attrs.Factory(dict)
    digests: Mapping[Key, PendingDigest] = attrs.Factory(dict)

    def for_key(self, key: Key, last: tuple[datetime, Severity] | None) -> DecisionInputs:
        """The decision's inputs for ``key``, whose last notification is ``last``."""
        return DecisionInputs(
            kind_preference=self.preferences.get(key),
            global_preference=self.preferences.get((key[0], GLOBAL_KIND)),
            last_sent_at=None if last is None else last[0],
            last_severity=None if last is None else last[1],
            quiet_hours=self.quiet_hours.get(key[0]),
        )


@functools.lru_cache(maxsize=16384)
def decision_texts(outcome: Plan | Skip) -> tuple[str, str]:
    """The decision as stored JSON and its explanation, rendered once per distinct
    outcome: ``decide`` shares its timeless outcomes, and a noisy key's cooldown skips
    repeat the same last notification time until the cooldown ends."""
    return outcome_to_json(outcome), explain(outcome)


def _stored_moment(value: datetime | str) -> datetime:
    """A stored time as a store hands it back: PostgreSQL's ``timestamptz`` as it is,
    SQLite's fixed-width ISO text parsed."""
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


@attrs.frozen
class ValidatedRows:
    """Claimed event rows sorted by validation: the events in claim order with their
    row numbers and when each was stored (for ``BatchRecorder.record_each``), and the
    refused rows as (row number, event id, error)."""

    events: list[Event]
    row_of: dict[str, int]
    rejected: list[tuple[int, str, InvalidEvent]]
    enqueued_at: dict[str, datetime] = attrs.Factory(dict)

    def take(self, event: Event, seq: int, enqueued_at: datetime | str) -> None:
        self.events.append(event)
        self.row_of[event.event_id] = seq
        self.enqueued_at[event.event_id] = _stored_moment(enqueued_at)


CLAIMED_COLUMNS = (
    "seq, event_id, user_id, kind, severity, title, body, payload_json, validated, enqueued_at"
)
"""What a claim selects for ``validate_rows``, in this order: positional rows (plain
tuples from psycopg) skip building a mapping for each of thousands of rows."""


def validate_rows(rows: Iterable[Sequence[Any]]) -> ValidatedRows:
    """Validate claimed rows (``CLAIMED_COLUMNS``) as stores hold them; rows validated
    when tidings stored them are taken as they are."""
    valid = ValidatedRows(events=[], row_of={}, rejected=[])
    for row in rows:
        seq = row[0]
        if row[8] and (event := rowmaps.validated_event(row[1:8])) is not None:
            valid.take(event, seq, row[9])
            continue
        match parse_event(rowmaps.stored_fields(row[1:8])):
            case Success(event):
                valid.take(event, seq, row[9])
            case Failure(error):
                valid.rejected.append((seq, row[1], error))
    return valid


class BatchRecorder:
    """Decides events in order against loaded inputs and collects the rows to write.

    In-app delivery is the notification row itself, so it is recorded delivered at
    once; every other planned channel becomes a pending delivery, due now, or when the
    user's quiet hours end (``Plan.hold``). The recording worker claims one due now and
    gets it back as a job to send now, while it has room on that channel (``take``: how
    many more of each channel it may hold; None, no limit); beyond that it stays
    unclaimed in the outbox, for whichever worker has room first
    (``core.ports.DispatchStore.claim_due_deliveries``).

    A cooldown skip held for the digest joins the key's pending digest (opened with
    the first one), due when that cooldown ends. A due digest is decided before the
    key's next event: as an event of its own (``core.digest``), so that it cannot be
    swallowed by a notification decided after its time. One that meets a cooldown
    started since (an escalation) waits for that one to end.
    """

    def __init__(
        self,
        *,
        worker_id: str,
        decide: DecideFn,
        now: datetime,
        lease: timedelta,
        inputs: BatchInputs,
        take: Mapping[Channel, int] | None = None,
    ) -> None:
        self._worker_id = worker_id
        self._decide = decide
        self.now = now
        self._lease_until = now + lease
        self._batch = inputs
        self._last_sent = dict(inputs.last_sent)
        self._digests = dict(inputs.digests)
        self._room = None if take is None else dict(take)
        self.notifications: list[Notification] = []
        self.deliveries: list[DeliveryRow] = []
        self.events: list[DecidedEventRow] = []
        self.digests_opened: list[OpenedDigest] = []
        self.digests_due: dict[str, datetime] = {}
        """Pending digests (opened before or in this batch) and their new due time."""
        self.digests_decided: list[DecidedDigestRow] = []

    def record_each(
        self, events: Sequence[Event], enqueued_at: Mapping[str, datetime] | None = None
    ) -> list[RecordedEvent]:
        """Decide and record ``events`` in order (each key's due digest first).
        ``enqueued_at``: when each event (by id) was stored, which its ``RecordedEvent``
        carries (``ValidatedRows.enqueued_at``)."""
        recorded: list[RecordedEvent] = []
        stored = enqueued_at or {}
        for event in events:
            digest = self.record_due_digest((event.user_id, event.kind))
            if digest is not None:
                recorded.append(digest)
            recorded.append(self.record(event, stored.get(event.event_id)))
        return recorded

    def record(self, event: Event, enqueued_at: datetime | None = None) -> RecordedEvent:
        key = (event.user_id, event.kind)
        outcome = outcome_of(self._decide(event, self._inputs(key), self.now))
        if isinstance(outcome, Skip):
            digest_id = self._hold(key, outcome) if outcome.held_for_digest else None
            self._decided(event, EventStatus.SKIPPED, outcome, None, digest_id)
            return RecordedEvent(
                event_id=event.event_id,
                user_id=event.user_id,
                outcome=outcome,
                notification_id=None,
                enqueued_at=enqueued_at,
                decided_at=self.now,
            )
        recorded = self._notify(event, outcome, enqueued_at)
        self._decided(event, EventStatus.NOTIFIED, outcome, recorded.notification_id)
        return recorded

    def record_due_digest(self, key: Key) -> RecordedEvent | None:
        """Decide and record the key's digest if it is due (None if it is not, or if a
        cooldown started since its own holds it back)."""
        digest = self._digests.get(key)
        if digest is None or digest.due_at > self.now or not digest.held:
            return None
        event = digest_event(digest.id, *key, digest.held)
        outcome = outcome_of(self._decide(event, self._inputs(key), self.now))
        if isinstance(outcome, Skip) and outcome.reason is SkipReason.COOLDOWN:
            assert outcome.cooldown_ends_at is not None  # a cooldown skip carries its end
            self._digests[key] = attrs.evolve(digest, due_at=outcome.cooldown_ends_at)
            self.digests_due[digest.id] = outcome.cooldown_ends_at
            return None
        del self._digests[key]
        decision_json, explanation = decision_texts(outcome)
        notification_id = None
        if isinstance(outcome, Plan):
            recorded = self._notify(event, outcome)
            notification_id = recorded.notification_id
        else:
            recorded = RecordedEvent(
                event_id=event.event_id, user_id=event.user_id, outcome=outcome,
                notification_id=None, decided_at=self.now,
            )  # fmt: skip
        self.digests_decided.append(
            DecidedDigestRow(
                id=digest.id,
                status=EventStatus.NOTIFIED if notification_id else EventStatus.SKIPPED,
                decision_json=decision_json,
                explanation=explanation,
                notification_id=notification_id,
            )
        )
        return recorded

    def _inputs(self, key: Key) -> DecisionInputs:
        return self._batch.for_key(key, self._last_sent.get(key))

    def _hold(self, key: Key, skip: Skip) -> str:
        """The id of the key's pending digest, which ``skip`` joins: due when the
        cooldown that held it ends."""
        assert skip.cooldown_ends_at is not None  # a cooldown skip carries its end
        due_at = skip.cooldown_ends_at
        digest = self._digests.get(key)
        if digest is None:
            digest = PendingDigest(id=f"{DIGEST_PREFIX}{uuid.uuid4().hex}", due_at=due_at)
            self.digests_opened.append(
                OpenedDigest(id=digest.id, user_id=key[0], kind=key[1], due_at=due_at)
            )
        elif digest.due_at != due_at:
            self.digests_due[digest.id] = due_at
        self._digests[key] = attrs.evolve(digest, due_at=due_at)
        return digest.id

    def _notify(
        self, event: Event, plan: Plan, enqueued_at: datetime | None = None
    ) -> RecordedEvent:
        self._last_sent[(event.user_id, event.kind)] = (self.now, event.severity)
        notification = self._notification(event, plan)
        jobs = tuple(self._delivery(notification, channel, plan) for channel in plan.channels)
        return RecordedEvent(
            event_id=event.event_id,
            user_id=event.user_id,
            outcome=plan,
            notification_id=notification.id,
            jobs=tuple(job for job in jobs if job is not None),
            enqueued_at=enqueued_at,
            decided_at=self.now,
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
            created_at=self.now,
            read_at=None,
            dispatched_via=(Channel.IN_APP,) if Channel.IN_APP in plan.channels else (),
        )
        self.notifications.append(notification)
        return notification

    def _delivery(
        self, notification: Notification, channel: Channel, plan: Plan
    ) -> DeliveryJob | None:
        in_app = channel is Channel.IN_APP
        held = plan.hold is not None and channel in HELD_CHANNELS
        claimed = not in_app and not held and self._takes(channel)
        due = plan.hold.until if held and plan.hold is not None else self.now
        row = DeliveryRow(
            id=uuid.uuid4().hex,
            notification_id=notification.id,
            channel=channel,
            status=DeliveryStatus.DELIVERED if in_app else DeliveryStatus.PENDING,
            attempts=1 if in_app else 0,
            next_attempt_at=None if in_app else due,
            delivered_at=self.now if in_app else None,
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
        self,
        event: Event,
        status: EventStatus,
        outcome: Plan | Skip,
        notification_id: str | None,
        digest_id: str | None = None,
    ) -> None:
        decision_json, explanation = decision_texts(outcome)
        self.events.append(
            DecidedEventRow(
                event_id=event.event_id,
                status=status,
                outcome=outcome,
                decision_json=decision_json,
                explanation=explanation,
                decided_at=self.now,
                notification_id=notification_id,
                digest_id=digest_id,
            )
        )

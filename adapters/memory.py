"""An in-memory store: the fake for tests and the simplest embedding.

It keeps the same promises as the SQL stores (the contract suite runs against all of
them), in plain dictionaries, and decides as it claims as they do. One asyncio loop
owns it; every method runs to completion without awaiting, so each call is atomic,
and a call that fails (a decision that raises) changes nothing: it works out what to
write first and writes it at the end.
"""

from __future__ import annotations

import asyncio
import itertools
import zlib
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence, Set
from datetime import datetime, timedelta

import attrs
from returns.result import Failure, Success

from tidings.adapters.recording import BatchInputs, BatchRecorder, DeliveryRow, PendingDigest
from tidings.adapters.zones import stored_zone
from tidings.core import (
    Event,
    Preference,
    explain,
    parse_event,
)
from tidings.core.contacts import changed_recipient, disabled_webhook
from tidings.core.decision import DecisionInputs, Plan, Skip
from tidings.core.digest import HeldEvent
from tidings.core.ports import DecideFn
from tidings.core.quiet_hours import QuietHours
from tidings.core.records import (
    DEFAULT_LEASE,
    TERMINAL_EVENT_STATUSES,
    Backlog,
    ChannelOutcome,
    DecidedClaim,
    DecidedEvent,
    DeliveryJob,
    DeliveryRecord,
    DeliveryStatus,
    EventRecord,
    EventStatus,
    Notification,
    Recipient,
    RecipientChange,
    settled_note,
    settled_status,
)
from tidings.core.validation import InvalidEvent, event_fields, is_valid
from tidings.core.values import Channel, Severity, stored_preference

_DUE_STATUSES = (DeliveryStatus.PENDING, DeliveryStatus.FAILED)


@attrs.frozen(kw_only=True)
class _EventRow:
    event: Event
    validated: bool
    status: EventStatus = EventStatus.PENDING
    enqueued_at: datetime
    decided_at: datetime | None = None
    outcome: Plan | Skip | None = None
    error: str | None = None
    notification_id: str | None = None


@attrs.frozen(kw_only=True)
class _DigestRow:
    user_id: str
    kind: str
    due_at: datetime
    held: tuple[str, ...] = ()
    status: EventStatus = EventStatus.PENDING


def _claimable(claimed_by: str | None, lease_until: datetime | None, now: datetime) -> bool:
    return claimed_by is None or lease_until is None or lease_until <= now


def _lane(user_id: str, kind: str, lanes: int) -> int:
    return zlib.crc32(f"{user_id}\x1f{kind}".encode()) % lanes


class MemoryStore:
    """Every port in dictionaries. ``clock`` gives "now"; the runner owns it."""

    max_lanes = 8

    def __init__(self, clock: Callable[[], datetime], lease: timedelta = DEFAULT_LEASE) -> None:
        self._clock = clock
        self._lease = lease
        self._preferences: dict[tuple[str, str], Preference] = {}
        self._events: dict[str, _EventRow] = {}
        self._notifications: dict[str, Notification] = {}
        self._last_sent: dict[tuple[str, str], tuple[datetime, Severity]] = {}
        self._digests: dict[str, _DigestRow] = {}
        self._deliveries: dict[str, DeliveryRow] = {}
        self._recipients: dict[str, Recipient] = {}
        self._quiet_hours: dict[str, QuietHours] = {}

    async def migrate(self) -> int:
        return 0

    async def pending_migrations(self) -> int:
        return 0

    async def close(self) -> None:
        return None

    # -- intake --------------------------------------------------------------------

    async def enqueue(self, events: Sequence[Event]) -> int:
        now = self._clock()
        added = 0
        for event in events:
            if event.event_id not in self._events:
                self._events[event.event_id] = _EventRow(
                    event=event, validated=is_valid(event), enqueued_at=now
                )
                added += 1
        return added

    async def backlog(self) -> Backlog:
        now = self._clock()
        events = sum(row.status not in TERMINAL_EVENT_STATUSES for row in self._events.values())
        scheduled = [
            row.next_attempt_at
            for row in self._deliveries.values()
            if row.status in _DUE_STATUSES and row.next_attempt_at is not None
        ]
        due = sum(moment <= now for moment in scheduled)
        digests = sum(
            row.status is EventStatus.PENDING and row.due_at <= now
            for row in self._digests.values()
        )
        return Backlog(
            events=events,
            due_deliveries=due,
            due_digests=digests,
            waiting_deliveries=len(scheduled) - due,
        )

    async def renew_claims(
        self, worker_id: str, keep: Collection[str], *, release: Collection[str] = ()
    ) -> Set[str]:
        until = self._clock() + self._lease
        for delivery_id in release:
            if self._held_by(worker_id, delivery_id):
                self._deliveries[delivery_id] = attrs.evolve(
                    self._deliveries[delivery_id], claimed_by=None, lease_until=None
                )
        kept = {delivery_id for delivery_id in keep if self._held_by(worker_id, delivery_id)}
        for delivery_id in kept:
            self._deliveries[delivery_id] = attrs.evolve(
                self._deliveries[delivery_id], lease_until=until
            )
        return kept

    def _held_by(self, worker_id: str, delivery_id: str) -> bool:
        row = self._deliveries.get(delivery_id)
        return row is not None and row.claimed_by == worker_id and row.status in _DUE_STATUSES

    async def wait_for_events(self, at_most: float) -> None:
        await asyncio.sleep(at_most)

    # -- decisions -----------------------------------------------------------------

    async def decide_claimable(
        self,
        worker_id: str,
        limit: int,
        decide: DecideFn,
        *,
        lane: int = 0,
        lanes: int = 1,
        take: Mapping[Channel, int] | None = None,
    ) -> DecidedClaim:
        if not 0 <= lane < lanes <= self.max_lanes:
            raise ValueError(f"lane {lane} of {lanes} (at most {self.max_lanes} lanes)")
        taken = itertools.islice(
            (
                row
                for row in self._events.values()
                if row.status is EventStatus.PENDING
                and _lane(row.event.user_id, row.event.kind, lanes) == lane
            ),
            limit,
        )
        valid: list[Event] = []
        rejected: list[tuple[str, InvalidEvent]] = []
        for row in taken:
            if row.validated:
                valid.append(row.event)
                continue
            match parse_event(event_fields(row.event)):
                case Success(event):
                    valid.append(event)
                case Failure(error):
                    rejected.append((row.event.event_id, error))
        now = self._clock()
        recorder = self._recorder(worker_id, decide, now, valid, take)
        recorded = recorder.record_each(
            valid, {event.event_id: self._events[event.event_id].enqueued_at for event in valid}
        )
        # Nothing is written until every decision is made: a decision that raises
        # leaves the store as it was.
        for event_id, error in rejected:
            row = self._events[event_id]
            self._events[event_id] = attrs.evolve(
                row, status=EventStatus.REJECTED, error=str(error), decided_at=now
            )
        self._write(recorder)
        return DecidedClaim(recorded=tuple(recorded), rejected=tuple(rejected))

    def _recorder(
        self,
        worker_id: str,
        decide: DecideFn,
        now: datetime,
        events: Sequence[Event],
        take: Mapping[Channel, int] | None,
    ) -> BatchRecorder:
        """A recorder loaded with the inputs of ``events``' keys, as a SQL store loads them."""
        keys = {(event.user_id, event.kind) for event in events}
        return BatchRecorder(
            worker_id=worker_id,
            decide=decide,
            now=now,
            lease=self._lease,
            inputs=self._inputs(keys, now),
            take=take,
        )

    def _inputs(self, keys: set[tuple[str, str]], now: datetime) -> BatchInputs:
        """What a SQL store loads for a batch of ``keys`` (``BatchInputs``)."""
        pending = {
            (row.user_id, row.kind): PendingDigest(
                id=digest_id,
                due_at=row.due_at,
                held=tuple(self._held_event(event_id) for event_id in row.held)
                if row.due_at <= now
                else (),
            )
            for digest_id, row in self._digests.items()
            if row.status is EventStatus.PENDING and (row.user_id, row.kind) in keys
        }
        return BatchInputs(
            preferences=self._preferences,
            last_sent={key: self._last_sent[key] for key in keys if key in self._last_sent},
            quiet_hours=self._quiet_hours,
            digests=pending,
        )

    def _held_event(self, event_id: str) -> HeldEvent:
        row = self._events[event_id]
        assert row.decided_at is not None  # held events are decided
        return HeldEvent(
            event_id=event_id,
            severity=row.event.severity,
            title=row.event.title,
            held_at=row.decided_at,
        )

    async def decide_due_digests(
        self,
        worker_id: str,
        limit: int,
        decide: DecideFn,
        *,
        take: Mapping[Channel, int] | None = None,
    ) -> DecidedClaim:
        now = self._clock()
        due = sorted(
            (row.due_at, row.user_id, row.kind)
            for row in self._digests.values()
            if row.status is EventStatus.PENDING and row.due_at <= now
        )[:limit]
        keys = {(user_id, kind) for _, user_id, kind in due}
        recorder = BatchRecorder(
            worker_id=worker_id,
            decide=decide,
            now=now,
            lease=self._lease,
            inputs=self._inputs(keys, now),
            take=take,
        )
        recorded = [digest for key in sorted(keys) if (digest := recorder.record_due_digest(key))]
        self._write(recorder)
        return DecidedClaim(recorded=tuple(recorded), rejected=())

    def _write(self, recorder: BatchRecorder) -> None:
        for notification in recorder.notifications:
            self._notifications[notification.id] = notification
            key = (notification.user_id, notification.kind)
            self._last_sent[key] = (notification.created_at, notification.severity)
        for delivery in recorder.deliveries:
            self._deliveries[delivery.id] = delivery
        for decided_digest in recorder.digests_decided:
            self._digests[decided_digest.id] = attrs.evolve(
                self._digests[decided_digest.id],
                status=decided_digest.status,
            )
        for opened in recorder.digests_opened:
            self._digests[opened.id] = _DigestRow(
                user_id=opened.user_id, kind=opened.kind, due_at=opened.due_at
            )
        for digest_id, due_at in recorder.digests_due.items():
            self._digests[digest_id] = attrs.evolve(self._digests[digest_id], due_at=due_at)
        for decided in recorder.events:
            self._events[decided.event_id] = attrs.evolve(
                self._events[decided.event_id],
                status=decided.status,
                outcome=decided.outcome,
                decided_at=decided.decided_at,
                notification_id=decided.notification_id,
            )
            if decided.digest_id is not None:
                digest = self._digests[decided.digest_id]
                self._digests[decided.digest_id] = attrs.evolve(
                    digest, held=(*digest.held, decided.event_id)
                )

    async def event_record(self, event_id: str) -> EventRecord | None:
        row = self._events.get(event_id)
        if row is None:
            return None
        return EventRecord(
            event_id=event_id,
            user_id=row.event.user_id,
            kind=row.event.kind,
            severity=row.event.severity.value,
            title=row.event.title,
            status=row.status,
            outcome=row.outcome,
            explanation=explain(row.outcome) if row.outcome is not None else None,
            error=row.error,
            enqueued_at=row.enqueued_at,
            decided_at=row.decided_at,
            notification_id=row.notification_id,
        )

    # -- deliveries ----------------------------------------------------------------

    def _job(self, delivery: DeliveryRow) -> DeliveryJob:
        return DeliveryJob(
            delivery_id=delivery.id,
            channel=delivery.channel,
            attempts=delivery.attempts,
            notification=self._notifications[delivery.notification_id],
        )

    async def claim_due_deliveries(
        self, worker_id: str, limit: int, *, channel: Channel | None = None
    ) -> Sequence[DeliveryJob]:
        now = self._clock()
        due = sorted(
            (
                row
                for row in self._deliveries.values()
                if row.status in _DUE_STATUSES
                and row.next_attempt_at is not None
                and row.next_attempt_at <= now
                and _claimable(row.claimed_by, row.lease_until, now)
                and channel in (None, row.channel)
            ),
            key=lambda row: row.next_attempt_at or now,
        )
        jobs: list[DeliveryJob] = []
        for row in due[:limit]:
            claimed = attrs.evolve(row, claimed_by=worker_id, lease_until=now + self._lease)
            self._deliveries[row.id] = claimed
            jobs.append(self._job(claimed))
        return jobs

    async def settle_delivery(
        self,
        worker_id: str,
        delivery_id: str,
        outcome: ChannelOutcome,
        retry_at: datetime | None,
    ) -> bool:
        row = self._deliveries.get(delivery_id)
        if row is None or row.claimed_by != worker_id or row.status not in _DUE_STATUSES:
            return False
        now = self._clock()
        status = settled_status(outcome, retry_at)
        self._deliveries[delivery_id] = attrs.evolve(
            row,
            status=status,
            attempts=row.attempts + 1,
            last_error=settled_note(outcome),
            next_attempt_at=retry_at if status is DeliveryStatus.FAILED else None,
            delivered_at=now if status is DeliveryStatus.DELIVERED else row.delivered_at,
            claimed_by=None,
            lease_until=None,
        )
        if status is DeliveryStatus.DELIVERED:
            notification = self._notifications[row.notification_id]
            self._notifications[row.notification_id] = attrs.evolve(
                notification, dispatched_via=(*notification.dispatched_via, row.channel)
            )
        return True

    async def deliveries(
        self, status: DeliveryStatus | None = None, limit: int = 100
    ) -> Sequence[DeliveryRecord]:
        rows = [row for row in self._deliveries.values() if status is None or row.status is status]
        return [self._delivery_record(row) for row in rows[:limit]]

    def _delivery_record(self, row: DeliveryRow) -> DeliveryRecord:
        notification = self._notifications[row.notification_id]
        return DeliveryRecord(
            delivery_id=row.id,
            notification_id=row.notification_id,
            user_id=notification.user_id,
            kind=notification.kind,
            channel=row.channel,
            status=row.status,
            attempts=row.attempts,
            next_attempt_at=row.next_attempt_at,
            last_error=row.last_error,
            delivered_at=row.delivered_at,
        )

    # -- inbox ---------------------------------------------------------------------

    def _owned(self, user_id: str) -> list[Notification]:
        owned = [n for n in self._notifications.values() if n.user_id == user_id]
        owned.sort(key=lambda n: n.created_at, reverse=True)
        return owned

    async def inbox(
        self, user_id: str, *, unread_only: bool = False, limit: int = 50
    ) -> Sequence[Notification]:
        owned = self._owned(user_id)
        if unread_only:
            owned = [n for n in owned if n.read_at is None]
        return owned[:limit]

    async def unread_count(self, user_id: str) -> int:
        return sum(n.read_at is None for n in self._owned(user_id))

    async def mark_read(self, user_id: str, notification_id: str) -> bool:
        notification = self._notifications.get(notification_id)
        if notification is None or notification.user_id != user_id:
            return False
        if notification.read_at is None:
            self._notifications[notification_id] = attrs.evolve(notification, read_at=self._clock())
        return True

    async def mark_all_read(self, user_id: str) -> int:
        unread = [n for n in self._owned(user_id) if n.read_at is None]
        now = self._clock()
        for notification in unread:
            self._notifications[notification.id] = attrs.evolve(notification, read_at=now)
        return len(unread)

    # -- history -------------------------------------------------------------------

    async def decision_inputs(self, user_id: str, kind: str) -> tuple[DecisionInputs, datetime]:
        key = (user_id, kind)
        now = self._clock()
        return self._inputs({key}, now).for_key(key, self._last_sent.get(key)), now

    async def decided_events(
        self, since: datetime, after: tuple[datetime, int] | None, limit: int
    ) -> Sequence[DecidedEvent]:
        decided = [
            DecidedEvent(
                position=(row.decided_at, index),
                event=row.event,
                decided_at=row.decided_at,
                notified=row.status is EventStatus.NOTIFIED,
            )
            for index, row in enumerate(self._events.values())
            if row.decided_at is not None
            and row.decided_at >= since
            and row.status in (EventStatus.NOTIFIED, EventStatus.SKIPPED)
        ]
        decided.sort(key=lambda found: found.position)
        return [found for found in decided if after is None or found.position > after][:limit]

    async def last_notified_before(self, moment: datetime) -> Mapping[tuple[str, str], datetime]:
        last = await self.last_notifications_before(moment)
        return {key: at for key, (at, _) in last.items()}

    async def last_notifications_before(
        self, moment: datetime
    ) -> Mapping[tuple[str, str], tuple[datetime, Severity]]:
        last: dict[tuple[str, str], tuple[datetime, Severity]] = {}
        for notification in self._notifications.values():
            key = (notification.user_id, notification.kind)
            if notification.created_at >= moment:
                continue
            known = last.get(key)
            # Of two at one instant, the more severe: the escalation, decided later.
            if known is None or (notification.created_at, notification.severity.rank) > (
                known[0],
                known[1].rank,
            ):
                last[key] = (notification.created_at, notification.severity)
        return last

    async def held_for_digests_at(
        self, moment: datetime
    ) -> Mapping[tuple[str, str], Sequence[HeldEvent]]:
        """As the SQL stores; a digest decided without a notification counts as decided
        at its due time (this store keeps no decision time for it; a runner decides it
        then)."""
        notified_at = {
            notification.event_id: notification.created_at
            for notification in self._notifications.values()
            if notification.event_id in self._digests
        }
        held: dict[tuple[str, str], list[HeldEvent]] = {}
        for digest_id, row in self._digests.items():
            decided_at = (
                None
                if row.status is EventStatus.PENDING
                else notified_at.get(digest_id, row.due_at)
            )
            if decided_at is not None and decided_at < moment:
                continue
            events = [self._held_event(event_id) for event_id in row.held]
            if before := [event for event in events if event.held_at < moment]:
                held[(row.user_id, row.kind)] = before
        return held

    async def digests_notified_since(self, moment: datetime) -> Mapping[tuple[str, str], int]:
        sent: dict[tuple[str, str], int] = {}
        for notification in self._notifications.values():
            if notification.event_id in self._digests and notification.created_at >= moment:
                key = (notification.user_id, notification.kind)
                sent[key] = sent.get(key, 0) + 1
        return sent

    async def all_preferences(self) -> Mapping[tuple[str, str], Preference]:
        return dict(self._preferences)

    async def all_quiet_hours(self) -> Mapping[str, QuietHours]:
        return dict(self._quiet_hours)

    # -- recipients ----------------------------------------------------------------

    async def recipient(self, user_id: str) -> Recipient | None:
        return self._recipients.get(user_id)

    async def update_recipient(self, change: RecipientChange) -> Recipient:
        stored = changed_recipient(self._recipients.get(change.user_id), change)
        self._recipients[change.user_id] = stored
        return stored

    async def disable_webhook(self, user_id: str, url: str, reason: str) -> None:
        disabled = disabled_webhook(self._recipients.get(user_id), url, reason)
        if disabled is not None:
            self._recipients[user_id] = disabled

    async def requeue_delivery(self, delivery_id: str) -> bool:
        row = self._deliveries.get(delivery_id)
        if row is None or row.status is not DeliveryStatus.DEAD:
            return False
        self._deliveries[delivery_id] = attrs.evolve(
            row, status=DeliveryStatus.PENDING, attempts=0, next_attempt_at=self._clock()
        )
        return True

    # -- preferences ---------------------------------------------------------------

    async def set_preference(self, user_id: str, kind: str, preference: Preference) -> Preference:
        stored = stored_preference(preference)
        self._preferences[(user_id, kind)] = stored
        return stored

    async def preferences(self, user_id: str) -> Mapping[str, Preference]:
        return {
            kind: preference
            for (owner, kind), preference in sorted(self._preferences.items())
            if owner == user_id
        }

    # -- quiet hours -----------------------------------------------------------------

    async def set_quiet_hours(self, user_id: str, window: QuietHours | None) -> None:
        if window is None:
            self._quiet_hours.pop(user_id, None)
            return
        # Kept as the SQL stores read it back: the zone by its name (or refused).
        self._quiet_hours[user_id] = attrs.evolve(window, zone=stored_zone(window.zone))

    async def quiet_hours(self, user_id: str) -> QuietHours | None:
        return self._quiet_hours.get(user_id)

    # -- retention (core.ports.Retention) ------------------------------------------------

    async def prune(
        self, older_than: timedelta, *, chunk: int = 1000
    ) -> AsyncIterator[Mapping[str, int]]:
        """One pass, in one step: each call of this store is atomic already, so
        ``chunk`` changes nothing. A decided digest's time is its notification's, or
        its due time when it has none (``held_for_digests_at`` reads it so too)."""
        gone = self._prunable_rows(self._clock() - older_than)
        for delivery_id in gone["deliveries"]:
            del self._deliveries[delivery_id]
        for notification_id in gone["notifications"]:
            del self._notifications[notification_id]
        for event_id in gone["events"]:
            del self._events[event_id]
        for digest_id in gone["digests"]:
            del self._digests[digest_id]
        for digest_id, row in list(self._digests.items()):
            if any(event_id in gone["events"] for event_id in row.held):
                held = tuple(event_id for event_id in row.held if event_id not in gone["events"])
                self._digests[digest_id] = attrs.evolve(row, held=held)
        yield {table: len(found) for table, found in gone.items()}

    async def prunable(self, older_than: timedelta) -> Mapping[str, int]:
        gone = self._prunable_rows(self._clock() - older_than)
        return {table: len(found) for table, found in gone.items()}

    async def vacuum(self) -> tuple[int, int]:
        """Nothing to give back: removed rows are gone from memory already."""
        return 0, 0

    def _prunable_rows(self, horizon: datetime) -> dict[str, set[str]]:
        """The ids a pass would remove, by table, in the order it removes them."""
        deliveries = {
            row.id
            for row in self._deliveries.values()
            if self._notifications[row.notification_id].created_at < horizon
            and row.status
            in (DeliveryStatus.DELIVERED, DeliveryStatus.SKIPPED, DeliveryStatus.DEAD)
            and (row.delivered_at is None or row.delivered_at < horizon)
        }
        notifications = self._prunable_notifications(horizon, deliveries)
        kept = self._notifications.keys() - notifications
        held = {
            event_id
            for row in self._digests.values()
            if row.status is EventStatus.PENDING
            for event_id in row.held
        }
        events = {
            event_id
            for event_id, row in self._events.items()
            if row.status in TERMINAL_EVENT_STATUSES
            and row.decided_at is not None
            and row.decided_at < horizon
            and row.notification_id not in kept
            and event_id not in held
        }
        return {
            "deliveries": deliveries,
            "notifications": notifications,
            "events": events,
            "digests": self._prunable_digests(horizon, kept, events),
        }

    def _prunable_notifications(self, horizon: datetime, deliveries: set[str]) -> set[str]:
        """Old ones that are not their key's latest and keep no delivery."""
        latest: dict[tuple[str, str], datetime] = {}
        for notification in self._notifications.values():
            key = (notification.user_id, notification.kind)
            latest[key] = max(latest.get(key, notification.created_at), notification.created_at)
        delivering = {
            row.notification_id for row in self._deliveries.values() if row.id not in deliveries
        }
        return {
            notification.id
            for notification in self._notifications.values()
            if notification.created_at < horizon
            and notification.created_at < latest[(notification.user_id, notification.kind)]
            and notification.id not in delivering
        }

    def _prunable_digests(self, horizon: datetime, kept: Set[str], events: set[str]) -> set[str]:
        """Decided before the horizon, their notification (if any) and events gone."""
        notified = {
            notification.event_id: notification
            for notification in self._notifications.values()
            if notification.event_id in self._digests
        }
        return {
            digest_id
            for digest_id, row in self._digests.items()
            if row.status is not EventStatus.PENDING
            and (notified[digest_id].created_at if digest_id in notified else row.due_at) < horizon
            and (digest_id not in notified or notified[digest_id].id not in kept)
            and all(event_id in events or event_id not in self._events for event_id in row.held)
        }

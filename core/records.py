"""What stores hand back: the audit rows, delivery jobs and channel outcomes.

These are the vocabulary of the ports. They live in the core so that adapters and
the runner agree on them without importing each other.
"""

from __future__ import annotations

import enum
from datetime import datetime, timedelta
from typing import Final

import attrs

from tidings.core.decision import Plan, Skip
from tidings.core.validation import InvalidEvent
from tidings.core.values import Channel, Event, Severity

DEFAULT_LEASE = timedelta(seconds=10)
"""How long a delivery claim lasts unless renewed: short, so a dead runner's sends are
taken over within seconds, and renewed at a third of it by a live one."""


class EventStatus(enum.Enum):
    """Where an accepted event is: pending until the one transaction that claims it
    decides it; then in one of the other three, terminal states."""

    PENDING = "pending"
    NOTIFIED = "notified"
    SKIPPED = "skipped"
    REJECTED = "rejected"


TERMINAL_EVENT_STATUSES = frozenset(
    {EventStatus.NOTIFIED, EventStatus.SKIPPED, EventStatus.REJECTED}
)


class DeliveryStatus(enum.Enum):
    """One planned channel's progress: pending until settled, failed while retrying."""

    PENDING = "pending"
    DELIVERED = "delivered"
    SKIPPED = "skipped"
    FAILED = "failed"
    DEAD = "dead"


@attrs.frozen(kw_only=True)
class Notification:
    """The audit row, which is also the in-app inbox entry."""

    id: str
    event_id: str
    user_id: str
    kind: str
    severity: Severity
    title: str
    body: str
    payload_json: str | None
    created_at: datetime
    read_at: datetime | None
    dispatched_via: tuple[Channel, ...]


@attrs.frozen(kw_only=True)
class DeliveryJob:
    """One channel of one notification to send now. ``delivery_id`` is stable across
    retries, so receivers can deduplicate an at-least-once delivery."""

    delivery_id: str
    channel: Channel
    attempts: int
    notification: Notification


@attrs.frozen(kw_only=True)
class DeliveryRecord:
    """A delivery row as operators see it."""

    delivery_id: str
    notification_id: str
    user_id: str
    kind: str
    channel: Channel
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    delivered_at: datetime | None


@attrs.frozen
class Delivered:
    """The channel accepted the notification."""


@attrs.frozen
class ChannelSkipped:
    """The channel cannot apply (not configured, no address): not an error, not retried."""

    reason: str


@attrs.frozen(kw_only=True)
class ChannelFailed:
    """The channel tried and failed; ``retryable`` says whether trying again can help."""

    error: str
    retryable: bool
    retry_after: timedelta | None = None


ChannelOutcome = Delivered | ChannelSkipped | ChannelFailed


@attrs.frozen(kw_only=True)
class RecordedEvent:
    """A decision as recorded, with the deliveries it created that are due now.

    ``enqueued_at`` is when the event was stored and ``decided_at`` the moment of its
    decision, both read from the store's clock (so their difference is the event's
    wait, whatever the runner's clock says); a digest, which is never enqueued, has no
    ``enqueued_at``, nor has an event of a store that does not say. They tell when, not
    what was decided: equality leaves them out."""

    event_id: str
    user_id: str
    outcome: Plan | Skip
    notification_id: str | None
    jobs: tuple[DeliveryJob, ...] = ()
    enqueued_at: datetime | None = attrs.field(default=None, eq=False)
    decided_at: datetime | None = attrs.field(default=None, eq=False)


@attrs.frozen(kw_only=True)
class DecidedClaim:
    """What one claim-and-decide transaction did: the decisions recorded, in claim
    order, and the events refused by validation with every reason."""

    recorded: tuple[RecordedEvent, ...]
    rejected: tuple[tuple[str, InvalidEvent], ...]


@attrs.frozen(kw_only=True)
class EventRecord:
    """An event's row in the durable intake, with its recorded decision if any."""

    event_id: str
    user_id: str
    kind: str
    severity: str
    title: str
    status: EventStatus
    outcome: Plan | Skip | None
    explanation: str | None
    error: str | None
    enqueued_at: datetime
    decided_at: datetime | None
    notification_id: str | None


@attrs.frozen(kw_only=True)
class DecidedEvent:
    """A decided (notified or skipped) event as history, for replaying decisions.
    ``position`` orders history and resumes a paged read after it."""

    position: tuple[datetime, int]
    event: Event
    decided_at: datetime
    notified: bool


@attrs.frozen(kw_only=True)
class Backlog:
    """Work a store still holds: events not terminal, deliveries and digests due by now.

    ``waiting_deliveries`` are pending or failed deliveries scheduled later (a retry,
    the end of quiet hours): work, but none for now, so neither ``empty`` nor equality
    looks at them. A runner that drains until idle does not wait hours for them."""

    events: int
    due_deliveries: int
    due_digests: int = 0
    waiting_deliveries: int = attrs.field(default=0, eq=False)

    @property
    def empty(self) -> bool:
        return self.events == 0 and self.due_deliveries == 0 and self.due_digests == 0


def settled_status(outcome: ChannelOutcome, retry_at: datetime | None) -> DeliveryStatus:
    """A delivery's status after a send: a failure with somewhere to go is ``failed``
    (it will be retried at ``retry_at``); one without is ``dead``."""
    if isinstance(outcome, Delivered):
        return DeliveryStatus.DELIVERED
    if isinstance(outcome, ChannelSkipped):
        return DeliveryStatus.SKIPPED
    return DeliveryStatus.FAILED if retry_at is not None else DeliveryStatus.DEAD


def settled_note(outcome: ChannelOutcome) -> str | None:
    """What a settled delivery keeps as ``last_error``: the skip reason or the error."""
    if isinstance(outcome, ChannelSkipped):
        return outcome.reason
    if isinstance(outcome, ChannelFailed):
        return outcome.error
    return None


@attrs.frozen(kw_only=True)
class Recipient:
    """Where a user's email and webhook deliveries go. The secret never shows in a repr,
    so it cannot leak through a log line or an error message."""

    user_id: str
    email: str | None = None
    webhook_url: str | None = None
    webhook_secret: str | None = attrs.field(default=None, repr=False)
    webhook_disabled: str | None = None
    """Why the webhook endpoint was turned off (it answered 410 Gone), if it was."""


class Unchanged(enum.Enum):
    """The type of ``UNCHANGED``: a field that a ``RecipientChange`` leaves as it is."""

    UNCHANGED = "unchanged"


UNCHANGED: Final = Unchanged.UNCHANGED


@attrs.frozen(kw_only=True)
class RecipientChange:
    """What to change in a user's contact points, field by field: a new value, None to
    clear the field, or ``UNCHANGED`` (the default) to keep what is stored. Applied by
    ``core.contacts.changed_recipient``. The secret never shows in a repr."""

    user_id: str
    email: str | Unchanged | None = UNCHANGED
    webhook_url: str | Unchanged | None = UNCHANGED
    webhook_secret: str | Unchanged | None = attrs.field(default=UNCHANGED, repr=False)

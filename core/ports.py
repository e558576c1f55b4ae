"""The ports: what each caller needs from a store, and from a channel, as Protocols.

Each caller depends on the narrow protocol it uses: the dispatch loop on
``DispatchStore`` (nine members), the CLI's reads on ``Inbox``, ``DeliveryLog``,
``DecisionRecords`` and ``History``, the senders on a ``RecipientDirectory``, pruning
on ``Retention``. Each method is shaped like one transaction of the runner, so a SQL
store can make it atomic (and serialised per (user, kind)) without the caller knowing
how. ``Store`` is all of them at once: what opening a database gives. Adapters satisfy
them structurally; they do not inherit from them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Mapping, Sequence, Set
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

from returns.result import Result

from tidings.core.decision import DecisionInputs, Plan, Skip
from tidings.core.digest import HeldEvent
from tidings.core.quiet_hours import QuietHours
from tidings.core.records import (
    Backlog,
    ChannelOutcome,
    DecidedClaim,
    DecidedEvent,
    DeliveryJob,
    DeliveryRecord,
    DeliveryStatus,
    EventRecord,
    Notification,
    Recipient,
    RecipientChange,
)
from tidings.core.values import Channel, Event, Preference, Severity


class StoreUnavailable(Exception):
    """The store cannot be reached right now (connection refused or lost).

    The one exception a store raises on purpose: the runner waits and retries, since
    every promise is kept in the database and nothing is lost by trying again.
    """


class DecideFn(Protocol):
    """The decision with the policy already bound; the store supplies inputs and now."""

    def __call__(
        self, event: Event, inputs: DecisionInputs, now: datetime, /
    ) -> Result[Plan, Skip]: ...


class PendingWork(Protocol):
    """How much work a store still holds (the dispatcher's idle check, health probes)."""

    async def backlog(self) -> Backlog:
        """What is not finished: events not terminal, deliveries due now."""
        ...


class DispatchStore(PendingWork, Protocol):
    """What the dispatch loop needs, and nothing more: claim-and-decide in lanes, the
    delivery outbox, lease renewal, waiting for events and the backlog.

    Claiming and deciding are one transaction, so nothing sits claimed between
    transactions: a runner that dies mid-batch takes its transaction with it, and the
    events are claimable again at once. Deliveries are claimed under a lease, so a dead
    runner's sends are taken over when it expires.
    """

    @property
    def max_lanes(self) -> int:
        """How many lanes can usefully run at once (SQLite, with one writer: 1)."""
        ...

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
        """In one transaction: take up to ``limit`` pending events, oldest first, among
        those whose (user, kind) falls in ``lane`` of ``lanes`` (a fixed split of keys,
        ``lanes`` at most ``max_lanes``); reject the invalid ones with every reason; for
        each valid one, in order, load its inputs, decide, and record the notification,
        its deliveries and the event's status. Deliveries that need sending come back
        claimed by ``worker_id``: all of them, or with ``take`` the first ``take[channel]``
        of each channel (none of a channel it leaves out). The others are recorded
        pending and unclaimed, due now, for any worker's ``claim_due_deliveries``: a
        runner holds no more than it can send soon. A failure records nothing: the
        events stay pending."""
        ...

    async def decide_due_digests(
        self,
        worker_id: str,
        limit: int,
        decide: DecideFn,
        *,
        take: Mapping[Channel, int] | None = None,
    ) -> DecidedClaim:
        """In one transaction per key, serialised with its events' decisions: take up to
        ``limit`` digests whose cooldown has ended (``core.digest``), decide each as an
        event at this moment, record its notification and deliveries (claimed as in
        ``decide_claimable``), and mark it decided, exactly once however many workers
        race. Deciding a key's events sends its due digest first, so this only finds
        the keys that had no event since."""
        ...

    async def claim_due_deliveries(
        self, worker_id: str, limit: int, *, channel: Channel | None = None
    ) -> Sequence[DeliveryJob]:
        """Claim up to ``limit`` deliveries due now (of ``channel`` only, when given),
        oldest first, whose claim (if any) expired or was handed back."""
        ...

    async def settle_delivery(
        self,
        worker_id: str,
        delivery_id: str,
        outcome: ChannelOutcome,
        retry_at: datetime | None,
    ) -> bool:
        """Record a send's outcome if the delivery is still claimed by ``worker_id``.
        A failure with ``retry_at`` waits until then; without it, it is dead.
        Returns False, changing nothing, when the claim was lost."""
        ...

    async def renew_claims(
        self, worker_id: str, keep: Collection[str], *, release: Collection[str] = ()
    ) -> Set[str]:
        """In one transaction: extend the leases of the deliveries in ``keep`` that are
        still claimed by ``worker_id`` (unsettled and not taken over, even if their lease
        ran out meanwhile), and hand back those in ``release`` that it holds: unclaimed,
        due now, status and attempts unchanged, so any worker may take them at once.
        Returns the ids of ``keep`` still held: a live worker keeps its sends while a
        dead one's expire and are taken over, and a worker learns which claims it lost.
        A claim left out of ``keep`` is not renewed: it expires."""
        ...

    async def wait_for_events(self, at_most: float) -> None:
        """Return when new events may have arrived, or after ``at_most`` seconds."""
        ...


class EventIntake(Protocol):
    """The durable intake: every accepted event is stored before it is decided."""

    async def enqueue(self, events: Sequence[Event]) -> int:
        """Store events as pending; an event_id already present is ignored. Returns
        how many were new."""
        ...


class DecisionRecords(Protocol):
    """One event's record and what a decision would see now: ``explain`` and dry runs."""

    async def event_record(self, event_id: str) -> EventRecord | None: ...

    async def decision_inputs(self, user_id: str, kind: str) -> tuple[DecisionInputs, datetime]:
        """What a decision for (user, kind) would see now, and the store's now: for dry
        runs, without recording anything."""
        ...


class History(Protocol):
    """Recorded decisions, read back for what-if replays."""

    async def decided_events(
        self, since: datetime, after: tuple[datetime, int] | None, limit: int
    ) -> Sequence[DecidedEvent]:
        """Notified and skipped events decided at or after ``since``, in decision order,
        after position ``after``: read in pages, so memory stays flat."""
        ...

    async def last_notified_before(self, moment: datetime) -> Mapping[tuple[str, str], datetime]:
        """Each (user, kind)'s last notification before ``moment``: when it was
        recorded (``last_notifications_before`` adds its severity)."""
        ...

    async def last_notifications_before(
        self, moment: datetime
    ) -> Mapping[tuple[str, str], tuple[datetime, Severity]]:
        """Each (user, kind)'s last notification before ``moment``, when it was recorded
        and its severity: a replay's starting cooldowns, and what an escalation past
        them compares. Of notifications recorded at the same instant (an escalation
        over a digest), the most severe, which was the later decided."""
        ...

    async def held_for_digests_at(
        self, moment: datetime
    ) -> Mapping[tuple[str, str], Sequence[HeldEvent]]:
        """The events held before ``moment`` for digests not decided before it, by key,
        in the order they were held: the digests pending when a replay starts."""
        ...

    async def digests_notified_since(self, moment: datetime) -> Mapping[tuple[str, str], int]:
        """How many digests notified each (user, kind) at or after ``moment``."""
        ...

    async def all_preferences(self) -> Mapping[tuple[str, str], Preference]: ...

    async def all_quiet_hours(self) -> Mapping[str, QuietHours]:
        """Every user's quiet hours (those whose zone this machine still knows)."""
        ...


class DeliveryLog(Protocol):
    """The deliveries as operators see them, and a dead one sent again."""

    async def deliveries(
        self, status: DeliveryStatus | None = None, limit: int = 100
    ) -> Sequence[DeliveryRecord]: ...

    async def requeue_delivery(self, delivery_id: str) -> bool:
        """Make a dead delivery pending again, due now, with its id and a fresh retry
        schedule (attempts back to 0; its last error stays until the next attempt).
        False when there is no dead delivery with that id."""
        ...


class Inbox(Protocol):
    """The in-app inbox: the notifications rows of one user, newest first."""

    async def inbox(
        self, user_id: str, *, unread_only: bool = False, limit: int = 50
    ) -> Sequence[Notification]: ...

    async def unread_count(self, user_id: str) -> int: ...

    async def mark_read(self, user_id: str, notification_id: str) -> bool:
        """Mark one of the user's notifications read (again is fine). False when the id
        is unknown or belongs to someone else."""
        ...

    async def mark_all_read(self, user_id: str) -> int: ...


class PreferenceBook(Protocol):
    """Users' preferences, per kind and global (kind ``_global``)."""

    async def set_preference(self, user_id: str, kind: str, preference: Preference) -> Preference:
        """Store the preference with normalised channel names
        (``core.values.stored_preference``); returns what was stored."""
        ...

    async def preferences(self, user_id: str) -> Mapping[str, Preference]: ...

    async def set_quiet_hours(self, user_id: str, window: QuietHours | None) -> None:
        """Store the user's daily quiet window (``None``: none); the zone is kept by
        name (``QuietHours.zone_name``)."""
        ...

    async def quiet_hours(self, user_id: str) -> QuietHours | None: ...


class RecipientDirectory(Protocol):
    """Contact points per user. A host application can supply its own user directory."""

    async def recipient(self, user_id: str) -> Recipient | None: ...


class WebhookDirectory(RecipientDirectory, Protocol):
    """What the webhook sender needs: contact points, and turning off an endpoint that
    answered 410 Gone."""

    async def disable_webhook(self, user_id: str, url: str, reason: str) -> None:
        """Stop sending to ``url`` for the user until another URL is set. Nothing
        happens if the user's URL has changed meanwhile (a late 410 from the old one).
        The rule: ``core.contacts.disabled_webhook``."""
        ...


class RecipientBook(RecipientDirectory, Protocol):
    """The store's own ``recipients`` table, which the CLI edits."""

    async def update_recipient(self, change: RecipientChange) -> Recipient:
        """Apply ``change`` to the user's contact points in one transaction (read, apply
        ``core.contacts.changed_recipient``, write); returns what is stored."""
        ...


class StoreLifecycle(Protocol):
    """The schema and the connections: migrate, see what is pending, close."""

    async def migrate(self) -> int:
        """Apply pending schema migrations; returns how many were applied."""
        ...

    async def pending_migrations(self) -> int:
        """How many of this version's migrations the database lacks (all of them when
        it is empty), changing nothing."""
        ...

    async def close(self) -> None: ...


PRUNED_TABLES = ("deliveries", "notifications", "events", "digests")
"""The tables retention removes rows from, in the order it removes them: a delivery
before its notification (which it references), a notification before its event and
digest (which stay while it does)."""


@runtime_checkable
class Retention(Protocol):
    """Removing what no promise needs any more, older than a horizon: ``older_than``
    before the store's now (the database clock on PostgreSQL), read once per pass.

    Removed, once older than the horizon: terminal events (notified, skipped,
    rejected; by ``decided_at``), notifications read or unread (by ``created_at``),
    settled deliveries (delivered, skipped, dead; their notification's age, and a
    delivered one's ``delivered_at`` too) and decided digests (by ``decided_at``).
    Kept whatever their age: each (user, kind)'s latest notification (all of them at
    its latest instant), which its cooldown and escalation read; a notification with a
    delivery pending or failed (retrying); such deliveries; an event not terminal; an
    event held for a digest still pending, and that digest; an event or a digest whose
    notification is kept (an event id stays unique while its notification does). So a
    decision made after a pass is the one made before it.
    """

    def prune(
        self, older_than: timedelta, *, chunk: int = 1000
    ) -> AsyncIterator[Mapping[str, int]]:
        """One pass: remove in chunks, each one short transaction over at most
        ``chunk`` rows looked at (oldest first, through an index), yielding what each
        chunk removed by table (``PRUNED_TABLES``) once it has committed. Between
        chunks nothing is held: the caller may pause, or stop for good, losing nothing.
        On PostgreSQL rows another transaction holds are passed over (``SKIP LOCKED``),
        so passes on several runners never wait for each other or for a decision."""
        ...

    async def prunable(self, older_than: timedelta) -> Mapping[str, int]:
        """What a pass would remove now, by table (``PRUNED_TABLES``), changing nothing."""
        ...

    async def vacuum(self) -> tuple[int, int]:
        """Give the space of removed rows back to the file system, and the database's
        size in bytes before and after. SQLite: switches the file to incremental
        auto-vacuum (each pass then returns its free pages) and rewrites it once with
        ``VACUUM``, writers waiting meanwhile; PostgreSQL: ``VACUUM (ANALYZE)`` of the
        four tables, which makes their space reusable without locking them (only
        ``VACUUM FULL`` would shrink the files, under an exclusive lock: never run)."""
        ...


class Store(
    DispatchStore,
    EventIntake,
    DecisionRecords,
    History,
    DeliveryLog,
    Inbox,
    PreferenceBook,
    RecipientBook,
    WebhookDirectory,
    StoreLifecycle,
    Retention,
    Protocol,
):
    """Every port on one database: what ``runner/stores.py`` opens. Components take
    the narrow protocol they use instead."""


class ChannelSender(Protocol):
    """Sends on one channel. Expected failures are returned, never raised."""

    async def send(self, job: DeliveryJob) -> ChannelOutcome: ...

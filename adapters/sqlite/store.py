"""The embedded default store: one SQLite file, WAL mode, zero setup.

The store is its parts put together: each part holds the tables of one concern and
receives the one ``SqliteDatabase`` they share (the file, its thread, the clock), and
the store exposes the parts' methods as its own, so it satisfies ``core.ports.Store``
(checked by mypy in ``tests/adapters/test_store_ports.py``) while each caller sees
only the narrow port it takes.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from tidings.adapters.sqlite.connection import SqliteDatabase
from tidings.adapters.sqlite.digests import SqliteDigests
from tidings.adapters.sqlite.history import SqliteHistory
from tidings.adapters.sqlite.intake import SqliteIntake
from tidings.adapters.sqlite.outbox import SqliteOutbox
from tidings.adapters.sqlite.people import SqlitePeople
from tidings.adapters.sqlite.retention import SqliteRetention
from tidings.adapters.sqlite.schema import SqliteSchema
from tidings.core.records import DEFAULT_LEASE


class SqliteStore:
    """Every port on one SQLite database file. ``clock`` gives "now"; the runner owns it;
    ``lease`` is how long a delivery claim lasts unless renewed."""

    def __init__(
        self, path: str, clock: Callable[[], datetime], lease: timedelta = DEFAULT_LEASE
    ) -> None:
        database = SqliteDatabase(path, clock, lease)
        intake = SqliteIntake(database)
        digests = SqliteDigests(database)
        outbox = SqliteOutbox(database)
        people = SqlitePeople(database)
        history = SqliteHistory(database)
        schema = SqliteSchema(database)
        retention = SqliteRetention(database)
        # The dispatch loop (core.ports.DispatchStore) and the intake.
        self.max_lanes = intake.max_lanes
        self.decide_claimable = intake.decide_claimable
        self.decide_due_digests = digests.decide_due_digests
        self.backlog = intake.backlog
        self.wait_for_events = intake.wait_for_events
        self.enqueue = intake.enqueue
        self.claim_due_deliveries = outbox.claim_due_deliveries
        self.settle_delivery = outbox.settle_delivery
        self.renew_claims = outbox.renew_claims
        # What operators read and edit.
        self.deliveries = outbox.deliveries
        self.requeue_delivery = outbox.requeue_delivery
        self.inbox = people.inbox
        self.unread_count = people.unread_count
        self.mark_read = people.mark_read
        self.mark_all_read = people.mark_all_read
        self.recipient = people.recipient
        self.update_recipient = people.update_recipient
        self.disable_webhook = people.disable_webhook
        self.set_preference = people.set_preference
        self.preferences = people.preferences
        self.set_quiet_hours = people.set_quiet_hours
        self.quiet_hours = people.quiet_hours
        self.event_record = history.event_record
        self.decision_inputs = history.decision_inputs
        self.decided_events = history.decided_events
        self.last_notified_before = history.last_notified_before
        self.all_preferences = history.all_preferences
        self.last_notifications_before = history.last_notifications_before
        self.held_for_digests_at = history.held_for_digests_at
        self.digests_notified_since = history.digests_notified_since
        self.all_quiet_hours = history.all_quiet_hours
        # Retention: what no promise needs any more, removed in small chunks.
        self.prune = retention.prune
        self.prunable = retention.prunable
        self.vacuum = retention.vacuum
        # The schema and the connection.
        self.migrate = schema.migrate
        self.pending_migrations = schema.pending_migrations
        self.close = database.close

"""Deciding and recording a batch of events in one PostgreSQL transaction.

The cooldown must hold across any number of runners, so check and record happen
under a transaction-scoped advisory lock per (user, kind), taken in one sorted order
(no deadlocks between batches). Advisory locks rather than row locks: the key to
serialise on is a (user, kind) pair that may have no row yet (the first
notification), and an advisory lock needs no table of keys to be kept in step.
"now" is read from the database after the locks are held, so runners on machines
with skewed clocks agree, and a later decision never sees an earlier time.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from psycopg import AsyncCursor
from psycopg.types.json import Jsonb

from adapters.postgres.rows import Row, preference_from_row
from core import GLOBAL_KIND, Event, explain, outcome_to_mapping
from core.decision import DecisionInputs, Plan, Skip, outcome_of
from core.ports import DecideFn
from core.records import DeliveryJob, Notification, RecordedEvent
from core.values import Channel, Preference

Key = tuple[str, str]


def lock_key(user_id: str, kind: str) -> int:
    """A stable signed 64-bit advisory lock key for one (user, kind)."""
    digest = hashlib.blake2b(f"{user_id}\x1f{kind}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


async def _lock_keys(cursor: AsyncCursor[Row], keys: set[Key]) -> None:
    # unnest yields the sorted array in order, so the locks are taken in that order.
    ordered = sorted({lock_key(user, kind) for user, kind in keys})
    await cursor.execute(
        "SELECT count(pg_advisory_xact_lock(k)) FROM unnest(%s::bigint[]) AS k", (ordered,)
    )


async def _still_claimed(
    cursor: AsyncCursor[Row], worker_id: str, events: Sequence[Event]
) -> set[str]:
    """The batch's events this worker still holds, locked against re-claiming (fencing)."""
    await cursor.execute(
        "SELECT event_id FROM events WHERE event_id = ANY(%s) AND status = 'claimed'"
        " AND claimed_by = %s FOR UPDATE",
        ([event.event_id for event in events], worker_id),
    )
    return {row["event_id"] for row in await cursor.fetchall()}


async def _inputs(
    cursor: AsyncCursor[Row], keys: set[Key]
) -> tuple[dict[Key, Preference], dict[Key, datetime]]:
    users = [user for user, _ in keys]
    kinds = [kind for _, kind in keys]
    await cursor.execute(
        "SELECT p.user_id, p.kind, p.channels, p.min_severity FROM notification_preferences p"
        " JOIN (SELECT DISTINCT u, k FROM unnest(%s::text[], %s::text[]) AS t(u, k)"
        "       UNION SELECT DISTINCT u, %s FROM unnest(%s::text[]) AS g(u)) wanted"
        " ON p.user_id = wanted.u AND p.kind = wanted.k",
        (users, kinds, GLOBAL_KIND, users),
    )
    preferences = {
        (row["user_id"], row["kind"]): preference_from_row(row) for row in await cursor.fetchall()
    }
    await cursor.execute(
        "SELECT t.u, t.k, (SELECT max(created_at) FROM notifications n"
        "                  WHERE n.user_id = t.u AND n.kind = t.k) AS last_sent_at"
        " FROM unnest(%s::text[], %s::text[]) AS t(u, k)",
        (users, kinds),
    )
    last_sent = {
        (row["u"], row["k"]): row["last_sent_at"]
        for row in await cursor.fetchall()
        if row["last_sent_at"] is not None
    }
    return preferences, last_sent


class _BatchWriter:
    """Collects the rows a batch writes, to send them with one executemany each."""

    def __init__(self, worker_id: str, lease_until: datetime) -> None:
        self.worker_id = worker_id
        self.lease_until = lease_until
        self.notifications: list[tuple[object, ...]] = []
        self.deliveries: list[tuple[object, ...]] = []
        self.events: list[tuple[object, ...]] = []

    def plan(self, event: Event, plan: Plan, now: datetime) -> RecordedEvent:
        in_app = [Channel.IN_APP.value] if Channel.IN_APP in plan.channels else []
        notification = Notification(
            id=uuid.uuid4().hex,
            event_id=event.event_id,
            user_id=event.user_id,
            kind=event.kind,
            severity=event.severity,
            title=event.title,
            body=event.body,
            payload_json=event.payload_json,
            created_at=now,
            read_at=None,
            dispatched_via=tuple(Channel(name) for name in in_app),
        )
        self.notifications.append(
            (notification.id, event.event_id, event.user_id, event.kind, event.severity.value,
             event.title, event.body, event.payload_json, now, in_app)
        )  # fmt: skip
        jobs = []
        for channel in plan.channels:
            delivery_id = uuid.uuid4().hex
            if channel is Channel.IN_APP:
                self.deliveries.append(
                    (delivery_id, notification.id, channel.value, "delivered", 1, None, now,
                     None, None)
                )  # fmt: skip
                continue
            self.deliveries.append(
                (delivery_id, notification.id, channel.value, "pending", 0, now, None,
                 self.worker_id, self.lease_until)
            )  # fmt: skip
            jobs.append(
                DeliveryJob(
                    delivery_id=delivery_id, channel=channel, attempts=0, notification=notification
                )
            )
        self._event(event, plan, now, notification.id)
        return RecordedEvent(
            event_id=event.event_id, outcome=plan, notification_id=notification.id, jobs=tuple(jobs)
        )

    def skip(self, event: Event, skip: Skip, now: datetime) -> RecordedEvent:
        self._event(event, skip, now, None)
        return RecordedEvent(event_id=event.event_id, outcome=skip, notification_id=None)

    def _event(
        self, event: Event, outcome: Plan | Skip, now: datetime, notification_id: str | None
    ) -> None:
        self.events.append(
            (
                "notified" if isinstance(outcome, Plan) else "skipped",
                outcome.reason.value if isinstance(outcome, Skip) else None,
                Jsonb(outcome_to_mapping(outcome)),
                explain(outcome),
                now,
                notification_id,
                event.event_id,
            )
        )

    async def write(self, cursor: AsyncCursor[Row]) -> None:
        if self.notifications:
            await cursor.executemany(
                "INSERT INTO notifications (id, event_id, user_id, kind, severity, title, body,"
                " payload_json, created_at, dispatched_via)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                self.notifications,
            )
        if self.deliveries:
            await cursor.executemany(
                "INSERT INTO deliveries (id, notification_id, channel, status, attempts,"
                " next_attempt_at, delivered_at, claimed_by, lease_until)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                self.deliveries,
            )
        if self.events:
            await cursor.executemany(
                "UPDATE events SET status = %s, reason = %s, decision = %s, explanation = %s,"
                " decided_at = %s, notification_id = %s, claimed_by = NULL, lease_until = NULL"
                " WHERE event_id = %s",
                self.events,
            )


async def record_batch(
    cursor: AsyncCursor[Row],
    worker_id: str,
    events: Sequence[Event],
    decide: DecideFn,
    *,
    now: datetime | None,
    lease: timedelta,
) -> list[RecordedEvent]:
    """Decide and record ``events`` in order, inside the caller's transaction.

    ``now`` is the injected clock's reading, or None to read the database clock.
    """
    keys = {(event.user_id, event.kind) for event in events}
    await _lock_keys(cursor, keys)
    mine = await _still_claimed(cursor, worker_id, events)
    preferences, last_sent = await _inputs(cursor, keys)
    if now is None:
        await cursor.execute("SELECT clock_timestamp() AS now")
        found = await cursor.fetchone()
        assert found is not None
        now = found["now"]
    writer = _BatchWriter(worker_id, now + lease)
    recorded = []
    for event in events:
        if event.event_id not in mine:
            continue
        mine.discard(event.event_id)  # decided now: a repeat is no longer claimed
        key = (event.user_id, event.kind)
        inputs = DecisionInputs(
            kind_preference=preferences.get(key),
            global_preference=preferences.get((event.user_id, GLOBAL_KIND)),
            last_sent_at=last_sent.get(key),
        )
        outcome = outcome_of(decide(event, inputs, now))
        if isinstance(outcome, Plan):
            recorded.append(writer.plan(event, outcome, now))
            last_sent[key] = now
        else:
            recorded.append(writer.skip(event, outcome, now))
    await writer.write(cursor)
    return recorded

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
from collections.abc import Sequence
from datetime import datetime, timedelta

from psycopg import AsyncCursor

from adapters.postgres.rows import Row, preference_from_row
from adapters.recording import BatchRecorder, Key
from core import GLOBAL_KIND, Event
from core.decision import Skip
from core.ports import DecideFn
from core.records import RecordedEvent
from core.values import Preference


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


async def _write(cursor: AsyncCursor[Row], recorder: BatchRecorder) -> None:
    if recorder.notifications:
        await cursor.executemany(
            "INSERT INTO notifications (id, event_id, user_id, kind, severity, title, body,"
            " payload_json, created_at, dispatched_via)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (n.id, n.event_id, n.user_id, n.kind, n.severity.value, n.title, n.body,
                 n.payload_json, n.created_at, [c.value for c in n.dispatched_via])
                for n in recorder.notifications
            ],
        )  # fmt: skip
    if recorder.deliveries:
        await cursor.executemany(
            "INSERT INTO deliveries (id, notification_id, channel, status, attempts,"
            " next_attempt_at, delivered_at, claimed_by, lease_until)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (d.id, d.notification_id, d.channel.value, d.status.value, d.attempts,
                 d.next_attempt_at, d.delivered_at, d.claimed_by, d.lease_until)
                for d in recorder.deliveries
            ],
        )  # fmt: skip
    await cursor.executemany(
        "UPDATE events SET status = %s, reason = %s, decision = %s::jsonb, explanation = %s,"
        " decided_at = %s, notification_id = %s, claimed_by = NULL, lease_until = NULL"
        " WHERE event_id = %s",
        [
            (e.status.value, e.outcome.reason.value if isinstance(e.outcome, Skip) else None,
             e.decision_json, e.explanation, e.decided_at,
             e.notification_id, e.event_id)
            for e in recorder.events
        ],
    )  # fmt: skip


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
    recorder = BatchRecorder(
        worker_id=worker_id,
        decide=decide,
        now=now,
        lease_until=now + lease,
        preferences=preferences,
        last_sent=last_sent,
    )
    recorded = recorder.record_claimed(events, mine)
    if recorded:
        await _write(cursor, recorder)
    return recorded

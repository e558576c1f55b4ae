"""The delivery outbox: claimed under a lease, renewed or handed back, settled, retried,
requeued."""

from __future__ import annotations

from collections.abc import Collection, Sequence, Set
from datetime import datetime

from tidings.adapters import rowmaps
from tidings.adapters.postgres.connection import PostgresDatabase
from tidings.adapters.postgres.rows import NOTIFICATION_COLUMNS, POSTGRES
from tidings.core.records import (
    ChannelOutcome,
    DeliveryJob,
    DeliveryRecord,
    DeliveryStatus,
    settled_note,
    settled_status,
)
from tidings.core.values import Channel


class PostgresOutbox:
    """Deliveries: claimed when due, settled by their claimant only, requeued."""

    def __init__(self, database: PostgresDatabase) -> None:
        self._db = database

    async def claim_due_deliveries(
        self, worker_id: str, limit: int, *, channel: Channel | None = None
    ) -> Sequence[DeliveryJob]:
        async with self._db.cursor() as cursor:
            await self._db.execute(
                cursor,
                "WITH claimed AS (UPDATE deliveries SET claimed_by = %(worker)s,"
                " lease_until = {now} + %(lease)s WHERE id IN (SELECT id FROM deliveries"
                "  WHERE status IN ('pending', 'failed') AND next_attempt_at <= {now}"
                "  AND (claimed_by IS NULL OR lease_until <= {now})"
                "  AND (%(channel)s::text IS NULL OR channel = %(channel)s)"
                "  ORDER BY next_attempt_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED)"
                " RETURNING id, notification_id, channel, attempts, next_attempt_at)"
                f" SELECT c.id AS delivery_id, c.channel, c.attempts, {NOTIFICATION_COLUMNS}"
                " FROM claimed c JOIN notifications n ON n.id = c.notification_id"
                " ORDER BY c.next_attempt_at, c.id",
                worker=worker_id,
                limit=limit,
                channel=None if channel is None else channel.value,
            )
            found = await cursor.fetchall()
        return [rowmaps.delivery_job(row, rowmaps.notification(row, POSTGRES)) for row in found]

    async def renew_claims(
        self, worker_id: str, keep: Collection[str], *, release: Collection[str] = ()
    ) -> Set[str]:
        # SKIP LOCKED: a delivery being settled right now is about to be released
        # anyway, and waiting on it could deadlock with that very transaction; one
        # being taken over is lost. Either way it is not renewed, nor handed back.
        async with self._db.cursor() as cursor:
            await self._db.execute(
                cursor,
                "WITH released AS (UPDATE deliveries SET claimed_by = NULL, lease_until = NULL"
                " WHERE id IN (SELECT id FROM deliveries WHERE id = ANY(%(release)s)"
                "  AND status IN ('pending', 'failed') AND claimed_by = %(worker)s"
                "  FOR UPDATE SKIP LOCKED))"
                " UPDATE deliveries SET lease_until = {now} + %(lease)s WHERE id IN"
                " (SELECT id FROM deliveries WHERE id = ANY(%(keep)s)"
                "  AND NOT id = ANY(%(release)s)"
                "  AND status IN ('pending', 'failed') AND claimed_by = %(worker)s"
                "  FOR UPDATE SKIP LOCKED) RETURNING id",
                worker=worker_id,
                keep=list(keep),
                release=list(release),
            )
            return {row["id"] for row in await cursor.fetchall()}

    async def settle_delivery(
        self,
        worker_id: str,
        delivery_id: str,
        outcome: ChannelOutcome,
        retry_at: datetime | None,
    ) -> bool:
        status = settled_status(outcome, retry_at)
        async with self._db.cursor() as cursor:
            await self._db.execute(
                cursor,
                "WITH settled AS (UPDATE deliveries SET status = %(status)s,"
                " last_error = %(note)s, next_attempt_at = %(next)s, attempts = attempts + 1,"
                " delivered_at = CASE WHEN %(status)s = 'delivered' THEN {now}"
                "  ELSE delivered_at END, claimed_by = NULL, lease_until = NULL"
                " WHERE id = %(id)s AND claimed_by = %(worker)s"
                " AND status IN ('pending', 'failed') RETURNING notification_id, channel),"
                " grown AS (UPDATE notifications n"
                " SET dispatched_via = array_append(n.dispatched_via, s.channel)"
                " FROM settled s WHERE %(status)s = 'delivered' AND n.id = s.notification_id"
                " AND NOT (s.channel = ANY (n.dispatched_via)))"
                " SELECT count(*) AS settled FROM settled",
                status=status.value,
                note=settled_note(outcome),
                next=retry_at if status is DeliveryStatus.FAILED else None,
                id=delivery_id,
                worker=worker_id,
            )
            row = await cursor.fetchone()
        return row is not None and row["settled"] == 1

    async def deliveries(
        self, status: DeliveryStatus | None = None, limit: int = 100
    ) -> Sequence[DeliveryRecord]:
        async with self._db.cursor(transaction=False) as cursor:
            await cursor.execute(
                "SELECT d.id AS delivery_id, d.notification_id, d.channel, d.status, d.attempts,"
                " d.next_attempt_at, d.last_error, d.delivered_at, n.user_id, n.kind"
                " FROM deliveries d JOIN notifications n ON n.id = d.notification_id"
                " WHERE %(status)s::text IS NULL OR d.status = %(status)s"
                " ORDER BY n.created_at DESC, d.channel LIMIT %(limit)s",
                {"status": status.value if status else None, "limit": limit},
            )
            found = await cursor.fetchall()
        return [rowmaps.delivery_record(row, POSTGRES) for row in found]

    async def requeue_delivery(self, delivery_id: str) -> bool:
        async with self._db.cursor() as cursor:
            await self._db.execute(
                cursor,
                "UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = {now},"
                " claimed_by = NULL, lease_until = NULL"
                " WHERE id = %(id)s AND status = 'dead' RETURNING id",
                id=delivery_id,
            )
            return await cursor.fetchone() is not None

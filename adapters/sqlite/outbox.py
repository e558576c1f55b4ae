"""The delivery outbox: claimed under a lease, renewed or handed back, settled, retried,
requeued."""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Sequence, Set
from datetime import datetime

from tidings.adapters import rowmaps
from tidings.adapters.sqlite import rows
from tidings.adapters.sqlite.connection import DUE, SqliteDatabase
from tidings.adapters.sqlite.rows import SQLITE
from tidings.core.records import (
    ChannelOutcome,
    DeliveryJob,
    DeliveryRecord,
    DeliveryStatus,
    Notification,
    settled_note,
    settled_status,
)
from tidings.core.values import Channel


class SqliteOutbox:
    """Deliveries: claimed when due, settled by their claimant only, requeued."""

    def __init__(self, database: SqliteDatabase) -> None:
        self._db = database

    async def claim_due_deliveries(
        self, worker_id: str, limit: int, *, channel: Channel | None = None
    ) -> Sequence[DeliveryJob]:
        def claim(connection: sqlite3.Connection) -> list[DeliveryJob]:
            now = self._db.clock()
            claimed = connection.execute(
                "UPDATE deliveries SET claimed_by = :worker, lease_until = :lease"
                f" WHERE id IN (SELECT id FROM deliveries WHERE {DUE}"
                " AND (claimed_by IS NULL OR lease_until <= :now)"
                " AND (:channel IS NULL OR channel = :channel)"
                " ORDER BY next_attempt_at LIMIT :limit)"
                " RETURNING id AS delivery_id, notification_id, channel, attempts,"
                " next_attempt_at",
                {
                    "worker": worker_id,
                    "lease": rows.time_text(now + self._db.lease),
                    "now": rows.time_text(now),
                    "limit": limit,
                    "channel": None if channel is None else channel.value,
                },
            ).fetchall()
            return [
                rowmaps.delivery_job(row, _notification(connection, row["notification_id"]))
                # RETURNING's order is unspecified: the oldest due go first.
                for row in sorted(
                    claimed, key=lambda row: (row["next_attempt_at"], row["delivery_id"])
                )
            ]

        return await self._db.write(claim)

    async def renew_claims(
        self, worker_id: str, keep: Collection[str], *, release: Collection[str] = ()
    ) -> Set[str]:
        def renew(connection: sqlite3.Connection) -> set[str]:
            held = "status IN ('pending', 'failed') AND claimed_by = ? AND id IN"
            connection.execute(
                "UPDATE deliveries SET claimed_by = NULL, lease_until = NULL"
                f" WHERE {held} ({_marks(release)})",
                (worker_id, *release),
            )
            kept = connection.execute(
                f"UPDATE deliveries SET lease_until = ? WHERE {held} ({_marks(keep)}) RETURNING id",
                (rows.time_text(self._db.clock() + self._db.lease), worker_id, *keep),
            )
            return {row["id"] for row in kept}

        return await self._db.write(renew)

    async def settle_delivery(
        self,
        worker_id: str,
        delivery_id: str,
        outcome: ChannelOutcome,
        retry_at: datetime | None,
    ) -> bool:
        return await self._db.write(
            lambda c: self._settle(c, worker_id, delivery_id, outcome, retry_at)
        )

    def _settle(
        self,
        connection: sqlite3.Connection,
        worker_id: str,
        delivery_id: str,
        outcome: ChannelOutcome,
        retry_at: datetime | None,
    ) -> bool:
        now = self._db.now()
        status = settled_status(outcome, retry_at)
        next_attempt = (
            rows.time_text(retry_at) if retry_at and status is DeliveryStatus.FAILED else None
        )
        settled = connection.execute(
            "UPDATE deliveries SET status = ?, last_error = ?, next_attempt_at = ?,"
            " delivered_at = CASE WHEN ? = 'delivered' THEN ? ELSE delivered_at END,"
            " attempts = attempts + 1, claimed_by = NULL, lease_until = NULL"
            " WHERE id = ? AND claimed_by = ? AND status IN ('pending', 'failed')"
            " RETURNING notification_id, channel",
            (
                status.value,
                settled_note(outcome),
                next_attempt,
                status.value,
                now,
                delivery_id,
                worker_id,
            ),
        ).fetchone()
        if settled is None:
            return False
        if status is DeliveryStatus.DELIVERED:
            connection.execute(
                "UPDATE notifications SET dispatched_via = json_insert(dispatched_via, '$[#]', ?)"
                " WHERE id = ?",
                (settled["channel"], settled["notification_id"]),
            )
        return True

    async def deliveries(
        self, status: DeliveryStatus | None = None, limit: int = 100
    ) -> Sequence[DeliveryRecord]:
        def read(connection: sqlite3.Connection) -> list[DeliveryRecord]:
            found = connection.execute(
                "SELECT d.*, d.id AS delivery_id, n.user_id, n.kind FROM deliveries d"
                " JOIN notifications n ON n.id = d.notification_id"
                " WHERE ? IS NULL OR d.status = ? ORDER BY n.created_at DESC, d.channel LIMIT ?",
                (status and status.value, status and status.value, limit),
            )
            return [rowmaps.delivery_record(row, SQLITE) for row in found]

        return await self._db.read(read)

    async def requeue_delivery(self, delivery_id: str) -> bool:
        def requeue(connection: sqlite3.Connection) -> bool:
            found = connection.execute(
                "UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = ?,"
                " claimed_by = NULL, lease_until = NULL"
                " WHERE id = ? AND status = 'dead' RETURNING id",
                (self._db.now(), delivery_id),
            ).fetchone()
            return found is not None

        return await self._db.write(requeue)


def _notification(connection: sqlite3.Connection, notification_id: str) -> Notification:
    row = connection.execute("SELECT * FROM notifications WHERE id = ?", (notification_id,))
    return rowmaps.notification(row.fetchone(), SQLITE)


def _marks(values: Collection[str]) -> str:
    """One placeholder per value, for ``IN (...)``."""
    return ",".join("?" * len(values))

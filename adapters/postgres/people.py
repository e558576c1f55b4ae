"""Per-user tables: the inbox, contact points and preferences."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from psycopg import AsyncCursor

from tidings.adapters import rowmaps
from tidings.adapters.postgres.connection import PostgresDatabase
from tidings.adapters.postgres.rows import NOTIFICATION_COLUMNS, POSTGRES, Row
from tidings.adapters.zones import stored_zone
from tidings.core.contacts import changed_recipient, disabled_webhook
from tidings.core.quiet_hours import QuietHours
from tidings.core.records import Notification, Recipient, RecipientChange
from tidings.core.values import Preference, stored_preference


class PostgresPeople:
    """The inbox, contact points and preferences of each user."""

    def __init__(self, database: PostgresDatabase) -> None:
        self._db = database

    async def inbox(
        self, user_id: str, *, unread_only: bool = False, limit: int = 50
    ) -> Sequence[Notification]:
        async with self._db.cursor(transaction=False) as cursor:
            await cursor.execute(
                f"SELECT {NOTIFICATION_COLUMNS} FROM notifications n WHERE n.user_id = %s"
                " AND (NOT %s OR n.read_at IS NULL) ORDER BY n.created_at DESC LIMIT %s",
                (user_id, unread_only, limit),
            )
            found = await cursor.fetchall()
        return [rowmaps.notification(row, POSTGRES) for row in found]

    async def unread_count(self, user_id: str) -> int:
        async with self._db.cursor(transaction=False) as cursor:
            await cursor.execute(
                "SELECT count(*) AS unread FROM notifications"
                " WHERE user_id = %s AND read_at IS NULL",
                (user_id,),
            )
            row = await cursor.fetchone()
        assert row is not None
        return int(row["unread"])

    async def mark_read(self, user_id: str, notification_id: str) -> bool:
        async with self._db.cursor() as cursor:
            await self._db.execute(
                cursor,
                "UPDATE notifications SET read_at = coalesce(read_at, {now})"
                " WHERE id = %(id)s AND user_id = %(user)s RETURNING id",
                id=notification_id,
                user=user_id,
            )
            return await cursor.fetchone() is not None

    async def mark_all_read(self, user_id: str) -> int:
        async with self._db.cursor() as cursor:
            await self._db.execute(
                cursor,
                "UPDATE notifications SET read_at = {now}"
                " WHERE user_id = %(user)s AND read_at IS NULL",
                user=user_id,
            )
            return cursor.rowcount

    # -- recipients ----------------------------------------------------------------

    async def recipient(self, user_id: str) -> Recipient | None:
        async with self._db.cursor(transaction=False) as cursor:
            await cursor.execute("SELECT * FROM recipients WHERE user_id = %s", (user_id,))
            row = await cursor.fetchone()
        return rowmaps.recipient(row) if row else None

    async def update_recipient(self, change: RecipientChange) -> Recipient:
        async with self._db.cursor() as cursor:
            # A row to lock first, so that two changes for a new user run one after
            # the other instead of both inserting.
            await cursor.execute(
                "INSERT INTO recipients (user_id) VALUES (%s) ON CONFLICT (user_id) DO NOTHING",
                (change.user_id,),
            )
            stored = changed_recipient(await _locked(cursor, change.user_id), change)
            await cursor.execute(
                "UPDATE recipients SET email = %s, webhook_url = %s, webhook_secret = %s,"
                " webhook_disabled = %s WHERE user_id = %s",
                (stored.email, stored.webhook_url, stored.webhook_secret,
                 stored.webhook_disabled, stored.user_id),
            )  # fmt: skip
        return stored

    async def disable_webhook(self, user_id: str, url: str, reason: str) -> None:
        async with self._db.cursor() as cursor:
            disabled = disabled_webhook(await _locked(cursor, user_id), url, reason)
            if disabled is not None:
                await cursor.execute(
                    "UPDATE recipients SET webhook_disabled = %s WHERE user_id = %s",
                    (disabled.webhook_disabled, user_id),
                )

    # -- preferences ---------------------------------------------------------------

    async def set_preference(self, user_id: str, kind: str, preference: Preference) -> Preference:
        stored = stored_preference(preference)
        async with self._db.cursor() as cursor:
            await self._db.execute(
                cursor,
                "INSERT INTO notification_preferences"
                " (user_id, kind, channels, min_severity, updated_at, digest)"
                " VALUES (%(user)s, %(kind)s, %(channels)s, %(minimum)s, {now}, %(digest)s)"
                " ON CONFLICT (user_id, kind) DO UPDATE SET channels = excluded.channels,"
                " min_severity = excluded.min_severity, updated_at = excluded.updated_at,"
                " digest = excluded.digest",
                user=user_id,
                kind=kind,
                channels=list(stored.channels),
                minimum=stored.min_severity.value,
                digest=stored.digest,
            )
        return stored

    async def preferences(self, user_id: str) -> Mapping[str, Preference]:
        async with self._db.cursor(transaction=False) as cursor:
            await cursor.execute(
                "SELECT kind, channels, min_severity, digest FROM notification_preferences"
                " WHERE user_id = %s ORDER BY kind",
                (user_id,),
            )
            found = await cursor.fetchall()
        return {row["kind"]: rowmaps.preference(row, POSTGRES) for row in found}

    # -- quiet hours -----------------------------------------------------------------

    async def set_quiet_hours(self, user_id: str, window: QuietHours | None) -> None:
        columns = None if window is None else _quiet_hours_columns(window)
        async with self._db.cursor() as cursor:
            if columns is None:
                await cursor.execute("DELETE FROM quiet_hours WHERE user_id = %s", (user_id,))
                return
            await cursor.execute(
                "INSERT INTO quiet_hours (user_id, starts, ends, zone) VALUES (%s, %s, %s, %s)"
                " ON CONFLICT (user_id) DO UPDATE SET starts = excluded.starts,"
                " ends = excluded.ends, zone = excluded.zone",
                (user_id, *columns),
            )

    async def quiet_hours(self, user_id: str) -> QuietHours | None:
        async with self._db.cursor(transaction=False) as cursor:
            await cursor.execute(
                "SELECT starts, ends, zone FROM quiet_hours WHERE user_id = %s", (user_id,)
            )
            row = await cursor.fetchone()
        return rowmaps.quiet_hours(row) if row else None


async def _locked(cursor: AsyncCursor[Row], user_id: str) -> Recipient | None:
    """The user's recipient row, locked until the transaction ends."""
    await cursor.execute("SELECT * FROM recipients WHERE user_id = %s FOR UPDATE", (user_id,))
    row = await cursor.fetchone()
    return rowmaps.recipient(row) if row else None


def _quiet_hours_columns(window: QuietHours) -> tuple[str, str, str]:
    """starts, ends ('HH:MM') and the zone's name, as the row keeps them."""
    return f"{window.starts:%H:%M}", f"{window.ends:%H:%M}", stored_zone(window.zone).key

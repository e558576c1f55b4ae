"""Per-user tables: the inbox, contact points and preferences."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from tidings.adapters import rowmaps
from tidings.adapters.postgres.connection import PostgresConnection
from tidings.adapters.postgres.rows import NOTIFICATION_COLUMNS, POSTGRES
from tidings.core import Preference, normalise_channel_names
from tidings.core.records import (
    Notification,
    Recipient,
)


class PeopleTables(PostgresConnection):
    """The inbox, contact points and preferences of each user."""

    async def inbox(
        self, user_id: str, *, unread_only: bool = False, limit: int = 50
    ) -> Sequence[Notification]:
        async with self._cursor(transaction=False) as cursor:
            await cursor.execute(
                f"SELECT {NOTIFICATION_COLUMNS} FROM notifications n WHERE n.user_id = %s"
                " AND (NOT %s OR n.read_at IS NULL) ORDER BY n.created_at DESC LIMIT %s",
                (user_id, unread_only, limit),
            )
            found = await cursor.fetchall()
        return [rowmaps.notification(row, POSTGRES) for row in found]

    async def unread_count(self, user_id: str) -> int:
        async with self._cursor(transaction=False) as cursor:
            await cursor.execute(
                "SELECT count(*) AS unread FROM notifications"
                " WHERE user_id = %s AND read_at IS NULL",
                (user_id,),
            )
            row = await cursor.fetchone()
        assert row is not None
        return int(row["unread"])

    async def mark_read(self, user_id: str, notification_id: str) -> bool:
        async with self._cursor() as cursor:
            await self._execute(
                cursor,
                "UPDATE notifications SET read_at = coalesce(read_at, {now})"
                " WHERE id = %(id)s AND user_id = %(user)s RETURNING id",
                id=notification_id,
                user=user_id,
            )
            return await cursor.fetchone() is not None

    async def mark_all_read(self, user_id: str) -> int:
        async with self._cursor() as cursor:
            await self._execute(
                cursor,
                "UPDATE notifications SET read_at = {now}"
                " WHERE user_id = %(user)s AND read_at IS NULL",
                user=user_id,
            )
            return cursor.rowcount

    # -- recipients ----------------------------------------------------------------

    async def recipient(self, user_id: str) -> Recipient | None:
        async with self._cursor(transaction=False) as cursor:
            await cursor.execute("SELECT * FROM recipients WHERE user_id = %s", (user_id,))
            row = await cursor.fetchone()
        return rowmaps.recipient(row) if row else None

    async def set_recipient(self, recipient: Recipient) -> None:
        async with self._cursor() as cursor:
            await cursor.execute(
                "INSERT INTO recipients AS r (user_id, email, webhook_url, webhook_secret)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT (user_id) DO UPDATE SET"
                " email = excluded.email, webhook_secret = excluded.webhook_secret,"
                " webhook_disabled = CASE WHEN r.webhook_url IS NOT DISTINCT FROM"
                "  excluded.webhook_url THEN r.webhook_disabled END,"
                " webhook_url = excluded.webhook_url",
                (recipient.user_id, recipient.email, recipient.webhook_url,
                 recipient.webhook_secret),
            )  # fmt: skip

    async def disable_webhook(self, user_id: str, url: str, reason: str) -> None:
        async with self._cursor() as cursor:
            await cursor.execute(
                "UPDATE recipients SET webhook_disabled = %s"
                " WHERE user_id = %s AND webhook_url = %s",
                (reason, user_id, url),
            )

    # -- preferences ---------------------------------------------------------------

    async def set_preference(self, user_id: str, kind: str, preference: Preference) -> Preference:
        stored = Preference(normalise_channel_names(preference.channels), preference.min_severity)
        async with self._cursor() as cursor:
            await self._execute(
                cursor,
                "INSERT INTO notification_preferences"
                " VALUES (%(user)s, %(kind)s, %(channels)s, %(minimum)s, {now})"
                " ON CONFLICT (user_id, kind) DO UPDATE SET channels = excluded.channels,"
                " min_severity = excluded.min_severity, updated_at = excluded.updated_at",
                user=user_id,
                kind=kind,
                channels=list(stored.channels),
                minimum=stored.min_severity.value,
            )
        return stored

    async def preferences(self, user_id: str) -> Mapping[str, Preference]:
        async with self._cursor(transaction=False) as cursor:
            await cursor.execute(
                "SELECT kind, channels, min_severity FROM notification_preferences"
                " WHERE user_id = %s ORDER BY kind",
                (user_id,),
            )
            found = await cursor.fetchall()
        return {row["kind"]: rowmaps.preference(row, POSTGRES) for row in found}

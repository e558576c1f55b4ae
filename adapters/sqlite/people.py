"""Per-user tables: the inbox, contact points and preferences."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence

from tidings.adapters import rowmaps
from tidings.adapters.sqlite.connection import SqliteConnection
from tidings.adapters.sqlite.rows import SQLITE
from tidings.core import Preference, normalise_channel_names
from tidings.core.records import (
    Notification,
    Recipient,
)


class PeopleTables(SqliteConnection):
    """The inbox, contact points and preferences of each user."""

    async def inbox(
        self, user_id: str, *, unread_only: bool = False, limit: int = 50
    ) -> Sequence[Notification]:
        def read() -> list[Notification]:
            found = self._conn().execute(
                "SELECT * FROM notifications WHERE user_id = ?"
                " AND (? = 0 OR read_at IS NULL) ORDER BY created_at DESC LIMIT ?",
                (user_id, int(unread_only), limit),
            )
            return [rowmaps.notification(row, SQLITE) for row in found]

        return await self._call(read)

    async def unread_count(self, user_id: str) -> int:
        def count() -> int:
            return int(
                self._conn()
                .execute(
                    "SELECT count(*) FROM notifications WHERE user_id = ? AND read_at IS NULL",
                    (user_id,),
                )
                .fetchone()[0]
            )

        return await self._call(count)

    async def mark_read(self, user_id: str, notification_id: str) -> bool:
        def mark(connection: sqlite3.Connection) -> bool:
            found = connection.execute(
                "UPDATE notifications SET read_at = coalesce(read_at, ?)"
                " WHERE id = ? AND user_id = ? RETURNING id",
                (self._now(), notification_id, user_id),
            ).fetchone()
            return found is not None

        return await self._call(self._write, mark)

    async def mark_all_read(self, user_id: str) -> int:
        def mark(connection: sqlite3.Connection) -> int:
            return connection.execute(
                "UPDATE notifications SET read_at = ? WHERE user_id = ? AND read_at IS NULL",
                (self._now(), user_id),
            ).rowcount

        return await self._call(self._write, mark)

    # -- recipients ----------------------------------------------------------------

    async def recipient(self, user_id: str) -> Recipient | None:
        def read() -> Recipient | None:
            row = (
                self._conn()
                .execute("SELECT * FROM recipients WHERE user_id = ?", (user_id,))
                .fetchone()
            )
            return rowmaps.recipient(row) if row else None

        return await self._call(read)

    async def set_recipient(self, recipient: Recipient) -> None:
        await self._call(
            self._write,
            lambda c: c.execute(
                "INSERT INTO recipients (user_id, email, webhook_url, webhook_secret)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (user_id) DO UPDATE SET"
                " email = excluded.email, webhook_secret = excluded.webhook_secret,"
                " webhook_disabled = CASE WHEN webhook_url IS excluded.webhook_url"
                "  THEN webhook_disabled END, webhook_url = excluded.webhook_url",
                (recipient.user_id, recipient.email, recipient.webhook_url,
                 recipient.webhook_secret),
            ),
        )  # fmt: skip

    async def disable_webhook(self, user_id: str, url: str, reason: str) -> None:
        await self._call(
            self._write,
            lambda c: c.execute(
                "UPDATE recipients SET webhook_disabled = ? WHERE user_id = ? AND webhook_url = ?",
                (reason, user_id, url),
            ),
        )

    # -- preferences ---------------------------------------------------------------

    async def set_preference(self, user_id: str, kind: str, preference: Preference) -> Preference:
        stored = Preference(normalise_channel_names(preference.channels), preference.min_severity)

        def write(connection: sqlite3.Connection) -> None:
            connection.execute(
                "INSERT INTO notification_preferences VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (user_id, kind) DO UPDATE SET channels = excluded.channels,"
                " min_severity = excluded.min_severity, updated_at = excluded.updated_at",
                (
                    user_id,
                    kind,
                    json.dumps(list(stored.channels)),
                    stored.min_severity.value,
                    self._now(),
                ),
            )

        await self._call(self._write, write)
        return stored

    async def preferences(self, user_id: str) -> Mapping[str, Preference]:
        def read() -> dict[str, Preference]:
            found = self._conn().execute(
                "SELECT kind, channels, min_severity FROM notification_preferences"
                " WHERE user_id = ? ORDER BY kind",
                (user_id,),
            )
            return {row["kind"]: rowmaps.preference(row, SQLITE) for row in found}

        return await self._call(read)

"""Per-user tables: the inbox, contact points and preferences."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence

from tidings.adapters import rowmaps
from tidings.adapters.sqlite.connection import SqliteDatabase
from tidings.adapters.sqlite.rows import SQLITE
from tidings.adapters.zones import stored_zone
from tidings.core.contacts import changed_recipient, disabled_webhook
from tidings.core.quiet_hours import QuietHours
from tidings.core.records import Notification, Recipient, RecipientChange
from tidings.core.values import Preference, stored_preference


class SqlitePeople:
    """The inbox, contact points and preferences of each user."""

    def __init__(self, database: SqliteDatabase) -> None:
        self._db = database

    async def inbox(
        self, user_id: str, *, unread_only: bool = False, limit: int = 50
    ) -> Sequence[Notification]:
        def read(connection: sqlite3.Connection) -> list[Notification]:
            found = connection.execute(
                "SELECT * FROM notifications WHERE user_id = ?"
                " AND (? = 0 OR read_at IS NULL) ORDER BY created_at DESC LIMIT ?",
                (user_id, int(unread_only), limit),
            )
            return [rowmaps.notification(row, SQLITE) for row in found]

        return await self._db.read(read)

    async def unread_count(self, user_id: str) -> int:
        def count(connection: sqlite3.Connection) -> int:
            found = connection.execute(
                "SELECT count(*) FROM notifications WHERE user_id = ? AND read_at IS NULL",
                (user_id,),
            )
            return int(found.fetchone()[0])

        return await self._db.read(count)

    async def mark_read(self, user_id: str, notification_id: str) -> bool:
        def mark(connection: sqlite3.Connection) -> bool:
            found = connection.execute(
                "UPDATE notifications SET read_at = coalesce(read_at, ?)"
                " WHERE id = ? AND user_id = ? RETURNING id",
                (self._db.now(), notification_id, user_id),
            ).fetchone()
            return found is not None

        return await self._db.write(mark)

    async def mark_all_read(self, user_id: str) -> int:
        def mark(connection: sqlite3.Connection) -> int:
            return connection.execute(
                "UPDATE notifications SET read_at = ? WHERE user_id = ? AND read_at IS NULL",
                (self._db.now(), user_id),
            ).rowcount

        return await self._db.write(mark)

    # -- recipients ----------------------------------------------------------------

    async def recipient(self, user_id: str) -> Recipient | None:
        return await self._db.read(lambda c: _recipient(c, user_id))

    async def update_recipient(self, change: RecipientChange) -> Recipient:
        def update(connection: sqlite3.Connection) -> Recipient:
            stored = changed_recipient(_recipient(connection, change.user_id), change)
            connection.execute(
                "INSERT INTO recipients (user_id, email, webhook_url, webhook_secret,"
                " webhook_disabled) VALUES (?, ?, ?, ?, ?) ON CONFLICT (user_id) DO UPDATE SET"
                " email = excluded.email, webhook_url = excluded.webhook_url,"
                " webhook_secret = excluded.webhook_secret,"
                " webhook_disabled = excluded.webhook_disabled",
                (stored.user_id, stored.email, stored.webhook_url, stored.webhook_secret,
                 stored.webhook_disabled),
            )  # fmt: skip
            return stored

        return await self._db.write(update)

    async def disable_webhook(self, user_id: str, url: str, reason: str) -> None:
        def disable(connection: sqlite3.Connection) -> None:
            disabled = disabled_webhook(_recipient(connection, user_id), url, reason)
            if disabled is not None:
                connection.execute(
                    "UPDATE recipients SET webhook_disabled = ? WHERE user_id = ?",
                    (disabled.webhook_disabled, user_id),
                )

        await self._db.write(disable)

    # -- preferences ---------------------------------------------------------------

    async def set_preference(self, user_id: str, kind: str, preference: Preference) -> Preference:
        stored = stored_preference(preference)

        def write(connection: sqlite3.Connection) -> None:
            connection.execute(
                "INSERT INTO notification_preferences"
                " (user_id, kind, channels, min_severity, updated_at, digest)"
                " VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (user_id, kind) DO UPDATE SET channels = excluded.channels,"
                " min_severity = excluded.min_severity, updated_at = excluded.updated_at,"
                " digest = excluded.digest",
                (
                    user_id,
                    kind,
                    json.dumps(list(stored.channels)),
                    stored.min_severity.value,
                    self._db.now(),
                    None if stored.digest is None else int(stored.digest),
                ),
            )

        await self._db.write(write)
        return stored

    async def preferences(self, user_id: str) -> Mapping[str, Preference]:
        def read(connection: sqlite3.Connection) -> dict[str, Preference]:
            found = connection.execute(
                "SELECT kind, channels, min_severity, digest FROM notification_preferences"
                " WHERE user_id = ? ORDER BY kind",
                (user_id,),
            )
            return {row["kind"]: rowmaps.preference(row, SQLITE) for row in found}

        return await self._db.read(read)

    # -- quiet hours -----------------------------------------------------------------

    async def set_quiet_hours(self, user_id: str, window: QuietHours | None) -> None:
        columns = None if window is None else _quiet_hours_columns(window)

        def write(connection: sqlite3.Connection) -> None:
            if columns is None:
                connection.execute("DELETE FROM quiet_hours WHERE user_id = ?", (user_id,))
                return
            connection.execute(
                "INSERT INTO quiet_hours (user_id, starts, ends, zone) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (user_id) DO UPDATE SET starts = excluded.starts,"
                " ends = excluded.ends, zone = excluded.zone",
                (user_id, *columns),
            )

        await self._db.write(write)

    async def quiet_hours(self, user_id: str) -> QuietHours | None:
        def read(connection: sqlite3.Connection) -> QuietHours | None:
            row = connection.execute(
                "SELECT starts, ends, zone FROM quiet_hours WHERE user_id = ?", (user_id,)
            ).fetchone()
            return rowmaps.quiet_hours(row) if row else None

        return await self._db.read(read)


def _recipient(connection: sqlite3.Connection, user_id: str) -> Recipient | None:
    row = connection.execute("SELECT * FROM recipients WHERE user_id = ?", (user_id,)).fetchone()
    return rowmaps.recipient(row) if row else None


def _quiet_hours_columns(window: QuietHours) -> tuple[str, str, str]:
    """starts, ends ('HH:MM') and the zone's name, as the row keeps them."""
    return f"{window.starts:%H:%M}", f"{window.ends:%H:%M}", stored_zone(window.zone).key

"""The embedded default store: one SQLite file, WAL mode, zero setup.

sqlite3 blocks, so every call runs on one dedicated thread that owns the connection:
the event loop never waits on the disk, and calls are serialised as SQLite wants.
Each write is one ``BEGIN IMMEDIATE`` transaction, so several processes sharing the
file take turns instead of failing to upgrade a read lock.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import TypeVar

from adapters import rowmaps
from adapters.migrations import load_migrations
from adapters.recording import BatchRecorder
from adapters.sqlite import decisions, rows
from adapters.sqlite.rows import SQLITE
from core import GLOBAL_KIND, Event, Preference, normalise_channel_names
from core.decision import DecisionInputs
from core.ports import DecideFn, StoreUnavailable
from core.records import (
    DEFAULT_LEASE,
    Backlog,
    ChannelOutcome,
    DecidedEvent,
    DeliveryJob,
    DeliveryRecord,
    DeliveryStatus,
    EventRecord,
    IntakeItem,
    Notification,
    Recipient,
    RecordedEvent,
    settled_note,
    settled_status,
)
from core.validation import InvalidEvent

_T = TypeVar("_T")

# Written so SQLite can answer from the partial index of open events.
_CLAIMABLE = "status IN ('pending', 'claimed') AND (status = 'pending' OR lease_until <= :now)"
_DUE = "status IN ('pending', 'failed') AND next_attempt_at <= :now"


class SqliteStore:
    """Every port on one SQLite database file. ``clock`` gives "now"; the runner owns it."""

    def __init__(
        self, path: str, clock: Callable[[], datetime], lease: timedelta = DEFAULT_LEASE
    ) -> None:
        self._path = path
        self._clock = clock
        self._lease = lease
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tidings-sqlite")
        self._connection: sqlite3.Connection | None = None

    async def _call(self, function: Callable[..., _T], *args: object) -> _T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, function, *args)
        except sqlite3.OperationalError as error:
            # Locked past the busy timeout, disk full, file gone: the runner waits.
            raise StoreUnavailable(f"SQLite unavailable: {error}") from error

    def _conn(self) -> sqlite3.Connection:
        if self._connection is None:
            connection = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            connection.row_factory = sqlite3.Row
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute("PRAGMA synchronous = NORMAL")
            connection.execute("PRAGMA busy_timeout = 10000")
            connection.execute("PRAGMA foreign_keys = ON")
            self._connection = connection
        return self._connection

    def _now(self) -> str:
        return rows.time_text(self._clock())

    def _write(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        connection = self._conn()
        connection.execute("BEGIN IMMEDIATE")
        try:
            result = work(connection)
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")
        return result

    async def close(self) -> None:
        def close_connection() -> None:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

        await self._call(close_connection)
        self._executor.shutdown(wait=True)

    # -- schema --------------------------------------------------------------------

    async def migrate(self) -> int:
        return await self._call(self._write, self._migrate)

    def _migrate(self, connection: sqlite3.Connection) -> int:
        connection.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations"
            " (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
        applied = {row[0] for row in connection.execute("SELECT version FROM schema_migrations")}
        pending = [m for m in load_migrations("adapters.sqlite") if m.version not in applied]
        for migration in pending:
            for statement in _statements(migration.sql):
                connection.execute(statement)
            connection.execute(
                "INSERT INTO schema_migrations VALUES (?, ?, ?)",
                (migration.version, migration.name, self._now()),
            )
        return len(pending)

    # -- intake --------------------------------------------------------------------

    async def enqueue(self, events: Sequence[Event]) -> int:
        return await self._call(self._write, lambda c: self._enqueue(c, events))

    def _enqueue(self, connection: sqlite3.Connection, events: Sequence[Event]) -> int:
        now = self._now()
        before = connection.total_changes
        connection.executemany(
            "INSERT OR IGNORE INTO events (event_id, user_id, kind, severity, title, body,"
            " payload_json, enqueued_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    e.event_id,
                    e.user_id,
                    e.kind,
                    e.severity.value,
                    e.title,
                    e.body,
                    e.payload_json,
                    now,
                )
                for e in events
            ],
        )
        return connection.total_changes - before

    async def claim_events(self, worker_id: str, limit: int) -> Sequence[IntakeItem]:
        def claim(connection: sqlite3.Connection) -> list[IntakeItem]:
            now = self._clock()
            found = connection.execute(
                "UPDATE events SET status = 'claimed', claimed_by = :worker, lease_until = :lease"
                f" WHERE seq IN (SELECT seq FROM events WHERE {_CLAIMABLE}"
                " ORDER BY seq LIMIT :limit)"
                " RETURNING *",
                {
                    "worker": worker_id,
                    "lease": rows.time_text(now + self._lease),
                    "now": rows.time_text(now),
                    "limit": limit,
                },
            ).fetchall()
            found.sort(key=lambda row: row["seq"])
            return [rowmaps.intake_item(row) for row in found]

        return await self._call(self._write, claim)

    async def reject_event(self, worker_id: str, event_id: str, error: InvalidEvent) -> None:
        await self._call(
            self._write,
            lambda c: c.execute(
                "UPDATE events SET status = 'rejected', error = ?, decided_at = ?,"
                " claimed_by = NULL, lease_until = NULL"
                " WHERE event_id = ? AND status = 'claimed' AND claimed_by = ?",
                (str(error), self._now(), event_id, worker_id),
            ),
        )

    async def backlog(self) -> Backlog:
        def count() -> Backlog:
            connection = self._conn()
            now = {"now": self._now()}
            events = connection.execute(
                "SELECT count(*) FROM events WHERE status IN ('pending', 'claimed')"
            ).fetchone()[0]
            due = connection.execute(f"SELECT count(*) FROM deliveries WHERE {_DUE}", now)
            return Backlog(events=events, due_deliveries=due.fetchone()[0])

        return await self._call(count)

    async def renew_claims(self, worker_id: str) -> None:
        def renew(connection: sqlite3.Connection) -> None:
            values = (rows.time_text(self._clock() + self._lease), worker_id)
            connection.execute(
                # The IN term lets SQLite use the partial index of open events.
                "UPDATE events SET lease_until = ? WHERE status IN ('pending', 'claimed')"
                " AND status = 'claimed' AND claimed_by = ?",
                values,
            )
            connection.execute(
                "UPDATE deliveries SET lease_until = ? WHERE status IN ('pending', 'failed')"
                " AND claimed_by = ?",
                values,
            )

        await self._call(self._write, renew)

    async def wait_for_events(self, at_most: float) -> None:
        # SQLite has no notifications; the runner's poll interval is the wait.
        await asyncio.sleep(at_most)

    # -- decisions -----------------------------------------------------------------

    async def record_decisions(
        self, worker_id: str, events: Sequence[Event], decide: DecideFn
    ) -> Sequence[RecordedEvent]:
        def record(connection: sqlite3.Connection) -> list[RecordedEvent]:
            mine = decisions.claimed_by(connection, worker_id, events)
            if not mine:
                return []
            keys = {(e.user_id, e.kind) for e in events if e.event_id in mine}
            preferences, last_sent = decisions.load_inputs(connection, keys)
            now = self._clock()
            recorder = BatchRecorder(
                worker_id=worker_id,
                decide=decide,
                now=now,
                lease_until=now + self._lease,
                preferences=preferences,
                last_sent=last_sent,
            )
            recorded = recorder.record_claimed(events, mine)
            decisions.write(connection, recorder)
            return recorded

        return await self._call(self._write, record)

    async def event_record(self, event_id: str) -> EventRecord | None:
        def read() -> EventRecord | None:
            row = (
                self._conn()
                .execute(
                    "SELECT *, decision_json AS decision FROM events WHERE event_id = ?",
                    (event_id,),
                )
                .fetchone()
            )
            return rowmaps.event_record(row, SQLITE) if row else None

        return await self._call(read)

    # -- deliveries ----------------------------------------------------------------

    async def claim_due_deliveries(self, worker_id: str, limit: int) -> Sequence[DeliveryJob]:
        def claim(connection: sqlite3.Connection) -> list[DeliveryJob]:
            now = self._clock()
            claimed = connection.execute(
                "UPDATE deliveries SET claimed_by = :worker, lease_until = :lease"
                f" WHERE id IN (SELECT id FROM deliveries WHERE {_DUE}"
                " AND (claimed_by IS NULL OR lease_until <= :now)"
                " ORDER BY next_attempt_at LIMIT :limit)"
                " RETURNING id AS delivery_id, notification_id, channel, attempts",
                {
                    "worker": worker_id,
                    "lease": rows.time_text(now + self._lease),
                    "now": rows.time_text(now),
                    "limit": limit,
                },
            ).fetchall()
            return [
                rowmaps.delivery_job(row, self._notification(connection, row["notification_id"]))
                for row in claimed
            ]

        return await self._call(self._write, claim)

    def _notification(self, connection: sqlite3.Connection, notification_id: str) -> Notification:
        row = connection.execute(
            "SELECT * FROM notifications WHERE id = ?", (notification_id,)
        ).fetchone()
        return rowmaps.notification(row, SQLITE)

    async def settle_delivery(
        self,
        worker_id: str,
        delivery_id: str,
        outcome: ChannelOutcome,
        retry_at: datetime | None,
    ) -> bool:
        return await self._call(
            self._write, lambda c: self._settle(c, worker_id, delivery_id, outcome, retry_at)
        )

    def _settle(
        self,
        connection: sqlite3.Connection,
        worker_id: str,
        delivery_id: str,
        outcome: ChannelOutcome,
        retry_at: datetime | None,
    ) -> bool:
        now = self._now()
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
        def read() -> list[DeliveryRecord]:
            found = self._conn().execute(
                "SELECT d.*, d.id AS delivery_id, n.user_id, n.kind FROM deliveries d"
                " JOIN notifications n ON n.id = d.notification_id"
                " WHERE ? IS NULL OR d.status = ? ORDER BY n.created_at DESC, d.channel LIMIT ?",
                (status and status.value, status and status.value, limit),
            )
            return [rowmaps.delivery_record(row, SQLITE) for row in found]

        return await self._call(read)

    # -- inbox ---------------------------------------------------------------------

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

    # -- history -------------------------------------------------------------------

    async def decision_inputs(self, user_id: str, kind: str) -> tuple[DecisionInputs, datetime]:
        def read() -> tuple[DecisionInputs, datetime]:
            preferences, last_sent = decisions.load_inputs(self._conn(), {(user_id, kind)})
            inputs = DecisionInputs(
                kind_preference=preferences.get((user_id, kind)),
                global_preference=preferences.get((user_id, GLOBAL_KIND)),
                last_sent_at=last_sent.get((user_id, kind)),
            )
            return inputs, self._clock()

        return await self._call(read)

    async def decided_events(
        self, since: datetime, after: tuple[datetime, int] | None, limit: int
    ) -> Sequence[DecidedEvent]:
        start = after or (since, -1)

        def read() -> list[DecidedEvent]:
            found = self._conn().execute(
                "SELECT seq, event_id, user_id, kind, severity, title, body, payload_json,"
                " status, decided_at FROM events WHERE status IN ('notified', 'skipped')"
                " AND decided_at >= ? AND (decided_at > ? OR (decided_at = ? AND seq > ?))"
                " ORDER BY decided_at, seq LIMIT ?",
                (rows.time_text(since), rows.time_text(start[0]), rows.time_text(start[0]),
                 start[1], limit),
            )  # fmt: skip
            return [rowmaps.decided_event(row, SQLITE) for row in found]

        return await self._call(read)

    async def last_notified_before(self, moment: datetime) -> Mapping[tuple[str, str], datetime]:
        def read() -> dict[tuple[str, str], datetime]:
            found = self._conn().execute(
                "SELECT user_id, kind, max(created_at) AS last FROM notifications"
                " WHERE created_at < ? GROUP BY user_id, kind",
                (rows.time_text(moment),),
            )
            return {
                (row["user_id"], row["kind"]): datetime.fromisoformat(row["last"]) for row in found
            }

        return await self._call(read)

    async def all_preferences(self) -> Mapping[tuple[str, str], Preference]:
        def read() -> dict[tuple[str, str], Preference]:
            found = self._conn().execute(
                "SELECT user_id, kind, channels, min_severity FROM notification_preferences"
            )
            return {(row["user_id"], row["kind"]): rowmaps.preference(row, SQLITE) for row in found}

        return await self._call(read)

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

    async def requeue_delivery(self, delivery_id: str) -> bool:
        def requeue(connection: sqlite3.Connection) -> bool:
            found = connection.execute(
                "UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = ?,"
                " claimed_by = NULL, lease_until = NULL"
                " WHERE id = ? AND status = 'dead' RETURNING id",
                (self._now(), delivery_id),
            ).fetchone()
            return found is not None

        return await self._call(self._write, requeue)

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


def _statements(script: str) -> list[str]:
    """Split a migration into statements (our migrations hold no ';' inside literals)."""
    lines = [line.split("--", 1)[0] for line in script.splitlines()]
    return [part.strip() for part in "\n".join(lines).split(";") if part.strip()]

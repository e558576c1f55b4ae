"""The production store: PostgreSQL through psycopg 3 (async) and a connection pool.

Any number of runners on any number of machines share one database. Claims use
``FOR UPDATE SKIP LOCKED`` with a lease; decisions are serialised per (user, kind)
(see ``decisions``); times come from the database clock unless a clock is injected
(tests). A lost connection surfaces as ``StoreUnavailable``, which the runner waits
out: every promise lives in the database, so retrying loses nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

import psycopg
import psycopg_pool
from psycopg import AsyncConnection, AsyncCursor
from psycopg.rows import dict_row

from adapters import rowmaps
from adapters.migrations import load_migrations
from adapters.postgres.decisions import record_batch
from adapters.postgres.rows import NOTIFICATION_COLUMNS, POSTGRES, Row
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

_MIGRATION_LOCK = 0x7469_6469_6E67_73  # "tidings"
_WAKE_CHANNEL = "tidings_events"


class PostgresStore:
    """Every port on PostgreSQL. Pass ``clock`` only to override the database clock."""

    def __init__(
        self,
        url: str,
        *,
        lease: timedelta = DEFAULT_LEASE,
        clock: Callable[[], datetime] | None = None,
        pool_size: int = 8,
    ) -> None:
        self._url = url
        self._lease = lease
        self._clock = clock
        self._pool = psycopg_pool.AsyncConnectionPool(
            url,
            open=False,
            min_size=1,
            max_size=pool_size,
            timeout=10.0,
            reconnect_timeout=0,
            kwargs={"autocommit": True},
        )
        self._opened = False
        self._listener: AsyncConnection[tuple[object, ...]] | None = None

    @asynccontextmanager
    async def _connection(
        self, *, transaction: bool = True
    ) -> AsyncIterator[AsyncConnection[tuple[object, ...]]]:
        """A pooled connection, in a transaction unless asked otherwise; connection
        trouble becomes ``StoreUnavailable`` (the pool drops broken connections)."""
        try:
            if not self._opened:
                await self._pool.open(wait=False)
                self._opened = True
            async with self._pool.connection() as connection:
                if transaction:
                    async with connection.transaction():
                        yield connection
                else:
                    yield connection
        except (psycopg.OperationalError, psycopg_pool.PoolTimeout) as error:
            raise StoreUnavailable(f"PostgreSQL unavailable: {error}") from error

    @asynccontextmanager
    async def _cursor(self, *, transaction: bool = True) -> AsyncIterator[AsyncCursor[Row]]:
        async with self._connection(transaction=transaction) as connection:
            yield connection.cursor(row_factory=dict_row)

    async def _execute(self, cursor: AsyncCursor[Row], text: str, **values: object) -> None:
        """Run ``text`` with named ``values``; ``{now}`` in it reads the database clock,
        or the injected clock when there is one, and ``%(lease)s`` is the lease."""
        if self._clock is None:
            text = text.replace("{now}", "clock_timestamp()")
        else:
            text = text.replace("{now}", "%(now)s")
            values["now"] = self._clock()
        values["lease"] = self._lease
        await cursor.execute(text.encode(), values)

    async def close(self) -> None:
        if self._listener is not None:
            await self._listener.close()
        await self._pool.close()

    async def migrate(self) -> int:
        async with self._cursor() as cursor:
            await cursor.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            await cursor.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY,"
                " name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            await cursor.execute("SELECT version FROM schema_migrations")
            applied = {row["version"] for row in await cursor.fetchall()}
            pending = [m for m in load_migrations("adapters.postgres") if m.version not in applied]
            for migration in pending:
                await cursor.execute(migration.sql.encode())
                await cursor.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                    (migration.version, migration.name),
                )
        return len(pending)

    # -- intake --------------------------------------------------------------------

    async def enqueue(self, events: Sequence[Event]) -> int:
        async with self._cursor() as cursor:
            await self._execute(
                cursor,
                "INSERT INTO events (event_id, user_id, kind, severity, title, body,"
                " payload_json, enqueued_at)"
                " SELECT *, {now} FROM unnest(%(ids)s::text[], %(users)s::text[],"
                " %(kinds)s::text[], %(severities)s::text[], %(titles)s::text[],"
                " %(bodies)s::text[], %(payloads)s::text[])"
                " ON CONFLICT (event_id) DO NOTHING",
                ids=[e.event_id for e in events],
                users=[e.user_id for e in events],
                kinds=[e.kind for e in events],
                severities=[e.severity.value for e in events],
                titles=[e.title for e in events],
                bodies=[e.body for e in events],
                payloads=[e.payload_json for e in events],
            )
            return cursor.rowcount

    async def claim_events(self, worker_id: str, limit: int) -> Sequence[IntakeItem]:
        async with self._cursor() as cursor:
            await self._execute(
                cursor,
                "UPDATE events SET status = 'claimed', claimed_by = %(worker)s,"
                # ANY(ARRAY(...)): walk the open-events index in order and stop at
                # the limit, instead of sorting every open event first.
                " lease_until = {now} + %(lease)s WHERE seq = ANY(ARRAY(SELECT seq FROM events"
                "  WHERE status IN ('pending', 'claimed')"
                "  AND (status = 'pending' OR lease_until <= {now})"
                "  ORDER BY seq LIMIT %(limit)s FOR UPDATE SKIP LOCKED))"
                " RETURNING seq, event_id, user_id, kind, severity, title, body, payload_json",
                worker=worker_id,
                limit=limit,
            )
            found = sorted(await cursor.fetchall(), key=lambda row: int(row["seq"]))
        return [rowmaps.intake_item(row) for row in found]

    async def reject_event(self, worker_id: str, event_id: str, error: InvalidEvent) -> None:
        async with self._cursor() as cursor:
            await self._execute(
                cursor,
                "UPDATE events SET status = 'rejected', error = %(error)s, decided_at = {now},"
                " claimed_by = NULL, lease_until = NULL WHERE event_id = %(event)s"
                " AND status = 'claimed' AND claimed_by = %(worker)s",
                error=str(error),
                event=event_id,
                worker=worker_id,
            )

    async def backlog(self) -> Backlog:
        async with self._cursor() as cursor:
            await self._execute(
                cursor,
                "SELECT (SELECT count(*) FROM events WHERE status IN ('pending', 'claimed'))"
                " AS events, (SELECT count(*) FROM deliveries WHERE status IN"
                " ('pending', 'failed') AND next_attempt_at <= {now}) AS due",
            )
            row = await cursor.fetchone()
        assert row is not None
        return Backlog(events=row["events"], due_deliveries=row["due"])

    async def renew_claims(self, worker_id: str) -> None:
        # SKIP LOCKED: rows being recorded right now are about to be released anyway,
        # and waiting on them could deadlock with that very transaction.
        async with self._cursor() as cursor:
            await self._execute(
                cursor,
                "UPDATE events SET lease_until = {now} + %(lease)s WHERE seq IN"
                " (SELECT seq FROM events WHERE status = 'claimed' AND claimed_by = %(worker)s"
                " FOR UPDATE SKIP LOCKED)",
                worker=worker_id,
            )
            await self._execute(
                cursor,
                "UPDATE deliveries SET lease_until = {now} + %(lease)s WHERE id IN"
                " (SELECT id FROM deliveries WHERE status IN ('pending', 'failed')"
                " AND claimed_by = %(worker)s FOR UPDATE SKIP LOCKED)",
                worker=worker_id,
            )

    async def wait_for_events(self, at_most: float) -> None:
        """Sleep until a NOTIFY on new events or ``at_most`` seconds; polling covers
        any wake-up lost while the listening connection was down."""
        try:
            if self._listener is None or self._listener.closed:
                self._listener = await psycopg.AsyncConnection.connect(self._url, autocommit=True)
                await self._listener.execute(f"LISTEN {_WAKE_CHANNEL}")
            async for _ in self._listener.notifies(timeout=at_most, stop_after=1):
                break
        except psycopg.OperationalError:
            self._listener = None
            await asyncio.sleep(at_most)

    # -- decisions -----------------------------------------------------------------

    async def record_decisions(
        self, worker_id: str, events: Sequence[Event], decide: DecideFn
    ) -> Sequence[RecordedEvent]:
        async with self._connection() as connection:
            now = self._clock() if self._clock is not None else None
            return await record_batch(
                connection, worker_id, events, decide, now=now, lease=self._lease
            )

    async def event_record(self, event_id: str) -> EventRecord | None:
        async with self._cursor(transaction=False) as cursor:
            await cursor.execute("SELECT * FROM events WHERE event_id = %s", (event_id,))
            row = await cursor.fetchone()
        return rowmaps.event_record(row, POSTGRES) if row else None

    # -- deliveries ----------------------------------------------------------------

    async def claim_due_deliveries(self, worker_id: str, limit: int) -> Sequence[DeliveryJob]:
        async with self._cursor() as cursor:
            await self._execute(
                cursor,
                "WITH claimed AS (UPDATE deliveries SET claimed_by = %(worker)s,"
                " lease_until = {now} + %(lease)s WHERE id IN (SELECT id FROM deliveries"
                "  WHERE status IN ('pending', 'failed') AND next_attempt_at <= {now}"
                "  AND (claimed_by IS NULL OR lease_until <= {now})"
                "  ORDER BY next_attempt_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED)"
                " RETURNING id, notification_id, channel, attempts)"
                f" SELECT c.id AS delivery_id, c.channel, c.attempts, {NOTIFICATION_COLUMNS}"
                " FROM claimed c JOIN notifications n ON n.id = c.notification_id",
                worker=worker_id,
                limit=limit,
            )
            found = await cursor.fetchall()
        return [rowmaps.delivery_job(row, rowmaps.notification(row, POSTGRES)) for row in found]

    async def settle_delivery(
        self,
        worker_id: str,
        delivery_id: str,
        outcome: ChannelOutcome,
        retry_at: datetime | None,
    ) -> bool:
        status = settled_status(outcome, retry_at)
        async with self._cursor() as cursor:
            await self._execute(
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
        async with self._cursor(transaction=False) as cursor:
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

    # -- inbox ---------------------------------------------------------------------

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

    # -- history -------------------------------------------------------------------

    async def decision_inputs(self, user_id: str, kind: str) -> tuple[DecisionInputs, datetime]:
        async with self._cursor() as cursor:
            await self._execute(
                cursor,
                "SELECT {now} AS now,"
                " (SELECT max(created_at) FROM notifications"
                "  WHERE user_id = %(user)s AND kind = %(kind)s) AS last_sent_at",
                user=user_id,
                kind=kind,
            )
            moment = await cursor.fetchone()
        found = await self.preferences(user_id)
        assert moment is not None
        inputs = DecisionInputs(
            kind_preference=found.get(kind),
            global_preference=found.get(GLOBAL_KIND),
            last_sent_at=moment["last_sent_at"],
        )
        now: datetime = moment["now"]
        return inputs, now

    async def decided_events(
        self, since: datetime, after: tuple[datetime, int] | None, limit: int
    ) -> Sequence[DecidedEvent]:
        start = after or (since, -1)
        async with self._cursor(transaction=False) as cursor:
            await cursor.execute(
                "SELECT seq, event_id, user_id, kind, severity, title, body, payload_json,"
                " status, decided_at FROM events WHERE status IN ('notified', 'skipped')"
                " AND decided_at >= %s AND (decided_at, seq) > (%s, %s)"
                " ORDER BY decided_at, seq LIMIT %s",
                (since, start[0], start[1], limit),
            )
            found = await cursor.fetchall()
        return [rowmaps.decided_event(row, POSTGRES) for row in found]

    async def last_notified_before(self, moment: datetime) -> Mapping[tuple[str, str], datetime]:
        async with self._cursor(transaction=False) as cursor:
            await cursor.execute(
                "SELECT user_id, kind, max(created_at) AS last FROM notifications"
                " WHERE created_at < %s GROUP BY user_id, kind",
                (moment,),
            )
            found = await cursor.fetchall()
        return {(row["user_id"], row["kind"]): row["last"] for row in found}

    async def all_preferences(self) -> Mapping[tuple[str, str], Preference]:
        async with self._cursor(transaction=False) as cursor:
            await cursor.execute(
                "SELECT user_id, kind, channels, min_severity FROM notification_preferences"
            )
            found = await cursor.fetchall()
        return {(row["user_id"], row["kind"]): rowmaps.preference(row, POSTGRES) for row in found}

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

    async def requeue_delivery(self, delivery_id: str) -> bool:
        async with self._cursor() as cursor:
            await self._execute(
                cursor,
                "UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = {now},"
                " claimed_by = NULL, lease_until = NULL"
                " WHERE id = %(id)s AND status = 'dead' RETURNING id",
                id=delivery_id,
            )
            return await cursor.fetchone() is not None

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

"""The production store: PostgreSQL through psycopg 3 (async) and a connection pool.

Any number of runners on any number of machines share one database. Claims use
``FOR UPDATE SKIP LOCKED`` with a lease; decisions are serialised per (user, kind)
(see ``decisions``); times come from the database clock unless a clock is injected
(tests). A lost connection surfaces as ``StoreUnavailable``, which the runner waits
out: every promise lives in the database, so retrying loses nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

import psycopg
import psycopg_pool
from psycopg import AsyncConnection, AsyncCursor
from psycopg.rows import dict_row

from tidings.adapters.migrations import load_migrations
from tidings.adapters.postgres.rows import Row
from tidings.core.ports import StoreUnavailable
from tidings.core.records import (
    DEFAULT_LEASE,
)

_MIGRATION_LOCK = 0x7469_6469_6E67_73  # "tidings"

_CONNECTION_LOST = (
    psycopg.OperationalError,
    # The server ended a session left idle inside its transaction (see below): for
    # the runner, a lost connection like any other.
    psycopg.errors.IdleInTransactionSessionTimeout,
    psycopg_pool.PoolTimeout,
)


class PostgresConnection:
    """What every part of the store shares: the pool, the clock, the schema.
    Pass ``clock`` only to override the database clock (tests)."""

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
            # A runner that stops answering inside a transaction (hung, paused, cut
            # off) would keep its claimed events locked: the server ends such a
            # session after a lease, and the events are claimable again.
            kwargs={
                "autocommit": True,
                # Short statements over a batch's rows: compiling them (JIT) costs
                # more than running them.
                "options": "-c jit=off -c idle_in_transaction_session_timeout="
                f"{max(1, round(lease.total_seconds() * 1000))}",
            },
        )
        self._opened = False
        # Where each (lane, lane count) of this runner resumes claiming, and how many
        # batches ago it last started from the oldest event (see intake).
        self._lane_positions: dict[tuple[int, int], tuple[int, int]] = {}
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
        except _CONNECTION_LOST as error:
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
            pending = [
                m for m in load_migrations("tidings.adapters.postgres") if m.version not in applied
            ]
            for migration in pending:
                await cursor.execute(migration.sql.encode())
                await cursor.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                    (migration.version, migration.name),
                )
        return len(pending)

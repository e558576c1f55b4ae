"""What every part of the PostgreSQL store shares: the pool, the listening connection,
the clock and the delivery lease.

Any number of runners on any number of machines share one database. Times come from
the database clock unless a clock is injected (tests). A lost connection surfaces as
``StoreUnavailable``, which the runner waits out: every promise lives in the database,
so retrying loses nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

import psycopg
import psycopg_pool
from psycopg import AsyncConnection, AsyncCursor
from psycopg.rows import dict_row

from tidings.adapters.postgres.rows import Row
from tidings.core.ports import StoreUnavailable

_CONNECTION_LOST = (
    psycopg.OperationalError,
    # The server ended a session left idle inside its transaction (see below): for
    # the runner, a lost connection like any other.
    psycopg.errors.IdleInTransactionSessionTimeout,
    psycopg_pool.PoolTimeout,
)


class PostgresDatabase:
    """A pool of connections to one database, opened on first use. Pass ``clock``
    only to override the database clock (tests)."""

    def __init__(
        self,
        url: str,
        *,
        lease: timedelta,
        clock: Callable[[], datetime] | None,
        pool_size: int,
    ) -> None:
        self.url = url
        self.lease = lease
        self.clock = clock
        self.pool_size = pool_size
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
        self._listener: AsyncConnection[tuple[object, ...]] | None = None

    @asynccontextmanager
    async def connection(
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
    async def cursor(self, *, transaction: bool = True) -> AsyncIterator[AsyncCursor[Row]]:
        async with self.connection(transaction=transaction) as connection:
            yield connection.cursor(row_factory=dict_row)

    async def execute(self, cursor: AsyncCursor[Row], text: str, **values: object) -> None:
        """Run ``text`` with named ``values``; ``{now}`` in it reads the database clock,
        or the injected clock when there is one, and ``%(lease)s`` is the lease."""
        if self.clock is None:
            text = text.replace("{now}", "clock_timestamp()")
        else:
            text = text.replace("{now}", "%(now)s")
            values["now"] = self.clock()
        values["lease"] = self.lease
        await cursor.execute(text.encode(), values)

    async def wait_for_notify(self, channel: str, at_most: float) -> None:
        """Sleep until a NOTIFY on ``channel`` or ``at_most`` seconds; the caller's
        polling covers any notification lost while the listening connection was down."""
        try:
            if self._listener is None or self._listener.closed:
                self._listener = await psycopg.AsyncConnection.connect(self.url, autocommit=True)
                await self._listener.execute(f"LISTEN {channel}")
            async for _ in self._listener.notifies(timeout=at_most, stop_after=1):
                break
        except psycopg.OperationalError:
            self._listener = None
            await asyncio.sleep(at_most)

    async def close(self) -> None:
        if self._listener is not None:
            await self._listener.close()
        await self._pool.close()

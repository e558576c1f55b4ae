"""What every part of the PostgreSQL store shares: the pool, the listening connection,
the clock and the delivery lease.

Any number of runners on any number of machines share one database, and each holds
connections of the server's ``max_connections`` only while it uses them: the pool
opens one on first use, more as lanes, sends and renewals need them at once (up to
``pool_size``, see ``_Budget``) and closes them again one by one once they go unused
(``_MAX_IDLE``).
The listening connection is opened by the first wait for events, so a command that
only reads or writes holds a single connection.

Times come from the database clock unless a clock is injected (tests). A lost
connection surfaces as ``StoreUnavailable``, which the runner waits out: every promise
lives in the database, so retrying loses nothing. A connection the server dropped
while it sat in the pool (a restart, a failover) is found when taken out, before any
statement needs it, and the pool reconnects with a short backoff
(``_RECONNECT_TIMEOUT``), so a restarted server is in use again within a second or two.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

import psycopg
import psycopg_pool
from psycopg import AsyncConnection, AsyncCursor
from psycopg.rows import dict_row

from tidings.adapters.postgres.rows import Row
from tidings.core.ports import StoreUnavailable

_MAX_IDLE = 2.0
"""Seconds during which fewer connections were in use than open before one of them is
closed (at most one per period): after a burst, a runner is back to two connections
(one pooled, one listening) within about ``pool_size`` periods."""
_RECONNECT_TIMEOUT = 10.0
"""How long the pool retries a connection it could not open, waiting about 1 s, then
2 s, then 4 s between attempts, before it leaves the next request to try again."""
_CHECKOUT_TIMEOUT = 10.0
"""How long a request waits for a pooled connection before the store is unavailable."""
_PATIENCE = 0.5
"""Seconds a request that can wait (all but a lane with work in hand) waits for a
connection in use to come back before the store uses one more at once (``_Budget``):
an idle runner's polls take turns even on a machine too busy to answer them at once."""

_CONNECTION_LOST = (
    psycopg.OperationalError,
    # The server ended a session left idle inside its transaction (see below): for
    # the runner, a lost connection like any other.
    psycopg.errors.IdleInTransactionSessionTimeout,
    psycopg_pool.PoolTimeout,
)


class _Budget:
    """How many pooled connections the store uses at once: one at first; one more each
    time all are in use and a request either cannot wait (work in hand) or has waited
    ``_PATIENCE`` for one to come back; up to the pool's size; and one fewer after
    each ``_MAX_IDLE`` during which they were all in use for less than a tenth of the
    time. An idle runner's lanes look for events at the same moment, and its renewals
    and retries now and then with them, each for a millisecond or two: they take turns
    on one connection, and the pool finds the others unused and closes them, where
    taking whichever connection is free would keep them all open."""

    def __init__(self, most: int) -> None:
        self._most = most
        self._allowed = 1
        self._in_use = 0
        self._changed = asyncio.Condition()
        self._period_start = self._last_change = time.monotonic()
        self._saturated = 0.0
        """Seconds of the current period with every allowed connection in use."""

    @asynccontextmanager
    async def slot(self, *, patient: bool) -> AsyncIterator[None]:
        async with self._changed:
            await self._take(patient)
        try:
            yield
        finally:
            async with self._changed:
                self._count(-1)
                self._changed.notify()

    async def _take(self, patient: bool) -> None:
        if patient and self._in_use >= self._allowed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: self._in_use < self._allowed), _PATIENCE
                )
            if self._in_use >= self._allowed:
                self._count(0)
                self._allowed = min(self._most, self._in_use + 1)
        self._count(+1)

    def _count(self, change: int) -> None:
        """Change the connections in use, after adding up how long they were all in
        use; at the end of a period, allow one fewer if that was seldom."""
        now = time.monotonic()
        if self._in_use >= self._allowed:
            self._saturated += now - self._last_change
        self._last_change = now
        self._in_use += change
        if now - self._period_start >= _MAX_IDLE:
            if self._saturated < _MAX_IDLE / 10 and self._allowed > 1:
                self._allowed -= 1
            self._period_start = now
            self._saturated = 0.0


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
            min_size=0,
            max_size=pool_size,
            max_idle=_MAX_IDLE,
            timeout=_CHECKOUT_TIMEOUT,
            check=psycopg_pool.AsyncConnectionPool.check_connection,
            reconnect_timeout=_RECONNECT_TIMEOUT,
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
        self._budget = _Budget(pool_size)
        self._listener: AsyncConnection[tuple[object, ...]] | None = None

    @asynccontextmanager
    async def connection(
        self, *, transaction: bool = True, patient: bool = True
    ) -> AsyncIterator[AsyncConnection[tuple[object, ...]]]:
        """A pooled connection, in a transaction unless asked otherwise; connection
        trouble becomes ``StoreUnavailable`` (the pool drops broken connections). Work
        in hand is not ``patient``: it does not wait for another request's connection
        before the store uses one more (``_Budget``)."""
        try:
            if not self._opened:
                await self._pool.open(wait=False)
                self._opened = True
            async with self._budget.slot(patient=patient), self._pool.connection() as connection:
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

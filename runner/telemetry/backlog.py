"""The backlog gauges: what the store still holds, read when Prometheus scrapes.

Read at scrape time, not refreshed on a timer: the store is asked only when someone
looks, and the numbers are as of the scrape. One read per scrape is cheap because each
count in ``backlog()`` walks a partial index of the open rows, never a table, so it
costs what is open, not the length of the history (bench/backlog_query.py: under a
millisecond on PostgreSQL and SQLite with 3 million events and 3 million deliveries
behind a thousand open ones; 50 to 100 ms with a million events waiting).

The read is bounded and never holds the event loop: on PostgreSQL it is an asynchronous
query on a pooled connection (psycopg cancels the statement on the server when the
wait is given up), on SQLite a read on the store's own thread. A scrape waits at most
``timeout`` for it; when the store is slow, down or failing, the scrape still answers
with every other metric and leaves the backlog gauges out (a gap in the graph, rather
than old numbers shown as new), and ``tidings_backlog_read_failures_total`` counts it.
Scrapes that arrive while a read is under way share it, so the store sees one read at
a time however many scrape.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from tidings.core.ports import PendingWork, StoreUnavailable
from tidings.core.records import Backlog

log = logging.getLogger("tidings.health")

_GAUGES: tuple[tuple[str, str, Callable[[Backlog], int]], ...] = (
    (
        "tidings_backlog_events",
        "Events stored and not decided yet (not terminal), as of the scrape.",
        lambda backlog: backlog.events,
    ),
    (
        "tidings_deliveries_due",
        "Email and webhook deliveries due now: pending or failed, their next attempt"
        " come (in the outbox or in a runner's hand), as of the scrape.",
        lambda backlog: backlog.due_deliveries,
    ),
    (
        "tidings_deliveries_waiting",
        "Pending or failed deliveries scheduled later: retries, and holds until the"
        " end of the user's quiet hours, as of the scrape.",
        lambda backlog: backlog.waiting_deliveries,
    ),
    (
        "tidings_digests_due",
        "Digests whose cooldown has ended and that are not decided yet, as of the scrape.",
        lambda backlog: backlog.due_digests,
    ),
)
_FAILURES = (
    "tidings_backlog_read_failures",
    "Scrapes whose backlog read failed or took too long; they leave the backlog gauges out.",
)
_READ_SECONDS = (
    "tidings_backlog_read_seconds",
    "How long the backlog read behind the gauges took.",
)


class BacklogGauges:
    """A Prometheus collector of the store's backlog, as of the last ``refresh()``.

    ``refresh()`` (the ``/metrics`` route awaits it before rendering) reads the store
    within ``timeout``; ``collect()`` shows what it read, or nothing of the backlog when
    that read failed.
    """

    def __init__(self, store: PendingWork, *, timeout: float = 1.0) -> None:
        self._store = store
        self._timeout = timeout
        self._reading: Backlog | None = None
        self._read_seconds = 0.0
        self._failures = 0
        self._reading_now: asyncio.Task[None] | None = None

    async def refresh(self) -> None:
        """Read the backlog, or join the read under way. Returns within ``timeout`` (and
        the moment it takes to give up a statement), whatever the store does; never
        raises for the store's sake."""
        if self._reading_now is None:
            self._reading_now = asyncio.create_task(self._read())
        # Shielded: a scrape that goes away leaves the read to the others (it ends by
        # itself within the timeout).
        await asyncio.shield(self._reading_now)

    async def close(self) -> None:
        """Give up the read under way, if any (the server is stopping)."""
        reading, self._reading_now = self._reading_now, None
        if reading is not None:
            reading.cancel()
            await asyncio.gather(reading, return_exceptions=True)

    async def _read(self) -> None:
        started = time.monotonic()
        try:
            reading = await asyncio.wait_for(self._store.backlog(), self._timeout)
        except TimeoutError:  # before OSError, of which it is a subclass
            self._failed(f"no answer within {self._timeout:g}s")
        except (StoreUnavailable, OSError) as error:
            self._failed(f"unreachable ({type(error).__name__})")
        except Exception:
            # A bug, not the store's weather: shown in full, and the scrape still
            # answers with the other metrics.
            log.exception("backlog read failed")
            self._failed(None)
        else:
            self._reading = reading
            self._read_seconds = time.monotonic() - started
        finally:
            self._reading_now = None

    def _failed(self, why: str | None) -> None:
        self._reading = None
        self._failures += 1
        if why is not None:
            # Only the kind of failure: an error's text can carry hosts or credentials.
            log.warning("backlog gauges left out of this scrape (the store: %s)", why)

    def describe(self) -> Iterator[Metric]:
        """The families, without reading anything (what registering asks for)."""
        for name, documentation, _ in _GAUGES:
            yield GaugeMetricFamily(name, documentation)
        yield GaugeMetricFamily(*_READ_SECONDS)
        yield CounterMetricFamily(*_FAILURES)

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(*_FAILURES, value=self._failures)
        reading = self._reading
        if reading is None:
            return
        for name, documentation, value in _GAUGES:
            yield GaugeMetricFamily(name, documentation, value=value(reading))
        yield GaugeMetricFamily(*_READ_SECONDS, value=self._read_seconds)

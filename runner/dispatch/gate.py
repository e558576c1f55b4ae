"""Waiting out an unreachable store, with the delivery claims' renewal first in line.

When any store call finds the store unreachable (``core.ports.StoreUnavailable``), the
gate closes: every other call waits at it, and only the renewal of the claims in hand
goes through, retried every few tenths of a second. The first renewal that succeeds
reopens the gate, so when the store comes back the claims are secured before lanes,
settles and claims compete for its connections again, and a claim still held is not
lost to another runner for want of a renewal stuck behind other work.

Nothing is lost meanwhile: an open transaction rolls back, and a call that failed is
made again once the gate reopens.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tidings.core.ports import StoreUnavailable

log = logging.getLogger("tidings.dispatch")

_T = TypeVar("_T")


class StoreGate:
    """Open while the store answers; closed from a failed call until a renewal succeeds."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        """Set while the store answers."""
        self.open.set()
        self._closed = asyncio.Event()

    def close(self, error: StoreUnavailable) -> None:
        """The store did not answer: hold every call but the renewal's."""
        if self.open.is_set():
            log.warning("store unreachable, renewing claims until it answers: %s", error)
            self.open.clear()
            self._closed.set()

    def reopen(self) -> None:
        """A renewal went through: let the other calls go."""
        if not self.open.is_set():
            log.warning("store reachable again, resuming")
            self._closed.clear()
            self.open.set()

    async def closed(self, at_most: float) -> None:
        """Return when the gate closes, or after ``at_most`` seconds."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closed.wait(), at_most)

    async def patiently(self, operation: Callable[[], Awaitable[_T]]) -> _T:
        """Run a store call once the gate is open, again after each outage, until it
        answers."""
        while True:
            await self.open.wait()
            try:
                return await operation()
            except StoreUnavailable as error:
                self.close(error)

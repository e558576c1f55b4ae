"""Waiting for the first of several things to happen, with a time limit.

The dispatch loop waits on several signals at once (a stop, the store coming back, room
in the hand, sends finishing); asyncio waits on tasks, so each signal is an
``asyncio.Event`` and these helpers wait on events, creating tasks only when none is
set yet (the common case of a hot loop costs nothing).
"""

from __future__ import annotations

import asyncio


async def first_set(*events: asyncio.Event, at_most: float | None = None) -> None:
    """Return once any of ``events`` is set, or after ``at_most`` seconds."""
    if any(event.is_set() for event in events):
        return
    waits = [asyncio.create_task(event.wait()) for event in events]
    try:
        await asyncio.wait(waits, timeout=at_most, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()


def done_event(task: asyncio.Task[None]) -> asyncio.Event:
    """An event set once ``task`` is done."""
    done = asyncio.Event()
    task.add_done_callback(lambda _: done.set())
    return done


class Arrivals:
    """Word that new events may have arrived, for every lane at once.

    One task (``listen``) waits on the store (PostgreSQL: LISTEN/NOTIFY; SQLite: its
    poll interval) and announces each wake-up. A lane takes the current ``since()``
    before it claims, and when its claim found nothing waits on it: an announcement
    made while it was claiming has already set it, so no arrival falls between the
    claim and the wait.
    """

    def __init__(self) -> None:
        self._next = asyncio.Event()

    def since(self) -> asyncio.Event:
        """Set at the first announcement from now on."""
        return self._next

    def announce(self) -> None:
        self._next.set()
        self._next = asyncio.Event()

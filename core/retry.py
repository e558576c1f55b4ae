"""When to try a failed delivery again: exponential steps with jitter, then give up.

Pure: the runner passes the jitter draw in, so the schedule can be tested exactly.
"""

from __future__ import annotations

from datetime import datetime, timedelta

DEFAULT_RETRY_SCHEDULE: tuple[timedelta, ...] = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
)
"""Waits after the 1st, 2nd, ... failed attempt; after the last one the delivery is dead."""


def next_attempt_at(
    now: datetime,
    *,
    attempts_made: int,
    schedule: tuple[timedelta, ...],
    jitter: float,
    retry_after: timedelta | None = None,
) -> datetime | None:
    """When to retry after ``attempts_made`` failed attempts, or None once exhausted.

    ``jitter`` in [0, 1) stretches the wait by up to 20% so retries of one outage
    spread out. A receiver's ``Retry-After`` is honoured when it asks for longer.
    """
    if attempts_made < 1 or attempts_made > len(schedule):
        return None
    wait = schedule[attempts_made - 1] * (1 + 0.2 * jitter)
    if retry_after is not None and retry_after > wait:
        wait = retry_after
    return now + wait

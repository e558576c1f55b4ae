"""Replays read from a store's history, page by page, so memory stays flat however long
the history; only the counts grow, with the users."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime

from tidings.core import Policy, Preference
from tidings.core.ports import History
from tidings.runner.replay.engine import Key, Replay, Replayer


async def replay(
    store: History,
    *,
    preferences: Mapping[Key, Preference],
    policy: Policy,
    since: datetime,
    progress: Callable[[int], None] | None = None,
    page_size: int = 5000,
) -> Replay:
    """Decide every event decided at or after ``since`` again, under ``preferences``
    and ``policy``, starting from the cooldowns the real notifications before
    ``since`` left. ``progress`` hears the running count of events after each page."""
    replayer = Replayer(preferences, policy, await store.last_notified_before(since))
    after: tuple[datetime, int] | None = None
    replayed = 0
    while True:
        page = await store.decided_events(since, after, page_size)
        for decided in page:
            replayer.take(decided)
        replayed += len(page)
        if progress is not None and page:
            progress(replayed)
        if len(page) < page_size:
            return replayer.result()
        after = page[-1].position

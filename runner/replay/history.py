"""Replays read from a store's history, page by page, so memory stays flat however long
the history; only the counts grow, with the users (and the keys' memory, with the keys)."""

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
    until: datetime,
    progress: Callable[[int], None] | None = None,
    page_size: int = 5000,
) -> Replay:
    """Decide every event decided at or after ``since`` again, under ``preferences``
    and ``policy`` and today's quiet hours, starting from what history left at
    ``since``: the real last notification of each (user, kind) and the events held for
    digests still pending then. Digests due by ``until`` (now, for the CLI) are sent;
    later ones count as pending. ``progress`` hears the running count of events after
    each page."""
    replayer = Replayer(
        preferences,
        policy,
        since=since,
        last_sent=await store.last_notifications_before(since),
        quiet_hours=await store.all_quiet_hours(),
        held=await store.held_for_digests_at(since),
        digests_sent=await store.digests_notified_since(since),
    )
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
            return replayer.result(until)
        after = page[-1].position

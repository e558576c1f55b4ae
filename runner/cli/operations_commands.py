"""``tidings deliveries``, ``retry`` and ``simulate``: the outbox seen and nudged (a
delivery that quiet hours hold says so, and until when), and what-if replays of recorded
decisions (runner/replay/)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import datetime

from tidings.core.decision import Plan
from tidings.core.ports import Store
from tidings.core.quiet_hours import held_until, hold_text
from tidings.core.records import DeliveryRecord, DeliveryStatus
from tidings.runner.api import AsyncTidings
from tidings.runner.config import ConfigError, load_policy
from tidings.runner.output import emit, table
from tidings.runner.replay import (
    ReplayInputError,
    parse_since,
    progress_line,
    read_preference_changes,
    replay,
    replay_json,
    replay_table,
    with_changes,
)


async def deliveries(args: argparse.Namespace, tidings: AsyncTidings) -> int:
    status = DeliveryStatus(args.status) if args.status else None
    store = tidings.runtime.store
    found = await store.deliveries(status=status, limit=args.limit)
    held = await held_notes(store, found, tidings.runtime.clock())
    rows = [
        (
            d.delivery_id,
            d.user_id,
            d.kind,
            d.channel.value,
            d.status.value,
            d.attempts,
            d.next_attempt_at,
            d.last_error or held.get(d.delivery_id),
        )
        for d in found
    ]
    emit(
        args.json,
        table(
            ("id", "user", "kind", "channel", "status", "attempts", "next_attempt", "note"), rows
        ),
        [
            {
                "delivery_id": d.delivery_id,
                "notification_id": d.notification_id,
                "user_id": d.user_id,
                "kind": d.kind,
                "channel": d.channel.value,
                "status": d.status.value,
                "attempts": d.attempts,
                "next_attempt_at": d.next_attempt_at,
                "last_error": d.last_error,
                "delivered_at": d.delivered_at,
                "held": held.get(d.delivery_id),
            }
            for d in found
        ],
    )
    return 0


RECENT_NOTIFICATIONS = 1000
"""How many of a user's newest notifications are searched for those of held deliveries:
quiet hours last less than a day, so a held delivery's notification is at most a day old."""


async def held_notes(
    store: Store, found: Sequence[DeliveryRecord], now: datetime
) -> dict[str, str]:
    """Why pending deliveries wait, by delivery id: ``held until 07:00 Europe/Berlin
    (quiet hours)``. Only quiet hours record a pending delivery due later than now
    (adapters/recording.py); the sentence is the one the decision recorded
    (``Plan.hold``), or, for a digest (whose decision is no event's), the user's quiet
    hours as they stand, when they give the very time the delivery waits for."""
    waiting = [
        d
        for d in found
        if d.status is DeliveryStatus.PENDING
        and d.next_attempt_at is not None
        and d.next_attempt_at > now
    ]
    notes: dict[str, str] = {}
    for user_id in {d.user_id for d in waiting}:
        recent = await store.inbox(user_id, limit=RECENT_NOTIFICATIONS)
        by_id = {notification.id: notification for notification in recent}
        window = await store.quiet_hours(user_id)
        for delivery in (d for d in waiting if d.user_id == user_id):
            notification = by_id.get(delivery.notification_id)
            if notification is None:
                continue
            record = await store.event_record(notification.event_id)
            if record is not None:
                outcome = record.outcome
                if isinstance(outcome, Plan) and outcome.hold is not None:
                    notes[delivery.delivery_id] = outcome.hold.text
            elif window is not None:
                until = held_until(window, notification.created_at)
                if until is not None and until == delivery.next_attempt_at:
                    notes[delivery.delivery_id] = hold_text(window, until)
    return notes


async def retry(args: argparse.Namespace, tidings: AsyncTidings) -> int:
    if not await tidings.runtime.store.requeue_delivery(args.delivery_id):
        print(f"no dead delivery {args.delivery_id}", file=sys.stderr)
        return 1
    emit(args.json, f"requeued {args.delivery_id}: due now", {"requeued": args.delivery_id})
    return 0


async def simulate(args: argparse.Namespace, tidings: AsyncTidings) -> int:
    """Replay history from ``--since`` until now under other preferences or policy
    (runner/replay/): events, digests and quiet hours' holds, per kind and per user."""
    runtime, settings = tidings.runtime, tidings.settings
    now = runtime.clock()
    try:
        since = parse_since(args.since, now)
        policy = (
            settings.policy if args.policy is None else load_policy(args.policy, settings.policy)
        )
        preferences = await runtime.store.all_preferences()
        if args.prefs is not None:
            preferences = with_changes(preferences, read_preference_changes(args.prefs))
    except (ConfigError, ReplayInputError) as error:
        print(error, file=sys.stderr)
        return 2
    progress = progress_line(sys.stderr)
    found = await replay(
        runtime.store,
        preferences=preferences,
        policy=policy,
        since=since,
        until=now,
        progress=progress,
    )
    if progress is not None:
        print(file=sys.stderr)  # keep the last count on its line
    emit(
        args.json,
        replay_table(found, args.top),
        {"since": since, "until": now, **replay_json(found)},
    )
    return 0

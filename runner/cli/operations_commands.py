"""``tidings deliveries``, ``retry`` and ``simulate``: the outbox seen and nudged, and
what-if replays of recorded decisions (runner/replay/)."""

from __future__ import annotations

import argparse
import sys

from tidings.core.records import DeliveryStatus
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
    found = await tidings.runtime.store.deliveries(status=status, limit=args.limit)
    rows = [
        (
            d.delivery_id,
            d.user_id,
            d.kind,
            d.channel.value,
            d.status.value,
            d.attempts,
            d.next_attempt_at,
            d.last_error,
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
            }
            for d in found
        ],
    )
    return 0


async def retry(args: argparse.Namespace, tidings: AsyncTidings) -> int:
    if not await tidings.runtime.store.requeue_delivery(args.delivery_id):
        print(f"no dead delivery {args.delivery_id}", file=sys.stderr)
        return 1
    emit(args.json, f"requeued {args.delivery_id}: due now", {"requeued": args.delivery_id})
    return 0


async def simulate(args: argparse.Namespace, tidings: AsyncTidings) -> int:
    """Replay history under other preferences or policy (see ``runner.simulate``)."""
    runtime, settings = tidings.runtime, tidings.settings
    try:
        since = parse_since(args.since, runtime.clock())
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
        runtime.store, preferences=preferences, policy=policy, since=since, progress=progress
    )
    if progress is not None:
        print(file=sys.stderr)  # keep the last count on its line
    emit(args.json, replay_table(found, args.top), {"since": since, **replay_json(found)})
    return 0

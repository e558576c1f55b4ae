"""What each CLI command does, given parsed arguments and tidings opened by the bootstrap.

Commands that an application can also run call the Python API (runner/api.py), so its
rules are the command line's: preferences, contact points, the inbox. The rest (streamed
intake, deliveries, replays, the runner with its signals and metrics) use the store and
settings beneath it. Each returns the process exit status: 0 done, 1 not found or failed,
2 bad input. Human output goes to stdout as tables; with ``--json``, one JSON document.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import uuid
from collections.abc import Iterator

from returns.result import Failure, Success

from tidings.core import GLOBAL_KIND, Event, Preference, parse_event
from tidings.core.records import DeliveryStatus
from tidings.runner import bootstrap
from tidings.runner.api import AsyncTidings, InvalidPreferenceError, InvalidRecipientError
from tidings.runner.config import ConfigError, load_policy
from tidings.runner.intake import OversizeLine, RejectedLine, read_event_lines, read_lines
from tidings.runner.logs import LogObserver
from tidings.runner.observers import DispatchObserver, DispatchSummary
from tidings.runner.output import for_terminal, notification_json, table, to_json
from tidings.runner.redaction import shown_database, shown_url
from tidings.runner.simulate import (
    ReplayInputError,
    parse_since,
    progress_line,
    read_preference_changes,
    replay,
    replay_json,
    replay_table,
    with_changes,
)

ENQUEUE_BATCH = 1000
log = logging.getLogger("tidings.runner")


def _print(args: argparse.Namespace, human: str, data: object) -> None:
    print(to_json(data) if args.json else for_terminal(human))


def _lines(source: str, max_bytes: int) -> Iterator[bytes | OversizeLine]:
    """The lines of a file, or of stdin for ``-``, as bytes: ``read_event_lines`` decodes
    each on its own, and none holds more than ``max_bytes`` in memory."""
    if source == "-":
        yield from read_lines(sys.stdin.buffer, max_bytes)
        return
    with open(source, "rb") as handle:
        yield from read_lines(handle, max_bytes)


async def migrate(args: argparse.Namespace, tidings: AsyncTidings) -> int:
    applied = await tidings.migrate()
    shown = shown_database(tidings.settings.database_url)
    listed = f": {', '.join(applied)}" if applied else ""
    _print(
        args,
        f"{shown}: schema up to date, {len(applied)} migration(s) applied{listed}",
        {"applied": len(applied), "migrations": list(applied)},
    )
    return 0


async def enqueue(args: argparse.Namespace, tidings: AsyncTidings) -> int:
    store = tidings.runtime.store
    batch: list[Event] = []
    accepted = added = rejected = 0  # counts only: memory stays flat however many lines
    lines = _lines(args.file, tidings.settings.max_line_bytes)
    for item in read_event_lines(lines, lambda: uuid.uuid4().hex):
        if isinstance(item, RejectedLine):
            rejected += 1
            print(f"rejected {for_terminal(str(item))}", file=sys.stderr)
            continue
        batch.append(item)
        if len(batch) >= ENQUEUE_BATCH:
            added += await store.enqueue(batch)
            accepted += len(batch)
            batch = []
    if batch:
        added += await store.enqueue(batch)
        accepted += len(batch)
    _print(
        args,
        f"enqueued {added} event(s), {accepted - added} duplicate(s) ignored, "
        f"{rejected} line(s) rejected",
        {"enqueued": added, "duplicates": accepted - added, "rejected": rejected},
    )
    return 2 if rejected else 0


async def send(args: argparse.Namespace, tidings: AsyncTidings) -> int:
    data: dict[str, object] = {
        "event_id": args.event_id or uuid.uuid4().hex,
        "user_id": args.user,
        "kind": args.kind,
        "severity": args.severity,
        "title": args.title,
        "body": args.body,
    }
    if args.payload is not None:
        data["payload_json"] = args.payload
    match parse_event(data):
        case Success(event):
            added = await tidings.runtime.store.enqueue([event])
            status = "enqueued" if added else "duplicate ignored"
            _print(
                args, f"{status}: {event.event_id}", {"event_id": event.event_id, "added": added}
            )
            return 0
        case Failure(invalid):
            for error in invalid.errors:
                print(f"rejected: {for_terminal(str(error))}", file=sys.stderr)
            return 2
    return 2


async def run(args: argparse.Namespace, tidings: AsyncTidings) -> int:
    runtime, settings = tidings.runtime, tidings.settings
    worker_id = bootstrap.new_worker_id()
    observers: list[DispatchObserver] = [LogObserver()]
    metrics = None
    if args.metrics_port is not None:
        # Prometheus' client loads only in runners that serve metrics.
        from tidings.runner.health import LOOPBACK, serve_health
        from tidings.runner.metrics import MetricsObserver

        metrics = MetricsObserver()
        observers.append(metrics)
    wiring = bootstrap.dispatcher(runtime, observers=observers, worker_id=worker_id)
    async with wiring as dispatcher, contextlib.AsyncExitStack() as stack:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, dispatcher.stop)
        if metrics is not None:
            port = await stack.enter_async_context(
                serve_health(
                    LOOPBACK, args.metrics_port, metrics.registry, runtime.store, dispatcher.alive
                )
            )
            log.info("metrics on http://%s:%d/metrics, health on /healthz", LOOPBACK, port)
        log.info(
            "runner %s started on %s: %s, lease %ss, email %s",
            worker_id,
            shown_database(settings.database_url),
            dispatcher.describe(),
            settings.lease.total_seconds(),
            f"via {settings.smtp.host}:{settings.smtp.port}" if settings.smtp else "not configured",
        )
        summary = await dispatcher.run(until_idle=args.until_idle)
    log.info("runner %s stopped: %s", worker_id, summary_text(summary))
    _print(args, summary_text(summary), summary_json(summary))
    return 0


def summary_text(summary: DispatchSummary) -> str:
    skipped = ", ".join(f"{reason} {count}" for reason, count in sorted(summary.skipped.items()))
    deliveries = ", ".join(f"{key} {count}" for key, count in sorted(summary.deliveries.items()))
    return (
        f"notified {summary.notified}; skipped {sum(summary.skipped.values())}"
        f"{f' ({skipped})' if skipped else ''}; rejected {summary.rejected}"
        f"{f'; deliveries: {deliveries}' if deliveries else ''}"
    )


def summary_json(summary: DispatchSummary) -> dict[str, object]:
    return {
        "notified": summary.notified,
        "skipped": dict(summary.skipped),
        "rejected": summary.rejected,
        "deliveries": dict(summary.deliveries),
    }


async def prefs_set(args: argparse.Namespace, tidings: AsyncTidings) -> int:
    channels = tuple(name for name in args.channels.split(",")) if args.channels else ()
    try:
        stored = await tidings.set_preference(args.user, args.kind, channels, args.min_severity)
    except InvalidPreferenceError as error:
        print(f"rejected: {error}", file=sys.stderr)
        return 2
    unknown = [name for name in stored.channels if name not in {"in_app", "email", "webhook"}]
    if unknown:
        print(
            f"warning: unknown channel name(s) kept but ignored: {', '.join(unknown)}",
            file=sys.stderr,
        )
    minimum = _minimum(args.kind, stored)
    layer = "global" if args.kind == GLOBAL_KIND else f"kind {args.kind}"
    _print(
        args,
        f"{args.user} {layer}: channels {','.join(stored.channels) or '(none: silent)'}, "
        f"min severity {minimum or 'the policy default'}",
        {
            "user_id": args.user,
            "kind": args.kind,
            "channels": list(stored.channels),
            "min_severity": minimum,
        },
    )
    return 0


def _minimum(kind: str, preference: Preference) -> str | None:
    """A row's minimum severity as the decision uses it: the global row's is not used
    (the policy default applies: rule 1), so none is shown for it."""
    return None if kind == GLOBAL_KIND else preference.min_severity.value


async def prefs_show(args: argparse.Namespace, tidings: AsyncTidings) -> int:
    found = await tidings.preferences(args.user)
    rows = [
        (kind, ",".join(p.channels) or "(silent)", _minimum(kind, p) or "(policy default)")
        for kind, p in found.items()
    ]
    human = (
        table(("kind", "channels", "min_severity"), rows)
        if rows
        else (f"{args.user} has no preferences: the policy defaults apply")
    )
    _print(
        args,
        human,
        {
            kind: {"channels": list(p.channels), "min_severity": _minimum(kind, p)}
            for kind, p in found.items()
        },
    )
    return 0


async def inbox(args: argparse.Namespace, tidings: AsyncTidings) -> int:
    found = await tidings.inbox(args.user, unread_only=args.unread, limit=args.limit)
    unread = await tidings.unread_count(args.user)
    rows = [
        (n.id, n.created_at, n.severity.value, n.kind, n.title, "read" if n.read_at else "unread")
        for n in found
    ]
    human = f"{args.user}: {unread} unread\n" + table(
        ("id", "created_at", "severity", "kind", "title", "state"), rows
    )
    _print(args, human, {"unread": unread, "notifications": [notification_json(n) for n in found]})
    return 0


async def read(args: argparse.Namespace, tidings: AsyncTidings) -> int:
    if args.all:
        marked = await tidings.mark_all_read(args.user)
        _print(args, f"marked {marked} notification(s) read", {"marked": marked})
        return 0
    if args.id is None:
        print("give a notification ID or --all", file=sys.stderr)
        return 2
    if not await tidings.mark_read(args.user, args.id):
        print(f"no notification {args.id} for user {args.user}", file=sys.stderr)
        return 1
    _print(args, f"marked {args.id} read", {"marked": 1})
    return 0


def _recipient_fields(args: argparse.Namespace) -> dict[str, str | None]:
    """The contact points the flags change: a value, or None to clear."""
    fields: dict[str, str | None] = {}
    if args.clear_email:
        fields["email"] = None
    if args.clear_webhook:
        fields["webhook_url"] = fields["webhook_secret"] = None
    for name in ("email", "webhook_url", "webhook_secret"):
        if (value := getattr(args, name)) is not None:
            fields[name] = value
    return fields


async def recipients_set(args: argparse.Namespace, tidings: AsyncTidings) -> int:
    if args.clear_webhook and (args.webhook_url is not None or args.webhook_secret is not None):
        print("give --clear-webhook or a new webhook, not both", file=sys.stderr)
        return 2
    fields = _recipient_fields(args)
    if not fields:
        print(
            "nothing to change: give --email, --webhook-url, --webhook-secret,"
            " --clear-email or --clear-webhook",
            file=sys.stderr,
        )
        return 2
    try:
        stored = await tidings.set_recipient(args.user, **fields)
    except InvalidRecipientError as error:
        for problem in error.problems:
            print(f"rejected: {problem}", file=sys.stderr)
        return 2
    # The secret is write-only, and the URL shows where it leads, not what it carries.
    webhook = shown_url(stored.webhook_url) if stored.webhook_url else None
    _print(
        args,
        f"{args.user}: email {stored.email or '-'}, webhook {webhook or '-'}"
        f"{' (signed)' if stored.webhook_secret else ''}",
        {
            "user_id": args.user,
            "email": stored.email,
            "webhook_url": webhook,
            "webhook_secret_set": stored.webhook_secret is not None,
        },
    )
    return 0


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
    _print(
        args,
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
    _print(args, f"requeued {args.delivery_id}: due now", {"requeued": args.delivery_id})
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
    _print(args, replay_table(found, args.top), {"since": since, **replay_json(found)})
    return 0

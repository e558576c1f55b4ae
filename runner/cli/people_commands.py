"""``tidings prefs``, ``inbox``, ``read`` and ``recipients``: a user's preferences, in-app
inbox and contact points, through the Python API (runner/api.py), so its rules are the
command line's."""

from __future__ import annotations

import argparse
import sys

from tidings.core import GLOBAL_KIND, Preference
from tidings.runner.api import AsyncTidings, InvalidPreferenceError, InvalidRecipientError
from tidings.runner.output import emit, notification_json, table
from tidings.runner.telemetry import (
    shown_url,
)


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
    emit(
        args.json,
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
    emit(
        args.json,
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
    emit(
        args.json, human, {"unread": unread, "notifications": [notification_json(n) for n in found]}
    )
    return 0


async def read(args: argparse.Namespace, tidings: AsyncTidings) -> int:
    if args.all:
        marked = await tidings.mark_all_read(args.user)
        emit(args.json, f"marked {marked} notification(s) read", {"marked": marked})
        return 0
    if args.id is None:
        print("give a notification ID or --all", file=sys.stderr)
        return 2
    if not await tidings.mark_read(args.user, args.id):
        print(f"no notification {args.id} for user {args.user}", file=sys.stderr)
        return 1
    emit(args.json, f"marked {args.id} read", {"marked": 1})
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
    emit(
        args.json,
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

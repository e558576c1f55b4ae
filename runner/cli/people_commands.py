"""``tidings prefs``, ``inbox``, ``read`` and ``recipients``: a user's preferences, quiet
hours, in-app inbox and contact points, through the Python API (runner/api.py), so its
rules are the command line's."""

from __future__ import annotations

import argparse
import sys

from tidings.core import GLOBAL_KIND, Preference
from tidings.core.quiet_hours import QuietHours
from tidings.runner.api import (
    AsyncTidings,
    InvalidPreferenceError,
    InvalidQuietHoursError,
    InvalidRecipientError,
)
from tidings.runner.output import emit, notification_json, table
from tidings.runner.telemetry import (
    shown_url,
)


async def prefs_set(args: argparse.Namespace, tidings: AsyncTidings) -> int:
    channels = tuple(name for name in args.channels.split(",")) if args.channels else ()
    try:
        stored = await tidings.set_preference(
            args.user, args.kind, channels, args.min_severity, digest=args.digest
        )
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
    # The global row has no digest switch: kinds without their own row follow the policy.
    digest = "" if args.kind == GLOBAL_KIND else f", digest {_DIGEST_TEXT[stored.digest]}"
    emit(
        args.json,
        f"{args.user} {layer}: channels {','.join(stored.channels) or '(none: silent)'}, "
        f"min severity {minimum or 'the policy default'}{digest}",
        {
            "user_id": args.user,
            "kind": args.kind,
            "channels": list(stored.channels),
            "min_severity": minimum,
            "digest": stored.digest,
        },
    )
    return 0


_DIGEST_TEXT = {True: "on", False: "off", None: "as the policy says"}
_DIGEST_CELL = {True: "on", False: "off", None: "(policy)"}


def _minimum(kind: str, preference: Preference) -> str | None:
    """A row's minimum severity as the decision uses it: the global row's is not used
    (the policy default applies: rule 1), so none is shown for it."""
    return None if kind == GLOBAL_KIND else preference.min_severity.value


async def prefs_show(args: argparse.Namespace, tidings: AsyncTidings) -> int:
    found = await tidings.preferences(args.user)
    window = await tidings.quiet_hours(args.user)
    rows = [
        (
            kind,
            ",".join(p.channels) or "(silent)",
            _minimum(kind, p) or "(policy default)",
            _DIGEST_CELL[p.digest],
        )
        for kind, p in found.items()
    ]
    human = (
        table(("kind", "channels", "min_severity", "digest"), rows)
        if rows
        else (f"{args.user} has no preferences: the policy defaults apply")
    )
    if window is not None:
        human += f"\n{_quiet_hours_line(args.user, window)}"
    # Keyed by kind, as before: a kind may be named anything, so the quiet hours cannot
    # share these keys; ``prefs quiet-hours USER --json`` gives them.
    emit(
        args.json,
        human,
        {
            kind: {
                "channels": list(p.channels),
                "min_severity": _minimum(kind, p),
                "digest": p.digest,
            }
            for kind, p in found.items()
        },
    )
    return 0


_QUIET_OPTIONS = {"starts": "--from", "ends": "--to", "timezone": "--timezone"}
"""The API's arguments (runner/api.py) by the options that give them."""


def _quiet_hours_line(user: str, window: QuietHours | None) -> str:
    if window is None:
        return f"{user} quiet hours: none"
    return f"{user} quiet hours: {window.starts:%H:%M} to {window.ends:%H:%M} {window.zone_name}"


def _quiet_hours_json(window: QuietHours | None) -> dict[str, str] | None:
    if window is None:
        return None
    return {
        "from": f"{window.starts:%H:%M}",
        "to": f"{window.ends:%H:%M}",
        "timezone": window.zone_name,
    }


def _quiet_hours_refusals(args: argparse.Namespace) -> list[str]:
    """Options that do not go together: --off alone, else all three or none."""
    given = {
        option: vars(args)[dest] is not None
        for dest, option in (("from", "--from"), ("to", "--to"), ("timezone", "--timezone"))
    }
    if args.off and any(given.values()):
        named = ", ".join(option for option, present in given.items() if present)
        return [f"--off: removes the quiet hours, so it takes no {named}"]
    if not any(given.values()):
        return []
    return [
        f"{option}: missing: quiet hours need --from, --to and --timezone"
        for option, present in given.items()
        if not present
    ]


async def prefs_quiet_hours(args: argparse.Namespace, tidings: AsyncTidings) -> int:
    if refusals := _quiet_hours_refusals(args):
        for refusal in refusals:
            print(f"rejected: {refusal}", file=sys.stderr)
        return 2
    if args.off:
        await tidings.clear_quiet_hours(args.user)
        window = None
    elif args.to is None:  # nothing given: show them
        window = await tidings.quiet_hours(args.user)
    else:
        try:
            window = await tidings.set_quiet_hours(
                args.user, starts=vars(args)["from"], ends=args.to, timezone=args.timezone
            )
        except InvalidQuietHoursError as error:
            for field, problem in error.problems.items():
                print(f"rejected: {_QUIET_OPTIONS[field]}: {problem}", file=sys.stderr)
            return 2
    emit(
        args.json,
        _quiet_hours_line(args.user, window),
        {"user_id": args.user, "quiet_hours": _quiet_hours_json(window)},
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

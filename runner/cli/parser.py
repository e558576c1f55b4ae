"""The ``tidings`` argument parser: every command, its arguments and its help."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

from tidings import __version__
from tidings.core import GLOBAL_KIND
from tidings.core.records import DeliveryStatus
from tidings.runner.api import AsyncTidings
from tidings.runner.cli import (
    intake_commands,
    operations_commands,
    people_commands,
    prune_command,
    run_command,
)
from tidings.runner.cli.explain import explain_command
from tidings.runner.config import parse_duration

Command = Callable[[argparse.Namespace, AsyncTidings], Awaitable[int]]
AddCommand = Callable[[str, Command, str], argparse.ArgumentParser]


def _whole_number(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number within [low, high], or a usage error that says
    which range (argparse names the flag), never a traceback later."""

    def parse(text: str) -> int:
        try:
            number: int | None = int(text)
        except ValueError:  # not a number, or more digits than Python converts
            number = None
        if number is None or number < low or (high is not None and number > high):
            span = f"from {low} to {high}" if high is not None else f"of {low} or more"
            raise argparse.ArgumentTypeError(f"expected a whole number {span}, got {text!r}")
        return number

    parse.__name__ = "whole number"
    return parse


_AT_LEAST_ONE = _whole_number(1)
_PORT = _whole_number(0, 65535)


def _duration(text: str) -> timedelta:
    """An argparse type: ``90d``, ``12h``... (``config.parse_duration``), or a usage
    error that argparse prefixes with the flag's name."""
    try:
        return parse_duration(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


_duration.__name__ = "duration"


def _common() -> argparse.ArgumentParser:
    """Options accepted before or after the command name."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--database",
        default=argparse.SUPPRESS,
        metavar="URL",
        help="database URL (default sqlite:///tidings.db; env TIDINGS_DATABASE_URL)",
    )
    common.add_argument(
        "--config",
        default=argparse.SUPPRESS,
        metavar="FILE",
        type=Path,
        help="TOML settings file (env TIDINGS_CONFIG)",
    )
    common.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS,
        help="print one JSON document for scripts",
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = argparse.ArgumentParser(
        prog="tidings",
        parents=[common],
        description="Decide, deliver and audit notifications for your users.",
    )
    parser.add_argument("--version", action="version", version=f"tidings {__version__}")
    parser.set_defaults(changes_schema=False)  # only migrate (and the demo, on its own) do
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler: Command, help_text: str) -> argparse.ArgumentParser:
        found = sub.add_parser(name, parents=[common], help=help_text, description=help_text)
        found.set_defaults(handler=handler)
        return found

    _intake_commands(command)
    _user_commands(sub, common, command)
    _delivery_commands(command)
    _operations_commands(command)
    _prune_command(command)
    tour = sub.add_parser("demo", parents=[common], help="a guided tour on a temporary database")
    tour.set_defaults(handler=None)  # the demo opens its own store
    return parser


def _intake_commands(command: AddCommand) -> None:
    migrate = command("migrate", intake_commands.migrate, "create or upgrade the database schema")
    migrate.set_defaults(changes_schema=True)
    enqueue = command(
        "enqueue", intake_commands.enqueue, "add events from JSON lines to the intake"
    )
    enqueue.add_argument("file", metavar="FILE|-", help="a JSON-lines file, or - for stdin")

    send = command("send", intake_commands.send, "add one event to the intake")
    send.add_argument("--user", required=True)
    send.add_argument("--kind", required=True)
    send.add_argument("--severity", required=True, help="info, watch or critical")
    send.add_argument("--title", required=True)
    send.add_argument("--body", required=True)
    send.add_argument("--payload", help="a JSON object")
    send.add_argument("--event-id", help="your id for deduplication (default: a new one)")

    run = command("run", run_command.run, "dispatch events from the intake")
    run.add_argument("--workers", type=_AT_LEAST_ONE, help="parallel workers (default 4)")
    run.add_argument(
        "--until-idle",
        action="store_true",
        help="exit once the intake is drained and no delivery is due now",
    )
    for switch, what in _POLICY_SWITCH_HELP.items():
        flag = f"--{switch.replace('_', '-')}"
        run.add_argument(flag, action="store_true", default=None, help=what)
    run.add_argument(
        "--metrics-port",
        type=_PORT,
        metavar="PORT",
        help="serve Prometheus /metrics and /healthz on 127.0.0.1:PORT while running",
    )


_POLICY_SWITCH_HELP = {
    "escalate_past_cooldown": "notify a rise in severity inside the cooldown (and start a new one)",
    "quiet_hours_hold_critical": "let quiet hours hold critical events too",
    "digest_after_cooldown": "send what the cooldown held back as one digest when it ends",
}
"""The policy's switches, as flags of ``run`` (``TIDINGS_*`` and TOML set them too)."""


def _user_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
    command: AddCommand,
) -> None:
    prefs = sub.add_parser("prefs", parents=[common], help="show or set a user's preferences")
    prefs_sub = prefs.add_subparsers(dest="prefs_command", required=True, metavar="ACTION")
    prefs_set = prefs_sub.add_parser(
        "set", parents=[common], help=f"set one kind's preference ({GLOBAL_KIND}: global)"
    )
    prefs_set.set_defaults(handler=people_commands.prefs_set)
    prefs_set.add_argument("user")
    prefs_set.add_argument("kind")
    prefs_set.add_argument(
        "--channels", required=True, help="comma-separated: in_app,email,webhook ('' for silent)"
    )
    prefs_set.add_argument(
        "--min-severity",
        help=f"info (default), watch or critical; not for {GLOBAL_KIND}, whose minimum is"
        " the policy default",
    )
    digest = prefs_set.add_mutually_exclusive_group()
    digest.add_argument(
        "--digest",
        action="store_const",
        const=True,
        help="send what this kind's cooldown holds back as one digest when it ends"
        f" (neither flag: as the policy says; not for {GLOBAL_KIND})",
    )
    digest.add_argument(
        "--no-digest", dest="digest", action="store_const", const=False, help="never digest it"
    )
    prefs_show = prefs_sub.add_parser(
        "show", parents=[common], help="list a user's preferences and quiet hours"
    )
    prefs_show.set_defaults(handler=people_commands.prefs_show)
    prefs_show.add_argument("user")
    quiet = prefs_sub.add_parser(
        "quiet-hours",
        parents=[common],
        help="set, clear (--off) or show a user's daily quiet hours",
        description="Hold a user's deliveries every day from --from until --to on their"
        " clock in --timezone (past midnight when --to is earlier). With no option: show.",
    )
    quiet.set_defaults(handler=people_commands.prefs_quiet_hours)
    quiet.add_argument("user")
    quiet.add_argument("--from", dest="from", metavar="HH:MM", help="when quiet starts")
    quiet.add_argument("--to", metavar="HH:MM", help="when it ends (deliveries go out)")
    quiet.add_argument("--timezone", metavar="ZONE", help="an IANA name such as Europe/Berlin")
    quiet.add_argument("--off", action="store_true", help="remove the user's quiet hours")

    inbox = command("inbox", people_commands.inbox, "a user's in-app notifications, newest first")
    inbox.add_argument("user")
    inbox.add_argument("--unread", action="store_true")
    inbox.add_argument("--limit", type=_AT_LEAST_ONE, default=20)

    read = command("read", people_commands.read, "mark one or all of a user's notifications read")
    read.add_argument("user")
    read.add_argument("id", nargs="?")
    read.add_argument("--all", action="store_true")

    recipients = sub.add_parser("recipients", parents=[common], help="set contact points")
    recipients_sub = recipients.add_subparsers(dest="recipients_command", required=True)
    recipients_set = recipients_sub.add_parser(
        "set",
        parents=[common],
        help="change a user's email address or webhook endpoint; what is not given stays",
    )
    recipients_set.set_defaults(handler=people_commands.recipients_set)
    recipients_set.add_argument("user")
    email = recipients_set.add_mutually_exclusive_group()
    email.add_argument("--email")
    email.add_argument("--clear-email", action="store_true", help="remove the email address")
    recipients_set.add_argument("--webhook-url")
    recipients_set.add_argument("--webhook-secret", help="whsec_ followed by base64")
    recipients_set.add_argument(
        "--clear-webhook", action="store_true", help="remove the webhook URL and its secret"
    )


def _delivery_commands(command: AddCommand) -> None:
    deliveries = command(
        "deliveries", operations_commands.deliveries, "list deliveries, newest first"
    )
    deliveries.add_argument("--status", choices=[status.value for status in DeliveryStatus])
    deliveries.add_argument("--limit", type=_AT_LEAST_ONE, default=50)

    retry = command(
        "retry", operations_commands.retry, "send a dead delivery again, with the same id"
    )
    retry.add_argument("delivery_id")

    explain = command(
        "explain", explain_command, "why an event was (not) notified, or would be now"
    )
    explain.add_argument("event_id", nargs="?", help="a recorded event")
    explain.add_argument("--user", help="dry run: decide now for this user ...")
    explain.add_argument("--kind", help="... this kind ...")
    explain.add_argument("--severity", help="... and this severity, recording nothing")


def _operations_commands(command: AddCommand) -> None:
    simulate = command(
        "simulate",
        operations_commands.simulate,
        "replay recorded events under other preferences or policy: what would have been"
        " sent, digests and quiet hours' holds included",
    )
    simulate.add_argument(
        "--prefs",
        type=Path,
        metavar="FILE",
        help='JSON {"USER": {"KIND or _global": {"channels": [...], "min_severity": ...,'
        ' "digest": true|false|null} or null}} over the stored preferences (null removes a'
        " row; digest, per-kind rows only, overrides digest_after_cooldown)",
    )
    simulate.add_argument(
        "--policy",
        type=Path,
        metavar="FILE",
        help="TOML with cooldown_seconds, default_channels, default_min_severity,"
        " escalate_past_cooldown, quiet_hours_hold_critical, digest_after_cooldown;"
        " settings it leaves out stay as configured",
    )
    simulate.add_argument(
        "--since",
        default="30d",
        help="replay from: a duration back (30d, 12h, 90m, 3600s) or an ISO date/time"
        " (default 30d)",
    )
    simulate.add_argument(
        "--top",
        type=_whole_number(0),
        default=20,
        metavar="N",
        help="users listed, largest change first",
    )


def _prune_command(command: AddCommand) -> None:
    prune = command(
        "prune",
        prune_command.prune,
        "remove settled events, notifications, deliveries and digests older than a horizon,"
        " never what a cooldown, a pending digest or a delivery still needs",
    )
    prune.add_argument(
        "--older-than",
        type=_duration,
        metavar="DURATION",
        help="the horizon: 90d, 2w, 12h, 30m or 3600s (default: the retention setting)",
    )
    mode = prune.add_mutually_exclusive_group()
    mode.add_argument(
        "--dry-run", action="store_true", help="count what would be removed, per table"
    )
    mode.add_argument(
        "--vacuum",
        action="store_true",
        help="then give the space back: SQLite rewrites its file once (writers wait) and"
        " returns freed pages on every pass from then on; PostgreSQL runs VACUUM (ANALYZE)",
    )

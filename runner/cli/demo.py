"""``tidings demo``: a tour of the embedded default on a throw-away database.

It sets a few preferences, one user's quiet hours and email address, sends a realistic
stream (a cooldown hit, a silenced kind, a severity below the minimum, an unknown
channel, an escalation, a malformed event), dispatches it, and prints what happened to
each event and why, the outbox and one user's inbox; then its clock jumps a day, past
the cooldown, so the digest of what the cooldown held back goes out. It ends with the
three rules a policy can switch on (escalation, quiet hours, digests), one sentence
each. It goes through the Python API (runner/api.py) an application would use, on its
own temporary database, which it migrates, with its own policy and clock; email is left
unconfigured whatever the environment says.
"""

from __future__ import annotations

import json
import tempfile
from datetime import datetime, timedelta
from pathlib import Path

import attrs

from tidings.core import GLOBAL_KIND, Policy, Severity
from tidings.core.digest import DIGEST_PREFIX
from tidings.core.records import Notification
from tidings.runner import bootstrap
from tidings.runner.api import AsyncTidings, InvalidEventError
from tidings.runner.cli.operations_commands import held_notes
from tidings.runner.clock import system_clock
from tidings.runner.config import Settings
from tidings.runner.output import table

_POLICY = Policy(escalate_past_cooldown=True, digest_after_cooldown=True)
"""The reference's defaults (24 h cooldown) with the two policy switches on; quiet
hours are per user (below), and critical events go out through them."""

_PREFERENCES = (
    ("ana", "burnout_overload", ("in_app", "email"), Severity.WATCH),
    ("ana", GLOBAL_KIND, ("in_app",), None),
    ("ben", "weekly_digest", (), Severity.INFO),
    ("ben", GLOBAL_KIND, ("in_app", "webhook", "pager"), None),
)
"""Global rows take no minimum: kinds without their own row use the policy's."""

_QUIET = {"starts": "22:00", "ends": "07:00", "timezone": "Europe/Berlin"}
"""ana's nights; the demo's clock starts inside them (``_start``)."""

_STREAM = (
    (
        "ana",
        "burnout_overload",
        "watch",
        "Overload threshold crossed",
        "Your tracked hours crossed 50 this week.",
    ),
    (
        "ana",
        "burnout_overload",
        "watch",
        "Overload is still rising",
        "Your tracked hours crossed 55 this week.",
    ),
    ("ana", "burnout_overload", "info", "Overload easing", "Back under 50 hours."),
    (
        "ana",
        "burnout_overload",
        "watch",
        "Overload is back",
        "Your tracked hours crossed 50 again.",
    ),
    ("ana", "deploy_failed", "critical", "Deploy of api failed", "Build 812 failed its checks."),
    ("ben", "weekly_digest", "info", "Your week in review", "12 tasks closed, 3 opened."),
    ("ben", "deploy_failed", "watch", "Deploy of web is slow", "Build 813 took 14 minutes."),
    ("chen", "deploy_failed", "watch", "Deploy of api is flaky", "Build 814 passed on retry."),
    ("chen", "deploy_failed", "critical", "Deploy of api rolled back", "Build 814 was reverted."),
)
_ESCALATED, _HELD_BY_NIGHT = "evt-9", "evt-1"
"""The events of ``_STREAM`` whose decisions the closing sentences quote."""


class _TourClock:
    """The demo's own clock, which moves only when the tour moves it (as
    ``tidings.testing.FakeClock`` does; that module needs hypothesis, a test extra)."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def _start() -> datetime:
    """Today at 21:30 UTC: 22:30 or 23:30 in Berlin, inside ana's quiet hours."""
    return system_clock().replace(hour=21, minute=30, second=0, microsecond=0)


def _stream() -> list[dict[str, object]]:
    return [
        {
            "event_id": f"evt-{number}",
            "user_id": user,
            "kind": kind,
            "severity": severity,
            "title": title,
            "body": body,
        }
        for number, (user, kind, severity, title, body) in enumerate(_STREAM, start=1)
    ]


async def _dispatch(tidings: AsyncTidings) -> str:
    # No decision log lines on the terminal: the tour prints its own account.
    async with bootstrap.dispatcher(tidings.runtime, observers=(), worker_id="demo") as loop:
        summary = await loop.run(until_idle=True)
    return f"notified {summary.notified}, skipped {sum(summary.skipped.values())}"


async def _outbox(tidings: AsyncTidings, user: str | None = None) -> str:
    """The deliveries (of ``user``), with why each was skipped or still waits."""
    store = tidings.runtime.store
    found = [d for d in await store.deliveries() if user is None or d.user_id == user]
    held = await held_notes(store, found, tidings.runtime.clock())
    rows = [
        (
            d.user_id,
            d.kind,
            d.channel.value,
            d.status.value,
            d.last_error or held.get(d.delivery_id),
        )
        for d in sorted(found, key=lambda d: (d.user_id, d.kind, d.channel.value))
    ]
    return table(("user", "kind", "channel", "status", "note"), rows)


async def _inbox(tidings: AsyncTidings, user: str) -> str:
    notifications = await tidings.inbox(user)
    heading = f"{user}'s inbox ({await tidings.unread_count(user)} unread)"
    rows = [(n.created_at, n.severity.value, n.kind, n.title) for n in notifications]
    return f"{heading}\n{table(('created_at', 'severity', 'kind', 'title'), rows)}"


async def _setup(tidings: AsyncTidings) -> None:
    print("1. Preferences, quiet hours, contact points")
    for user, kind, channels, severity in _PREFERENCES:
        await tidings.set_preference(user, kind, channels, severity)
        minimum = severity.value if severity else "(policy default)"
        print(f"   {user:5} {kind:17} channels={','.join(channels) or '(silent)':22} min={minimum}")
    await tidings.set_quiet_hours("ana", **_QUIET)
    await tidings.set_recipient("ana", email="ana@example.com")
    print(
        f"   ana   quiet hours {_QUIET['starts']} to {_QUIET['ends']} {_QUIET['timezone']},"
        " email ana@example.com"
    )
    print("   chen has none: the policy defaults apply (in_app, info, 24 h cooldown)")


async def _send(tidings: AsyncTidings) -> list[dict[str, object]]:
    print("\n2. Events, through the validating intake")
    try:
        await tidings.send(
            event_id="evt-bad",
            user_id="dora",
            kind="deploy_failed",
            severity="urgent",
            title="Two\nlines",
            body="x",
        )
    except InvalidEventError as error:
        print(f"   rejected at the door: {error}")
    events = _stream()
    print(f"   enqueued {len(await tidings.enqueue(events))} events")
    return events


async def _why(tidings: AsyncTidings, event_id: str) -> str:
    return await tidings.explain(event_id) or "unknown"


async def _digest(tidings: AsyncTidings, user: str) -> Notification:
    """The user's newest digest notification (its event id is the digest's id)."""
    return next(n for n in await tidings.inbox(user) if n.event_id.startswith(DIGEST_PREFIX))


async def _the_three_rules(tidings: AsyncTidings) -> None:
    print("\n9. The three rules at work, one sentence each")
    print(
        f"   Escalation: {_ESCALATED} reached chen inside the cooldown of the watch before it,"
        f" because it is more severe: {await _why(tidings, _ESCALATED)}."
    )
    print(
        f"   Quiet hours: {_HELD_BY_NIGHT} reached ana's inbox at once, but its email waited"
        f" in the outbox until her night ended: {await _why(tidings, _HELD_BY_NIGHT)}."
    )
    digest = await _digest(tidings, "ana")
    held = json.loads(digest.payload_json or "{}").get("event_ids", [])
    endings = {(await _why(tidings, event_id)).rpartition("; ")[2] for event_id in held}
    print(
        f"   Digest: the cooldown held back {' and '.join(held)}"
        f' ("...; {"; ".join(sorted(endings))}"), and when it ended ana got them as one'
        f' notification, "{digest.title}" (a digest\'s decision is recorded in the digests'
        " table, not as an event)."
    )


async def _tour(tidings: AsyncTidings, clock: _TourClock) -> None:
    await tidings.migrate()
    await _setup(tidings)
    events = await _send(tidings)

    print(f"\n3. Dispatch, until idle\n   {await _dispatch(tidings)}")

    print("\n4. What happened and why")
    rows = [
        (
            event["event_id"],
            event["user_id"],
            event["kind"],
            event["severity"],
            await _why(tidings, str(event["event_id"])),
        )
        for event in events
    ]
    print(table(("event", "user", "kind", "severity", "why"), rows))

    print("\n5. Deliveries (email and webhook are not configured in the demo)")
    print(await _outbox(tidings))

    print(f"\n6. {await _inbox(tidings, 'ana')}")

    clock.now += timedelta(hours=24)
    print(
        "\n7. The demo's clock jumps 24 hours, to the end of ana's burnout_overload cooldown"
        " (and past 07:00, when her held email was due)"
    )
    print(f"   dispatch, until idle: {await _dispatch(tidings)}")
    print("   ana's deliveries: the held email went out (skipped: no SMTP in the demo), and")
    print("   the digest's email waits for the end of tonight's quiet hours")
    print("   " + (await _outbox(tidings, "ana")).replace("\n", "\n   "))

    print(f"\n8. {await _inbox(tidings, 'ana')}")
    body = (await _digest(tidings, "ana")).body.replace("\n", "\n     ")
    print(f"   the digest's body:\n     {body}")

    await _the_three_rules(tidings)


async def demo(settings: Settings) -> int:
    with tempfile.TemporaryDirectory(prefix="tidings-demo-") as folder:
        path = Path(folder) / "tidings.db"
        print(f"tidings demo on a fresh embedded database: {path}")
        clock = _TourClock(_start())
        print(
            f"The demo's clock starts at {clock.now:%Y-%m-%d %H:%M} UTC, at night in Berlin,"
            " and moves only when the tour moves it.\nIts policy switches on escalation past"
            " the cooldown and digests after it (both off by default).\n"
        )
        own = attrs.evolve(settings, database_url=f"sqlite:///{path}", smtp=None, policy=_POLICY)
        async with AsyncTidings(bootstrap.open_runtime(own, clock=clock)) as tidings:
            await _tour(tidings, clock)
    print("\nTry it yourself: tidings send ..., tidings run --until-idle, tidings explain EVENT_ID")
    return 0

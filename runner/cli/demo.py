"""``tidings demo``: a tour of the embedded default on a throw-away database.

It sets a few preferences, sends a realistic stream (a cooldown hit, a silenced kind,
a severity below the minimum, an unknown channel, a malformed event), dispatches it,
and prints what happened to each event and why, then one user's inbox. It goes through
the Python API (runner/api.py) an application would use, on its own temporary database,
which it migrates; email is left unconfigured whatever the environment says.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import attrs

from tidings.core import GLOBAL_KIND, Severity
from tidings.runner import bootstrap
from tidings.runner.api import AsyncTidings, InvalidEventError
from tidings.runner.config import Settings
from tidings.runner.output import table

_PREFERENCES = (
    ("ana", "burnout_overload", ("in_app", "email"), Severity.WATCH),
    ("ana", GLOBAL_KIND, ("in_app",), None),
    ("ben", "weekly_digest", (), Severity.INFO),
    ("ben", GLOBAL_KIND, ("in_app", "webhook", "pager"), None),
)
"""Global rows take no minimum: kinds without their own row use the policy's."""

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
        "critical",
        "Overload is still rising",
        "Your tracked hours crossed 60 this week.",
    ),
    ("ana", "burnout_overload", "info", "Overload easing", "Back under 50 hours."),
    ("ana", "deploy_failed", "critical", "Deploy of api failed", "Build 812 failed its checks."),
    ("ben", "weekly_digest", "info", "Your week in review", "12 tasks closed, 3 opened."),
    ("ben", "deploy_failed", "watch", "Deploy of web is slow", "Build 813 took 14 minutes."),
    ("chen", "deploy_failed", "info", "Deploy of api finished", "Build 814 is live."),
    ("chen", "deploy_failed", "watch", "Deploy of api rolled back", "Build 814 was reverted."),
)


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


async def _tour(tidings: AsyncTidings) -> None:
    await tidings.migrate()
    print("1. Preferences")
    for user, kind, channels, severity in _PREFERENCES:
        await tidings.set_preference(user, kind, channels, severity)
        minimum = severity.value if severity else "(policy default)"
        print(f"   {user:5} {kind:17} channels={','.join(channels) or '(silent)':22} min={minimum}")
    print("   chen has none: the policy defaults apply (in_app, info, 24 h cooldown)")

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

    print("\n3. Dispatch, until idle")
    # No decision log lines on the terminal: the tour prints its own account.
    async with bootstrap.dispatcher(tidings.runtime, observers=(), worker_id="demo") as loop:
        summary = await loop.run(until_idle=True)
    print(f"   notified {summary.notified}, skipped {sum(summary.skipped.values())}")

    print("\n4. What happened and why")
    rows = [
        (
            event["event_id"],
            event["user_id"],
            event["kind"],
            event["severity"],
            await tidings.explain(str(event["event_id"])),
        )
        for event in events
    ]
    print(table(("event", "user", "kind", "severity", "why"), rows))

    print("\n5. Deliveries (email and webhook are not configured in the demo)")
    deliveries = await tidings.runtime.store.deliveries()
    print(
        table(
            ("user", "kind", "channel", "status", "note"),
            [
                (d.user_id, d.kind, d.channel.value, d.status.value, d.last_error)
                for d in sorted(deliveries, key=lambda d: (d.user_id, d.kind, d.channel.value))
            ],
        )
    )

    print(f"\n6. ana's inbox ({await tidings.unread_count('ana')} unread)")
    print(
        table(
            ("created_at", "severity", "kind", "title"),
            [(n.created_at, n.severity.value, n.kind, n.title) for n in await tidings.inbox("ana")],
        )
    )


async def demo(settings: Settings) -> int:
    with tempfile.TemporaryDirectory(prefix="tidings-demo-") as folder:
        path = Path(folder) / "tidings.db"
        print(f"tidings demo on a fresh embedded database: {path}\n")
        own = attrs.evolve(settings, database_url=f"sqlite:///{path}", smtp=None)
        async with AsyncTidings(bootstrap.open_runtime(own)) as tidings:
            await _tour(tidings)
    print("\nTry it yourself: tidings send ..., tidings run --until-idle, tidings explain EVENT_ID")
    return 0

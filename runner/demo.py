"""``tidings demo``: a tour of the embedded default on a throw-away database.

It sets a few preferences, sends a realistic stream (a cooldown hit, a silenced kind,
a severity below the minimum, an unknown channel, a malformed event), dispatches it,
and prints what happened to each event and why, then one user's inbox.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from tidings.core import GLOBAL_KIND, Event, Preference, Severity
from tidings.core.ports import Store
from tidings.runner.clock import system_clock
from tidings.runner.config import Settings
from tidings.runner.dispatcher import Dispatcher
from tidings.runner.intake import RejectedLine, read_event_lines
from tidings.runner.output import table
from tidings.runner.senders import default_senders
from tidings.runner.stores import open_store

_PREFERENCES = (
    ("ana", "burnout_overload", ("in_app", "email"), Severity.WATCH),
    ("ana", GLOBAL_KIND, ("in_app",), Severity.INFO),
    ("ben", "weekly_digest", (), Severity.INFO),
    ("ben", GLOBAL_KIND, ("in_app", "webhook", "pager"), Severity.CRITICAL),
)

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

_MALFORMED = {
    "user_id": "dora",
    "kind": "deploy_failed",
    "severity": "urgent",
    "title": "Two\nlines",
    "body": "x",
}


def _stream_lines() -> list[str]:
    lines = [
        json.dumps(
            {
                "event_id": f"evt-{number}",
                "user_id": user,
                "kind": kind,
                "severity": severity,
                "title": title,
                "body": body,
            }
        )
        for number, (user, kind, severity, title, body) in enumerate(_STREAM, start=1)
    ]
    return [*lines, json.dumps({"event_id": "evt-bad", **_MALFORMED})]


async def _tour(store: Store, settings: Settings) -> None:
    await store.migrate()
    print("1. Preferences")
    for user, kind, channels, severity in _PREFERENCES:
        await store.set_preference(user, kind, Preference(channels, severity))
        print(
            f"   {user:5} {kind:17} channels={','.join(channels) or '(silent)':22}"
            f" min={severity.value}"
        )
    print("   chen has none: the policy defaults apply (in_app, info, 24 h cooldown)")

    print("\n2. Events, as JSON lines through the validating intake")
    events: list[Event] = []
    for item in read_event_lines(_stream_lines(), lambda: "unused"):
        if isinstance(item, RejectedLine):
            print(f"   rejected at the door, {item}")
        else:
            events.append(item)
    print(f"   enqueued {await store.enqueue(events)} events")

    print("\n3. Dispatch (4 workers, until idle)")
    dispatcher = Dispatcher(
        store, default_senders(), worker_id="demo", policy=settings.policy, clock=system_clock
    )
    summary = await dispatcher.run(until_idle=True)
    print(f"   notified {summary.notified}, skipped {sum(summary.skipped.values())}")

    print("\n4. What happened and why")
    rows = []
    for event in events:
        record = await store.event_record(event.event_id)
        assert record is not None
        rows.append(
            (
                event.event_id,
                event.user_id,
                event.kind,
                event.severity.value,
                record.status.value,
                record.explanation,
            )
        )
    print(table(("event", "user", "kind", "severity", "outcome", "why"), rows))

    print("\n5. Deliveries (email and webhook are not configured in the demo)")
    deliveries = await store.deliveries()
    print(
        table(
            ("user", "kind", "channel", "status", "note"),
            [
                (d.user_id, d.kind, d.channel.value, d.status.value, d.last_error)
                for d in sorted(deliveries, key=lambda d: (d.user_id, d.kind, d.channel.value))
            ],
        )
    )

    print(f"\n6. ana's inbox ({await store.unread_count('ana')} unread)")
    print(
        table(
            ("created_at", "severity", "kind", "title"),
            [(n.created_at, n.severity.value, n.kind, n.title) for n in await store.inbox("ana")],
        )
    )


async def demo(args: argparse.Namespace, settings: Settings) -> int:
    with tempfile.TemporaryDirectory(prefix="tidings-demo-") as folder:
        path = Path(folder) / "tidings.db"
        print(f"tidings demo on a fresh embedded database: {path}\n")
        store = open_store(f"sqlite:///{path}", clock=system_clock, lease=settings.lease)
        try:
            await _tour(store, settings)
        finally:
            await store.close()
    print("\nTry it yourself: tidings send ..., tidings run --until-idle, tidings explain EVENT_ID")
    return 0

"""``tidings explain``: why an event was (not) notified, or what would happen now.

With an event id it shows the decision recorded for that event. With ``--user``,
``--kind`` and ``--severity`` it decides for a hypothetical event against the current
preferences, history and policy, through the same ``core.decide`` the runner uses,
and records nothing: "would this user hear about it?" answered before sending.
"""

from __future__ import annotations

import argparse
import sys

from tidings.core import (
    Event,
    Policy,
    Severity,
    decide_with,
    explain,
    outcome_of,
    outcome_to_mapping,
)
from tidings.core.decision import DecisionInputs
from tidings.core.ports import DecisionRecords
from tidings.core.values import Preference
from tidings.runner.api import AsyncTidings, recorded_sentence
from tidings.runner.output import for_terminal, to_json


async def explain_command(args: argparse.Namespace, tidings: AsyncTidings) -> int:
    store = tidings.runtime.store
    what_if = (args.user, args.kind, args.severity)
    if args.event_id is not None and any(what_if):
        print("give an EVENT_ID or --user/--kind/--severity, not both", file=sys.stderr)
        return 2
    if args.event_id is not None:
        return await _recorded(args, store)
    if not all(what_if):
        print("give an EVENT_ID, or all of --user, --kind and --severity", file=sys.stderr)
        return 2
    return await _dry_run(args, store, tidings.settings.policy)


async def _recorded(args: argparse.Namespace, store: DecisionRecords) -> int:
    record = await store.event_record(args.event_id)
    if record is None:
        print(f"no event {args.event_id}", file=sys.stderr)
        return 1
    sentence = recorded_sentence(record)
    if not args.json:
        print(
            for_terminal(
                f"event {record.event_id}: user {record.user_id}, kind {record.kind}, "
                f"severity {record.severity}, {record.status.value}\n{sentence}"
            )
        )
        return 0
    print(
        to_json(
            {
                "event_id": record.event_id,
                "user_id": record.user_id,
                "kind": record.kind,
                "severity": record.severity,
                "status": record.status.value,
                "decision": outcome_to_mapping(record.outcome) if record.outcome else None,
                "explanation": explain(record.outcome) if record.outcome else None,
                "error": record.error,
                "notification_id": record.notification_id,
                "enqueued_at": record.enqueued_at,
                "decided_at": record.decided_at,
            }
        )
    )
    return 0


def _preference_json(preference: Preference | None) -> object:
    if preference is None:
        return None
    return {"channels": list(preference.channels), "min_severity": preference.min_severity.value}


async def _dry_run(args: argparse.Namespace, store: DecisionRecords, policy: Policy) -> int:
    try:
        severity = Severity(args.severity)
    except ValueError:
        print(f"--severity must be info, watch or critical, got {args.severity!r}", file=sys.stderr)
        return 2
    inputs, now = await store.decision_inputs(args.user, args.kind)
    event = Event(
        event_id="dry-run", user_id=args.user, kind=args.kind, severity=severity, title="-", body=""
    )
    outcome = outcome_of(decide_with(event, inputs, now, policy))
    if not args.json:
        print(f"dry run at {now.isoformat()} (nothing recorded)\n{for_terminal(explain(outcome))}")
        print(for_terminal(_inputs_text(inputs)))
        return 0
    print(
        to_json(
            {
                "now": now,
                "decision": outcome_to_mapping(outcome),
                "explanation": explain(outcome),
                "inputs": {
                    "kind_preference": _preference_json(inputs.kind_preference),
                    "global_preference": _preference_json(inputs.global_preference),
                    "last_sent_at": inputs.last_sent_at,
                    "last_severity": inputs.last_severity and inputs.last_severity.value,
                    "quiet_hours": _quiet_hours_text(inputs),
                },
            }
        )
    )
    return 0


def _inputs_text(inputs: DecisionInputs) -> str:
    def row(preference: Preference | None) -> str:
        if preference is None:
            return "none"
        channels = ",".join(preference.channels) or "(silent)"
        return f"{channels}, min {preference.min_severity.value}"

    last = inputs.last_sent_at.isoformat() if inputs.last_sent_at else "never"
    if inputs.last_severity is not None:
        last = f"{last} ({inputs.last_severity.value})"
    return (
        f"per-kind preference: {row(inputs.kind_preference)}; "
        f"global preference: {row(inputs.global_preference)}; last notified: {last}; "
        f"quiet hours: {_quiet_hours_text(inputs) or 'none'}"
    )


def _quiet_hours_text(inputs: DecisionInputs) -> str | None:
    window = inputs.quiet_hours
    if window is None:
        return None
    return f"{window.starts:%H:%M} to {window.ends:%H:%M} {window.zone_name}"

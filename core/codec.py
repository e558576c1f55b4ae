"""Plans and Skips to JSON-safe mappings and back.

Stores record the decision with the event so that ``explain`` and replay can show
it later exactly as it was made; this is the one place that defines that shape.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from tidings.core.decision import Hold, Plan, Skip, SkipReason
from tidings.core.values import Channel, PreferenceSource, Severity, iso_text


def _moment(value: object) -> datetime | None:
    return datetime.fromisoformat(str(value)) if value else None


def outcome_to_mapping(outcome: Plan | Skip) -> dict[str, Any]:
    """The outcome as a mapping of strings, lists and None, ready for ``json.dumps``."""
    common: dict[str, Any] = {
        "kind": outcome.kind,
        "severity": outcome.severity.value,
        "source": outcome.source.value,
        "min_severity": outcome.min_severity.value,
        "ignored_channels": list(outcome.ignored_channels),
    }
    if isinstance(outcome, Plan):
        return {
            "decision": "plan",
            **common,
            "channels": [c.value for c in outcome.channels],
            **_plan_extras(outcome),
        }
    return {
        "decision": "skip",
        **common,
        "reason": outcome.reason.value,
        "last_sent_at": outcome.last_sent_at.isoformat() if outcome.last_sent_at else None,
        "cooldown_ends_at": (
            outcome.cooldown_ends_at.isoformat() if outcome.cooldown_ends_at else None
        ),
        **_skip_extras(outcome),
    }


def _plan_extras(plan: Plan) -> dict[str, Any]:
    """What escalation and quiet hours add to a plan; nothing for a plain one, so
    decisions recorded before them read the same."""
    extras: dict[str, Any] = {}
    if plan.escalated_over is not None:
        extras["escalated_over"] = plan.escalated_over.value
        extras["last_sent_at"] = plan.last_sent_at.isoformat() if plan.last_sent_at else None
    if plan.hold is not None:
        extras["held_until"] = plan.hold.until.isoformat()
        extras["held_text"] = plan.hold.text
    return extras


def _skip_extras(skip: Skip) -> dict[str, Any]:
    extras: dict[str, Any] = {}
    if skip.last_severity is not None:
        extras["last_severity"] = skip.last_severity.value
    if skip.held_for_digest:
        extras["held_for_digest"] = True
    return extras


def outcome_from_mapping(data: Mapping[str, Any]) -> Plan | Skip:
    """Rebuild what ``outcome_to_mapping`` wrote. Raises ``KeyError``/``ValueError`` on
    anything else: a recorded decision that does not parse is a broken store."""
    kind = str(data["kind"])
    severity = Severity(data["severity"])
    source = PreferenceSource(data["source"])
    min_severity = Severity(data["min_severity"])
    ignored = tuple(str(name) for name in data["ignored_channels"])
    if data["decision"] == "plan":
        escalated_over = data.get("escalated_over")
        held_until = _moment(data.get("held_until"))
        return Plan(
            kind=kind,
            severity=severity,
            channels=tuple(Channel(name) for name in data["channels"]),
            source=source,
            min_severity=min_severity,
            ignored_channels=ignored,
            escalated_over=None if escalated_over is None else Severity(escalated_over),
            last_sent_at=_moment(data.get("last_sent_at")),
            hold=None if held_until is None else Hold(until=held_until, text=data["held_text"]),
        )
    last_severity = data.get("last_severity")
    return Skip(
        kind=kind,
        severity=severity,
        reason=SkipReason(data["reason"]),
        source=source,
        min_severity=min_severity,
        ignored_channels=ignored,
        last_sent_at=_moment(data.get("last_sent_at")),
        cooldown_ends_at=_moment(data.get("cooldown_ends_at")),
        last_severity=None if last_severity is None else Severity(last_severity),
        held_for_digest=bool(data.get("held_for_digest", False)),
    )


def outcome_to_json(outcome: Plan | Skip) -> str:
    """``json.dumps(outcome_to_mapping(outcome))``, faster: stores write one per event.

    Everything but a skip's two times repeats from event to event, so that part is
    rendered once per distinct outcome (bounded cache) and the times are appended.
    """
    if isinstance(outcome, Plan):
        return _plan_json(outcome)
    head = _skip_head(
        outcome.kind,
        outcome.severity,
        outcome.source,
        outcome.min_severity,
        outcome.ignored_channels,
        outcome.reason,
    )
    last, ends = _time_json(outcome.last_sent_at), _time_json(outcome.cooldown_ends_at)
    extras = _skip_extras(outcome)
    tail = f", {json.dumps(extras)[1:-1]}" if extras else ""
    return f'{head}, "last_sent_at": {last}, "cooldown_ends_at": {ends}{tail}}}'


@functools.lru_cache(maxsize=4096)
def _plan_json(plan: Plan) -> str:
    return json.dumps(outcome_to_mapping(plan))


@functools.lru_cache(maxsize=4096)
def _skip_head(  # noqa: PLR0917 - positional: the cheapest cache key
    kind: str,
    severity: Severity,
    source: PreferenceSource,
    min_severity: Severity,
    ignored: tuple[str, ...],
    reason: SkipReason,
) -> str:
    mapping = {
        "decision": "skip",
        "kind": kind,
        "severity": severity.value,
        "source": source.value,
        "min_severity": min_severity.value,
        "ignored_channels": list(ignored),
        "reason": reason.value,
    }
    return json.dumps(mapping)[:-1]  # open: the times follow


def _time_json(moment: datetime | None) -> str:
    return f'"{iso_text(moment)}"' if moment is not None else "null"

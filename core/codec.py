"""Plans and Skips to JSON-safe mappings and back.

Stores record the decision with the event so that ``explain`` and replay can show
it later exactly as it was made; this is the one place that defines that shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from core.decision import Plan, Skip, SkipReason
from core.values import Channel, PreferenceSource, Severity


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
        return {"decision": "plan", **common, "channels": [c.value for c in outcome.channels]}
    return {
        "decision": "skip",
        **common,
        "reason": outcome.reason.value,
        "last_sent_at": outcome.last_sent_at.isoformat() if outcome.last_sent_at else None,
        "cooldown_ends_at": (
            outcome.cooldown_ends_at.isoformat() if outcome.cooldown_ends_at else None
        ),
    }


def outcome_from_mapping(data: Mapping[str, Any]) -> Plan | Skip:
    """Rebuild what ``outcome_to_mapping`` wrote. Raises ``KeyError``/``ValueError`` on
    anything else: a recorded decision that does not parse is a broken store."""
    kind = str(data["kind"])
    severity = Severity(data["severity"])
    source = PreferenceSource(data["source"])
    min_severity = Severity(data["min_severity"])
    ignored = tuple(str(name) for name in data["ignored_channels"])
    if data["decision"] == "plan":
        return Plan(
            kind=kind,
            severity=severity,
            channels=tuple(Channel(name) for name in data["channels"]),
            source=source,
            min_severity=min_severity,
            ignored_channels=ignored,
        )
    return Skip(
        kind=kind,
        severity=severity,
        reason=SkipReason(data["reason"]),
        source=source,
        min_severity=min_severity,
        ignored_channels=ignored,
        last_sent_at=_moment(data.get("last_sent_at")),
        cooldown_ends_at=_moment(data.get("cooldown_ends_at")),
    )

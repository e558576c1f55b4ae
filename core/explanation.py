"""One human sentence for a decision, so "why was I (not) notified?" has an answer.

Pure and built only from what the outcome carries, so the sentence recorded at
decision time and the one rendered later by ``tidings explain`` are the same.
"""

from __future__ import annotations

from tidings.core.decision import Plan, Skip, SkipReason
from tidings.core.values import PreferenceSource, iso_text


def _layer(source: PreferenceSource, kind: str) -> str:
    if source is PreferenceSource.KIND:
        return f"the per-kind preference for {kind}"
    if source is PreferenceSource.GLOBAL:
        return "the global preference"
    return "the default policy"


def _minimum_layer(source: PreferenceSource, kind: str) -> str:
    # The global row's channels apply, but its minimum severity never does.
    if source is PreferenceSource.GLOBAL:
        return "the default policy (the global preference sets channels only)"
    return _layer(source, kind)


def _ignored_clause(ignored: tuple[str, ...]) -> str:
    if not ignored:
        return ""
    return f" (ignored unknown channels: {', '.join(ignored)})"


def explain(outcome: Plan | Skip) -> str:
    """Render a Plan or a Skip as one sentence."""
    layer = _layer(outcome.source, outcome.kind)
    ignored = _ignored_clause(outcome.ignored_channels)
    if isinstance(outcome, Plan):
        channels = ", ".join(channel.value for channel in outcome.channels)
        return (
            f"notified via {channels}: severity {outcome.severity.value} meets the minimum "
            f"{outcome.min_severity.value}, channels from {layer}{ignored}"
        )
    if outcome.reason is SkipReason.SEVERITY_BELOW_MINIMUM:
        return (
            f"skipped: severity {outcome.severity.value} is below the minimum "
            f"{outcome.min_severity.value} set by {_minimum_layer(outcome.source, outcome.kind)}"
        )
    if outcome.reason is SkipReason.NO_CHANNELS:
        return f"skipped: {layer} enables no channels{ignored}"
    last = iso_text(outcome.last_sent_at) if outcome.last_sent_at else "unknown"
    ends = iso_text(outcome.cooldown_ends_at) if outcome.cooldown_ends_at else "unknown"
    return (
        f"skipped: inside the cooldown for {outcome.kind}; "
        f"last notified at {last}, cooldown ends at {ends}"
    )

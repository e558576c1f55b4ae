"""One human sentence for a decision, so "why was I (not) notified?" has an answer.

Pure and built only from what the outcome carries, so the sentence recorded at
decision time and the one rendered later by ``tidings explain`` are the same.
"""

from __future__ import annotations

from tidings.core.decision import HELD_CHANNELS, Plan, Skip, SkipReason
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
        return _planned(outcome, layer, ignored)
    if outcome.reason is SkipReason.SEVERITY_BELOW_MINIMUM:
        return (
            f"skipped: severity {outcome.severity.value} is below the minimum "
            f"{outcome.min_severity.value} set by {_minimum_layer(outcome.source, outcome.kind)}"
        )
    if outcome.reason is SkipReason.NO_CHANNELS:
        return f"skipped: {layer} enables no channels{ignored}"
    last = iso_text(outcome.last_sent_at) if outcome.last_sent_at else "unknown"
    ends = iso_text(outcome.cooldown_ends_at) if outcome.cooldown_ends_at else "unknown"
    compared = ""
    if outcome.last_severity is not None:
        compared = (
            f"; {outcome.severity.value} does not rise above the"
            f" {outcome.last_severity.value} notified then"
        )
    held = "; held for the digest when it ends" if outcome.held_for_digest else ""
    return (
        f"skipped: inside the cooldown for {outcome.kind}; "
        f"last notified at {last}, cooldown ends at {ends}{compared}{held}"
    )


def _planned(plan: Plan, layer: str, ignored: str) -> str:
    channels = ", ".join(channel.value for channel in plan.channels)
    if plan.escalated_over is not None:
        last = iso_text(plan.last_sent_at) if plan.last_sent_at else "unknown"
        why = (
            f"{plan.severity.value} rises above the {plan.escalated_over.value} notified"
            f" at {last}, past its cooldown"
        )
    else:
        why = f"severity {plan.severity.value} meets the minimum {plan.min_severity.value}"
    held = ""
    if plan.hold is not None:
        waiting = ", ".join(c.value for c in plan.channels if c in HELD_CHANNELS)
        held = f"; {waiting} {plan.hold.text}"
    return f"notified via {channels}: {why}, channels from {layer}{ignored}{held}"

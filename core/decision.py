"""The decision: whether to notify a user about an event, and on which channels.

A pure function of its arguments, so that applications can embed it, property-test
it and replay history through it. The rules and their order are those of DESIGN.md;
each outcome carries the values it compared, so a skip can be explained later
without re-reading the database.
"""

from __future__ import annotations

import enum
from datetime import datetime

import attrs
from returns.methods import unwrap_or_failure
from returns.result import Failure, Result, Success

from core.values import Channel, Event, Policy, Preference, PreferenceSource, Severity


class SkipReason(enum.Enum):
    """Why an event produced no notification."""

    SEVERITY_BELOW_MINIMUM = "severity_below_minimum"
    NO_CHANNELS = "no_channels"
    COOLDOWN = "cooldown"


@attrs.frozen(kw_only=True)
class Plan:
    """Notify on ``channels``, in preference order; the rest says why."""

    kind: str
    severity: Severity
    channels: tuple[Channel, ...]
    source: PreferenceSource
    min_severity: Severity
    ignored_channels: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class Skip:
    """Do not notify, for ``reason``; the rest is what was compared to get there."""

    kind: str
    severity: Severity
    reason: SkipReason
    source: PreferenceSource
    min_severity: Severity
    ignored_channels: tuple[str, ...] = ()
    last_sent_at: datetime | None = None
    cooldown_ends_at: datetime | None = None


@attrs.frozen(kw_only=True)
class DecisionInputs:
    """What a store knows that the decision needs, for one (user, kind)."""

    kind_preference: Preference | None = None
    global_preference: Preference | None = None
    last_sent_at: datetime | None = None


_CHANNEL_BY_NAME = {channel.value: channel for channel in Channel}


def _known_channels(names: tuple[str, ...]) -> tuple[tuple[Channel, ...], tuple[str, ...]]:
    """Split stored names into known channels (first occurrence order) and unknown names."""
    known: list[Channel] = []
    ignored: list[str] = []
    for name in names:
        channel = _CHANNEL_BY_NAME.get(name)
        if channel is None:
            if name not in ignored:
                ignored.append(name)
        elif channel not in known:
            known.append(channel)
    return tuple(known), tuple(ignored)


def _require_aware(name: str, moment: datetime | None) -> None:
    if moment is not None and moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {moment.isoformat()}")


def decide(
    event: Event,
    *,
    kind_preference: Preference | None,
    global_preference: Preference | None,
    last_sent_at: datetime | None,
    now: datetime,
    policy: Policy = Policy(),  # noqa: B008 - Policy is frozen; one shared default is safe
) -> Result[Plan, Skip]:
    """Decide whether and where to notify about ``event``.

    Rules, first match wins: the effective preference is the per-kind row, else the
    global row's channels with the policy's minimum severity, else the policy; then
    severity below the minimum skips, no channels skips, a notification for the same
    (user, kind) less than ``policy.cooldown`` before ``now`` skips; otherwise notify.

    Raises ``ValueError`` for a naive ``now`` or ``last_sent_at``: mixing naive and
    aware times is a programming error, never a skip.
    """
    _require_aware("now", now)
    _require_aware("last_sent_at", last_sent_at)
    if kind_preference is not None:
        channels, ignored = _known_channels(kind_preference.channels)
        min_severity = kind_preference.min_severity
        source = PreferenceSource.KIND
    elif global_preference is not None:
        channels, ignored = _known_channels(global_preference.channels)
        min_severity = policy.default_min_severity
        source = PreferenceSource.GLOBAL
    else:
        channels, ignored = policy.default_channels, ()
        min_severity = policy.default_min_severity
        source = PreferenceSource.DEFAULT

    reason: SkipReason | None = None
    cooldown_ends_at: datetime | None = None
    if event.severity.rank < min_severity.rank:
        reason = SkipReason.SEVERITY_BELOW_MINIMUM
    elif not channels:
        reason = SkipReason.NO_CHANNELS
    elif last_sent_at is not None and now - last_sent_at < policy.cooldown:
        reason = SkipReason.COOLDOWN
        cooldown_ends_at = last_sent_at + policy.cooldown

    if reason is not None:
        return Failure(
            Skip(
                kind=event.kind,
                severity=event.severity,
                reason=reason,
                source=source,
                min_severity=min_severity,
                ignored_channels=ignored,
                last_sent_at=last_sent_at,
                cooldown_ends_at=cooldown_ends_at,
            )
        )
    return Success(
        Plan(
            kind=event.kind,
            severity=event.severity,
            channels=channels,
            source=source,
            min_severity=min_severity,
            ignored_channels=ignored,
        )
    )


def decide_with(
    event: Event,
    inputs: DecisionInputs,
    now: datetime,
    policy: Policy = Policy(),  # noqa: B008
) -> Result[Plan, Skip]:
    """``decide`` with its store-provided inputs bundled, as stores and replay call it."""
    return decide(
        event,
        kind_preference=inputs.kind_preference,
        global_preference=inputs.global_preference,
        last_sent_at=inputs.last_sent_at,
        now=now,
        policy=policy,
    )


def outcome_of(result: Result[Plan, Skip]) -> Plan | Skip:
    """The Plan or the Skip inside a decision, for code that records either."""
    return unwrap_or_failure(result)

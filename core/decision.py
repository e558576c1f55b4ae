"""The decision: whether to notify a user about an event, and on which channels.

A pure function of its arguments, so that applications can embed it, property-test
it and replay history through it. The rules and their order are those of README.md,
"The rules"; each outcome carries the values it compared, so a skip can be explained
later without re-reading the database.
"""

from __future__ import annotations

import enum
import functools
from datetime import UTC, datetime

import attrs
from returns.result import Failure, Result, Success

from tidings.core.quiet_hours import QuietHours, held_until, hold_text
from tidings.core.values import (
    SEVERITY_RANK,
    Channel,
    Event,
    Policy,
    Preference,
    PreferenceSource,
    Severity,
)


class SkipReason(enum.Enum):
    """Why an event produced no notification."""

    SEVERITY_BELOW_MINIMUM = "severity_below_minimum"
    NO_CHANNELS = "no_channels"
    COOLDOWN = "cooldown"

    __hash__ = object.__hash__  # see Severity


HELD_CHANNELS = frozenset({Channel.EMAIL, Channel.WEBHOOK})
"""What quiet hours hold; the inbox is silent, so in-app never waits."""


@attrs.frozen(kw_only=True, cache_hash=True)
class Hold:
    """Quiet hours: the held channels' first attempt waits until ``until`` (UTC);
    ``text`` says so where the user is ("held until 07:00 Europe/Berlin (quiet hours)")."""

    until: datetime
    text: str


@attrs.frozen(kw_only=True, cache_hash=True)
class Plan:
    """Notify on ``channels``, in preference order; the rest says why.

    ``escalated_over`` is the severity of the key's last notification (at
    ``last_sent_at``) when this one rises above it inside the cooldown; ``hold`` is set
    when quiet hours delay the email and webhook deliveries.
    """

    kind: str
    severity: Severity
    channels: tuple[Channel, ...]
    source: PreferenceSource
    min_severity: Severity
    ignored_channels: tuple[str, ...] = ()
    escalated_over: Severity | None = None
    last_sent_at: datetime | None = None
    hold: Hold | None = None


@attrs.frozen(kw_only=True, cache_hash=True)
class Skip:
    """Do not notify, for ``reason``; the rest is what was compared to get there.

    A cooldown skip carries ``last_severity`` when escalation compared it, and
    ``held_for_digest`` when the event waits for the key's digest at the cooldown's end.
    """

    kind: str
    severity: Severity
    reason: SkipReason
    source: PreferenceSource
    min_severity: Severity
    ignored_channels: tuple[str, ...] = ()
    last_sent_at: datetime | None = None
    cooldown_ends_at: datetime | None = None
    last_severity: Severity | None = None
    held_for_digest: bool = False


@attrs.frozen(kw_only=True)
class DecisionInputs:
    """What a store knows that the decision needs, for one (user, kind)."""

    kind_preference: Preference | None = None
    global_preference: Preference | None = None
    last_sent_at: datetime | None = None
    last_severity: Severity | None = None
    quiet_hours: QuietHours | None = None


_CHANNEL_BY_NAME = {channel.value: channel for channel in Channel}

# Decisions repeat: the same few kinds, severities and preference rows come back for
# every user. The values are immutable, so the non-time-dependent outcomes (and the
# split of stored channel names) are built once and shared; bounded, so the memory
# held stays flat however many kinds appear.
_CACHE_SIZE = 4096


@functools.lru_cache(maxsize=_CACHE_SIZE)
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


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _planned(  # noqa: PLR0917 - positional: the cheapest cache key
    kind: str,
    severity: Severity,
    channels: tuple[Channel, ...],
    source: PreferenceSource,
    min_severity: Severity,
    ignored: tuple[str, ...],
) -> Result[Plan, Skip]:
    plan = Plan(
        kind=kind,
        severity=severity,
        channels=channels,
        source=source,
        min_severity=min_severity,
        ignored_channels=ignored,
    )
    return Success(plan)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _skipped(  # noqa: PLR0917 - positional: the cheapest cache key
    kind: str,
    severity: Severity,
    reason: SkipReason,
    source: PreferenceSource,
    min_severity: Severity,
    ignored: tuple[str, ...],
) -> Result[Plan, Skip]:
    skip = Skip(
        kind=kind,
        severity=severity,
        reason=reason,
        source=source,
        min_severity=min_severity,
        ignored_channels=ignored,
    )
    return Failure(skip)


def _as_utc(name: str, moment: datetime) -> datetime:
    """The instant in UTC, so durations are exact even across daylight-saving changes."""
    zone = moment.tzinfo
    if zone is UTC:
        return moment
    if zone is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {moment.isoformat()}")
    return moment.astimezone(UTC)


def decide(
    event: Event,
    *,
    kind_preference: Preference | None,
    global_preference: Preference | None,
    last_sent_at: datetime | None,
    now: datetime,
    policy: Policy = Policy(),  # noqa: B008 - Policy is frozen; one shared default is safe
    last_severity: Severity | None = None,
    quiet_hours: QuietHours | None = None,
) -> Result[Plan, Skip]:
    """Decide whether and where to notify about ``event``.

    Rules, first match wins: the effective preference is the per-kind row, else the
    global row's channels with the policy's minimum severity, else the policy; then
    severity below the minimum skips, no channels skips, a notification for the same
    (user, kind) less than ``policy.cooldown`` before ``now`` (or after it) skips,
    unless ``policy.escalate_past_cooldown`` and the event is more severe than that
    notification (``last_severity``); otherwise notify. A notification inside the
    user's ``quiet_hours`` holds its email and webhook deliveries until the window
    ends (not a critical one, unless ``policy.quiet_hours_hold_critical``). A cooldown
    skip is held for the key's digest when the per-kind preference's ``digest`` says
    so, or, if it says nothing, ``policy.digest_after_cooldown``.

    Raises ``ValueError`` for a naive ``now`` or ``last_sent_at``: mixing naive and
    aware times is a programming error, never a skip.
    """
    if now.tzinfo is not UTC:  # the common case skips the call
        now = _as_utc("now", now)
    channels, ignored, min_severity, source = _effective(kind_preference, global_preference, policy)
    severity = event.severity
    if SEVERITY_RANK[severity] < SEVERITY_RANK[min_severity]:
        return _skipped(
            event.kind, severity, SkipReason.SEVERITY_BELOW_MINIMUM, source, min_severity, ignored
        )
    if not channels:
        return _skipped(event.kind, severity, SkipReason.NO_CHANNELS, source, min_severity, ignored)
    escalated_over = None
    if last_sent_at is not None:
        zone = last_sent_at.tzinfo
        last_utc = last_sent_at if zone is UTC else _as_utc("last_sent_at", last_sent_at)
        if now - last_utc < policy.cooldown:
            rises = (
                policy.escalate_past_cooldown
                and last_severity is not None
                and SEVERITY_RANK[severity] > SEVERITY_RANK[last_severity]
            )
            if rises:
                escalated_over = last_severity
            else:
                ends = last_utc + policy.cooldown
                if zone is not UTC:  # reported in the zone it was given in, to read naturally
                    ends = ends.astimezone(zone)
                return Failure(
                    Skip(
                        kind=event.kind,
                        severity=severity,
                        reason=SkipReason.COOLDOWN,
                        source=source,
                        min_severity=min_severity,
                        ignored_channels=ignored,
                        last_sent_at=last_sent_at,
                        cooldown_ends_at=ends,
                        last_severity=last_severity if policy.escalate_past_cooldown else None,
                        held_for_digest=_digests(kind_preference, policy),
                    )
                )
    hold = None if quiet_hours is None else _hold(severity, channels, quiet_hours, now, policy)
    if escalated_over is None and hold is None:
        return _planned(event.kind, severity, channels, source, min_severity, ignored)
    return Success(
        Plan(
            kind=event.kind,
            severity=severity,
            channels=channels,
            source=source,
            min_severity=min_severity,
            ignored_channels=ignored,
            escalated_over=escalated_over,
            last_sent_at=last_sent_at if escalated_over is not None else None,
            hold=hold,
        )
    )


def _effective(
    kind_preference: Preference | None, global_preference: Preference | None, policy: Policy
) -> tuple[tuple[Channel, ...], tuple[str, ...], Severity, PreferenceSource]:
    """The effective preference: channels, unknown names, minimum and its layer."""
    if kind_preference is not None:
        channels, ignored = _known_channels(kind_preference.channels)
        return channels, ignored, kind_preference.min_severity, PreferenceSource.KIND
    if global_preference is not None:
        channels, ignored = _known_channels(global_preference.channels)
        return channels, ignored, policy.default_min_severity, PreferenceSource.GLOBAL
    return policy.default_channels, (), policy.default_min_severity, PreferenceSource.DEFAULT


def _digests(kind_preference: Preference | None, policy: Policy) -> bool:
    """Whether a cooldown skip waits for the key's digest: the per-kind row says so,
    or, when it says nothing, the policy."""
    if kind_preference is not None and kind_preference.digest is not None:
        return kind_preference.digest
    return policy.digest_after_cooldown


def _hold(
    severity: Severity,
    channels: tuple[Channel, ...],
    quiet_hours: QuietHours,
    now: datetime,
    policy: Policy,
) -> Hold | None:
    """When quiet hours hold the plan's email and webhook deliveries, until when."""
    if HELD_CHANNELS.isdisjoint(channels):
        return None
    if severity is Severity.CRITICAL and not policy.quiet_hours_hold_critical:
        return None
    until = held_until(quiet_hours, now)
    if until is None:
        return None
    return Hold(until=until, text=hold_text(quiet_hours, until))


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
        last_severity=inputs.last_severity,
        quiet_hours=inputs.quiet_hours,
    )


def outcome_of(result: Result[Plan, Skip]) -> Plan | Skip:
    """The Plan or the Skip inside a decision, for code that records either.

    Not ``unwrap_or_failure``, which raises and catches an exception for every Skip:
    stores call this once per event, and most events are skips, so theirs is the
    shortest path (a type check and the accessor that cannot fail after it).
    """
    if isinstance(result, Failure):
        skip: Skip = result.failure()
        return skip
    match result:
        case Success(inner):
            plan: Plan = inner
            return plan
    raise TypeError(f"not a decision: {result!r}")

"""The values the decision speaks in: events, preferences, policy, severities, channels.

They are frozen so that a decision can be cached, replayed and compared, and so that
an embedding application can share them between threads without copying.
"""

from __future__ import annotations

import enum
import functools
from datetime import datetime, timedelta

import attrs


class Severity(enum.Enum):
    """How urgent an event is. Ordered: ``INFO < WATCH < CRITICAL``."""

    INFO = "info"
    WATCH = "watch"
    CRITICAL = "critical"

    # Members are singletons compared by identity, so identity hashing is equivalent
    # and, unlike Enum's name-based hash, runs in C: decisions hash these constantly.
    __hash__ = object.__hash__

    @property
    def rank(self) -> int:
        """Position in the order, for comparisons that must be fast."""
        return SEVERITY_RANK[self]

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return SEVERITY_RANK[self] < SEVERITY_RANK[other]

    def __le__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return SEVERITY_RANK[self] <= SEVERITY_RANK[other]

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return SEVERITY_RANK[self] > SEVERITY_RANK[other]

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return SEVERITY_RANK[self] >= SEVERITY_RANK[other]


SEVERITY_RANK = {severity: rank for rank, severity in enumerate(Severity)}
"""Each severity's position: a dict lookup, for comparisons on hot paths."""


class Channel(enum.Enum):
    """Where a notification can go. In-app delivery is the notification row itself."""

    IN_APP = "in_app"
    EMAIL = "email"
    WEBHOOK = "webhook"

    __hash__ = object.__hash__  # see Severity


class PreferenceSource(enum.Enum):
    """Which layer of preferences decided: the per-kind row, the global row, or the policy."""

    KIND = "kind"
    GLOBAL = "global"
    DEFAULT = "default"

    __hash__ = object.__hash__  # see Severity


GLOBAL_KIND = "_global"
"""The reserved kind under which a user's global preference row is stored."""


@attrs.frozen(kw_only=True)
class Event:
    """Something an application wants a user to hear about.

    ``payload_json`` is kept as the JSON text it arrived as: the core never needs its
    contents, and keeping the text makes the audit row byte-for-byte what was sent.
    """

    event_id: str
    user_id: str
    kind: str
    severity: Severity
    title: str
    body: str
    payload_json: str | None = None


@attrs.frozen
class Preference:
    """One stored preference row.

    ``channels`` holds the names as stored, which may include names this version does
    not know; the decision reports those instead of failing on them.
    """

    channels: tuple[str, ...]
    min_severity: Severity
    digest: bool | None = None
    """Whether what the cooldown holds back of this kind is sent as a digest: ``None``
    follows the policy's ``digest_after_cooldown``. Only a per-kind row sets it."""


def _unique_channels(channels: tuple[Channel, ...]) -> tuple[Channel, ...]:
    return tuple(dict.fromkeys(channels))


@attrs.frozen(kw_only=True)
class Policy:
    """The operator's defaults. ``Policy()`` behaves exactly like the reference."""

    default_channels: tuple[Channel, ...] = attrs.field(
        default=(Channel.IN_APP,), converter=_unique_channels
    )
    default_min_severity: Severity = Severity.INFO
    cooldown: timedelta = timedelta(hours=24)
    escalate_past_cooldown: bool = False
    """Inside the cooldown, notify an event more severe than the key's last
    notification (and start a new cooldown) instead of skipping it."""
    quiet_hours_hold_critical: bool = False
    """Whether a user's quiet hours hold critical events too (by default they go out)."""
    digest_after_cooldown: bool = False
    """Whether what the cooldown held back is sent as one digest when it ends, for every
    kind whose preference does not say otherwise."""


def normalise_channel_names(names: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """How stores write channel names: trimmed, lower-case, blanks and repeats dropped.

    Unknown names are kept: a newer version may know them, and the decision reports
    them rather than failing.
    """
    normalised: list[str] = []
    for name in names:
        cleaned = name.strip().lower()
        if cleaned and cleaned not in normalised:
            normalised.append(cleaned)
    return tuple(normalised)


def stored_preference(preference: Preference) -> Preference:
    """What every store writes for ``preference``: its channel names normalised."""
    return attrs.evolve(preference, channels=normalise_channel_names(preference.channels))


def iso_text(moment: datetime) -> str:
    """``moment.isoformat()``, remembered: a run of cooldown skips for one (user, kind)
    renders the same two instants for every event. Keyed with the offset too, since
    equal instants in different zones compare equal but print differently."""
    return _iso_text(moment, moment.utcoffset())


@functools.lru_cache(maxsize=4096)
def _iso_text(moment: datetime, offset: timedelta | None) -> str:
    return moment.isoformat()

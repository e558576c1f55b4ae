"""Quiet hours: when a user's daily window holds delivery, and until when.

A window is wall-clock times in the user's own zone, so the instant it ends moves with
daylight saving. This module answers with exact instants, pure: the zone (a
``zoneinfo.ZoneInfo`` loaded by the caller) is handed in and only asked for offsets.

Within a stretch of constant UTC offset the wall clock runs in step with the instant, so
the end of quiet is where the wall reaches ``ends``, or the stretch's first instant when
a change of offset has already moved the wall outside the window. ``held_until`` walks
the stretches ahead of the moment, finding each change of offset by probing and halving,
because zoneinfo has no public list of transitions.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta, tzinfo

import attrs

_DAY = timedelta(days=1)
_MICROSECOND = timedelta(microseconds=1)
_PROBE_STEP = timedelta(hours=6)
"""How far apart the offset is probed. Probing misses changes only in pairs that fall
between two probes and cancel out; in the tz database consecutive changes of offset are
at least four days apart (Africa/Freetown, 1939), so six hours leaves a wide margin while
a night needs two probes or so."""
_MOST_STRETCHES = 16
"""Real windows end within a few stretches (a change of offset may move the wall back
into the window once). More means a zone that never lets the window end; the walk stops
rather than loop."""
_CLOCK = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])")
_SHOWN_TEXT = 32  # characters of a refused text quoted back, so a flood is not echoed


def _whole_minute(_instance: object, attribute: attrs.Attribute[time], value: time) -> None:
    """Windows are whole minutes so that a hold ends on a minute a user would set."""
    if not isinstance(value, time):
        raise TypeError(f"{attribute.name} must be a datetime.time, not {type(value).__name__}")
    if value.tzinfo is not None:
        raise ValueError(f"{attribute.name} must be a wall-clock time without a time zone")
    if value.second or value.microsecond:
        raise ValueError(f"{attribute.name} must be a whole minute, not {value.isoformat()}")


@attrs.frozen(kw_only=True)
class QuietHours:
    """A user's daily quiet window, in their own time zone.

    ``starts`` is inside the window and ``ends`` is not; when ``starts`` is later than
    ``ends`` the window wraps midnight. Equal times are refused: they could mean never
    or always, and a user who wants either says so by other means.
    """

    starts: time = attrs.field(validator=_whole_minute)
    ends: time = attrs.field(validator=_whole_minute)
    zone: tzinfo

    def __attrs_post_init__(self) -> None:
        if self.starts == self.ends:
            raise ValueError("quiet hours must start and end at different times")

    @property
    def zone_name(self) -> str:
        """The zone as users and the tz database name it (a ZoneInfo's key)."""
        return str(self.zone)


def parse_clock(field: str, text: str) -> time:
    """``HH:MM`` on a 24-hour clock as a ``time``; the one spelling accepted, so that
    what a user typed and what is stored and shown back are the same text.

    Raises ValueError naming ``field`` and the problem."""
    match = _CLOCK.fullmatch(text)
    if match is None:
        shown = text if len(text) <= _SHOWN_TEXT else text[:_SHOWN_TEXT] + "..."
        raise ValueError(f"{field}: {shown!r} is not a time of day as HH:MM")
    return time(int(match[1]), int(match[2]))


def is_quiet(window: QuietHours, moment: datetime) -> bool:
    """Whether the wall clock in the window's zone shows a time inside the window at
    ``moment``. In a repeated hour both passes of a wall time count alike (fold is
    ignored), since a user's window names wall times, not instants."""
    _require_aware("moment", moment)
    return _inside(window, moment.astimezone(window.zone).time())


def held_until(window: QuietHours, moment: datetime) -> datetime | None:
    """``None`` when ``moment`` is not quiet; otherwise the earliest instant at or after
    ``moment`` that is not quiet, in UTC.

    Daylight saving follows from that definition: an end the clocks jump over resolves
    to the first instant after the jump, an end that happens twice to the first pass
    still ahead, and a jump that takes the wall clock out of the window ends the hold
    at the jump. Raises ValueError for a zone whose offsets never let the window end.
    """
    if not is_quiet(window, moment):
        return None
    at = moment.astimezone(UTC)
    for _ in range(_MOST_STRETCHES):
        local = at.astimezone(window.zone)
        wall = local.time()
        if not _inside(window, wall):
            return at
        leaves = at + _until(window.ends, wall)
        change = _next_change(window.zone, at, leaves, local.utcoffset())
        if change is None:
            return leaves
        at = change
    raise ValueError(
        f"quiet hours in {window.zone_name} do not end within {_MOST_STRETCHES} "
        "changes of UTC offset"
    )


def hold_text(window: QuietHours, until: datetime) -> str:
    """Why a notification waits, in the user's own clock and zone, for the inbox and
    logs: ``held until 07:00 Europe/Berlin (quiet hours)``."""
    _require_aware("until", until)
    shown = until.astimezone(window.zone).strftime("%H:%M")
    return f"held until {shown} {window.zone_name} (quiet hours)"


def _require_aware(name: str, instant: datetime) -> None:
    """A naive datetime would be read in the machine's zone: impure, and wrong."""
    if instant.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, not naive: {instant.isoformat()}")


def _inside(window: QuietHours, wall: time) -> bool:
    if window.starts < window.ends:
        return window.starts <= wall < window.ends
    return wall >= window.starts or wall < window.ends


def _until(ends: time, wall: time) -> timedelta:
    """How long the wall clock runs from ``wall`` until it next shows ``ends``: never
    zero, since ``ends`` is outside the window and ``wall`` inside."""
    return (_since_midnight(ends) - _since_midnight(wall)) % _DAY


def _since_midnight(clock: time) -> timedelta:
    return timedelta(
        hours=clock.hour, minutes=clock.minute, seconds=clock.second, microseconds=clock.microsecond
    )


def _offset_at(instant: datetime, zone: tzinfo) -> timedelta | None:
    """The zone's offset at a UTC instant. ``zone.utcoffset`` would read its argument
    as a wall time, ambiguous in a repeated hour; ``astimezone`` reads an instant."""
    return instant.astimezone(zone).utcoffset()


def _next_change(
    zone: tzinfo, start: datetime, end: datetime, offset: timedelta | None
) -> datetime | None:
    """The first instant in (start, end] whose offset differs from ``offset``, the
    offset at ``start``; ``None`` when the probes find none."""
    probes = -(-(end - start) // _PROBE_STEP)  # rounded up; end - start is under a day
    same = start
    for step in range(1, probes + 1):
        probe = min(start + step * _PROBE_STEP, end)
        if _offset_at(probe, zone) != offset:
            return _first_different(zone, same, probe, offset)
        same = probe
    return None


def _first_different(
    zone: tzinfo, same: datetime, different: datetime, offset: timedelta | None
) -> datetime:
    """Halves (same, different] down to the microsecond: about 35 halvings for six
    hours, needed only on the rare night that holds a change of offset."""
    while different - same > _MICROSECOND:
        middle = same + (different - same) // 2
        if _offset_at(middle, zone) == offset:
            same = middle
        else:
            different = middle
    return different

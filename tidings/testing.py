"""What a host application's tests need from tidings, and what tidings' own tests use.

A clock that only moves when told (``FakeClock``), tidings on a store in memory
(``memory_tidings``, ``async_memory_tidings``), and hypothesis strategies for the values
the decision speaks in. The strategies draw what tidings really meets rather than what is
easy to write by hand: events exactly as ``parse_event`` accepts them (any printable
Unicode, payloads or none), preference rows as stored (unknown channel names, repeats,
silent empty rows) and aware datetimes in zones whose offsets change, often right at a
change, where wall-clock arithmetic goes wrong. Install with ``tidings[testing]``: it
brings hypothesis, and tzdata for machines without a system time-zone database.
"""

from __future__ import annotations

import functools
import string
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

from hypothesis import strategies as st
from returns.result import Failure

from tidings.core import Channel, Event, Policy, Preference, Severity, parse_event
from tidings.runner import bootstrap
from tidings.runner.api import AsyncTidings
from tidings.runner.clock import system_clock
from tidings.runner.config import load_settings
from tidings.runner.sync_api import Tidings

__all__ = [
    "ZONE_NAMES",
    "FakeClock",
    "async_memory_tidings",
    "aware_datetimes",
    "channel_names",
    "channels",
    "cooldowns",
    "event_mappings",
    "events",
    "memory_tidings",
    "policies",
    "preferences",
    "severities",
    "zones",
]


class FakeClock:
    """A clock that only moves when told: ``clock()`` reads it, ``advance`` moves it,
    ``set`` puts it anywhere. Pass it wherever tidings takes ``clock``."""

    def __init__(self, start: datetime) -> None:
        _check_aware(start)
        self._now = start

    def __call__(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> datetime:
        """Move by ``delta`` (forward, or back to test a clock that jumps); returns the
        new reading."""
        self._now = self._now + delta
        return self._now

    def set(self, moment: datetime) -> datetime:
        """Jump to ``moment``; returns it."""
        _check_aware(moment)
        self._now = moment
        return moment


def _check_aware(moment: datetime) -> None:
    if moment.utcoffset() is None:
        raise ValueError("tidings.testing needs timezone-aware datetimes")


# ------------------------------------------------------------------ in-memory tidings


def async_memory_tidings(clock: FakeClock | None = None, **settings: object) -> AsyncTidings:
    """``AsyncTidings`` on a store of its own in memory, born with its schema: what one
    test writes, no other sees. ``settings`` are any settings by name, as the ``tidings``
    command takes them (``cooldown_seconds=3600``, ``default_channels="in_app,email"``);
    ``TIDINGS_*`` variables and config files are not read, so the developer's shell never
    changes a test. ``clock`` (the real time if None) is the time the store records and
    the dispatcher decides by."""
    if "database_url" in settings:
        raise ValueError("memory tidings keeps its store in memory: give no database_url")
    chosen = load_settings({**settings, "database_url": "memory://"}, environ={})
    return AsyncTidings(bootstrap.open_runtime(chosen, clock=clock or system_clock))


def memory_tidings(clock: FakeClock | None = None, **settings: object) -> Tidings:
    """``async_memory_tidings`` for synchronous code: a ``Tidings``. Close it (or use it
    as ``with``) to end its thread."""
    return Tidings(async_memory_tidings(clock, **settings))


# ------------------------------------------------------------- severities and channels


def severities() -> st.SearchStrategy[Severity]:
    """Any severity."""
    return st.sampled_from(Severity)


def channels() -> st.SearchStrategy[Channel]:
    """Any channel this version knows."""
    return st.sampled_from(Channel)


_UNKNOWN_NAMES = ("sms", "push", "Email", " email", "")
"""Names a stored row may hold that no channel has: a newer version's, other cases,
stray blanks."""


def channel_names() -> st.SearchStrategy[tuple[str, ...]]:
    """Channel names as a preference row may store them: known names, unknown ones,
    repeats, and often none at all (a silent row)."""
    name = st.one_of(
        st.sampled_from([channel.value for channel in Channel]),
        st.sampled_from(_UNKNOWN_NAMES),
        st.text(max_size=10),
    )
    return st.one_of(st.just(()), st.lists(name, max_size=8).map(tuple))


def preferences(
    *, min_severity: Severity | None = None, including: Iterable[Channel] = ()
) -> st.SearchStrategy[Preference]:
    """Preference rows as stored (see ``channel_names``). ``min_severity`` fixes the
    row's minimum; ``including`` lists channels the row always names, among the rest."""
    minimums = severities() if min_severity is None else st.just(min_severity)
    return _preference(minimums, tuple(channel.value for channel in including))


@st.composite
def _preference(
    draw: st.DrawFn, minimums: st.SearchStrategy[Severity], including: tuple[str, ...]
) -> Preference:
    names = list(draw(channel_names()))
    for name in including:
        names.insert(draw(st.integers(min_value=0, max_value=len(names))), name)
    return Preference(tuple(names), draw(minimums))


_MICROSECOND = timedelta(microseconds=1)


def cooldowns() -> st.SearchStrategy[timedelta]:
    """Cooldowns a policy may have: none, the shortest, an hour, the default day, and
    anything up to 30 days."""
    return st.one_of(
        st.sampled_from([timedelta(0), _MICROSECOND, timedelta(hours=1), timedelta(hours=24)]),
        st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=30)),
    )


def policies() -> st.SearchStrategy[Policy]:
    """Any policy: default channels (possibly none), minimum severity and cooldown."""
    return st.builds(
        Policy,
        default_channels=st.lists(channels(), unique=True).map(tuple),
        default_min_severity=severities(),
        cooldown=cooldowns(),
    )


# ------------------------------------------------------------------------------- events

_PRINTABLE = st.characters(exclude_categories=["Cc", "Cs"])
_SIMPLE = string.ascii_lowercase + string.digits + "_-."


def _identifiers() -> st.SearchStrategy[str]:
    return st.one_of(
        st.text(_SIMPLE, min_size=1, max_size=16),
        st.text(_PRINTABLE, min_size=1, max_size=128).filter(lambda text: bool(text.strip())),
    )


def _json_values() -> st.SearchStrategy[object]:
    return st.recursive(
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(min_value=-(10**30), max_value=10**30),
            st.floats(allow_nan=False, allow_infinity=False),
            st.text(_PRINTABLE, max_size=20),
        ),
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.dictionaries(st.text(_PRINTABLE, max_size=8), children, max_size=4),
        ),
        max_leaves=12,
    )


def event_mappings(
    *, user_id: str | None = None, kind: str | None = None, severity: Severity | None = None
) -> st.SearchStrategy[dict[str, object]]:
    """Events as a producer sends them, valid: the JSON objects ``parse_event`` accepts,
    with ids, kinds, titles and bodies in any printable Unicode (users and kinds often
    from a few common names, so that drawn events share them), with a ``payload`` object
    or none. ``user_id``, ``kind`` and ``severity`` fix those fields."""
    _check_fixed(user_id, kind)
    titles = st.text(
        st.characters(exclude_categories=["Cc", "Cs", "Zl", "Zp"]), min_size=1, max_size=200
    ).filter(lambda text: bool(text.strip()))
    bodies = st.text(
        st.characters(
            exclude_categories=["Cs"],
            exclude_characters="\x00" + "".join(map(chr, range(0x80, 0xA0))),
        ),
        max_size=1000,
    )
    kinds = st.one_of(
        st.sampled_from(["burnout_overload", "deadline", "security"]),
        _identifiers().filter(lambda name: name != "_global"),
    )
    users = st.one_of(st.sampled_from(["u1", "u2", "u42"]), _identifiers())
    payloads = st.dictionaries(st.text(_PRINTABLE, max_size=8), _json_values(), max_size=5)
    return st.fixed_dictionaries(
        {
            "event_id": _identifiers(),
            "user_id": users if user_id is None else st.just(user_id),
            "kind": kinds if kind is None else st.just(kind),
            "severity": (severities() if severity is None else st.just(severity)).map(
                lambda chosen: chosen.value
            ),
            "title": titles,
            "body": bodies,
        },
        optional={"payload": payloads},
    )


def _check_fixed(user_id: str | None, kind: str | None) -> None:
    """A fixed user_id or kind that parse_event refuses fails here, not at draw time."""
    sample = parse_event(
        {
            "event_id": "e",
            "user_id": "u" if user_id is None else user_id,
            "kind": "k" if kind is None else kind,
            "severity": "info",
            "title": "t",
            "body": "",
        }
    )
    if isinstance(sample, Failure):
        raise ValueError(f"no valid event has {sample.failure()}")


def events(
    *, user_id: str | None = None, kind: str | None = None, severity: Severity | None = None
) -> st.SearchStrategy[Event]:
    """The events ``parse_event`` makes of ``event_mappings`` (same options). Event ids
    are not unique across draws: ``st.lists(events(), unique_by=lambda e: e.event_id)``
    when that matters."""
    return event_mappings(user_id=user_id, kind=kind, severity=severity).map(_accepted)


def _accepted(fields: dict[str, object]) -> Event:
    result = parse_event(fields)
    if isinstance(result, Failure):
        raise AssertionError(f"tidings.testing drew an invalid event: {result.failure()}")
    event: Event = result.unwrap()
    return event


# ----------------------------------------------------------------------------- datetimes

ZONE_NAMES = ("Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kathmandu")
"""The named zones drawn: daylight saving in both hemispheres (Lord Howe's shift is half
an hour) and an offset of +05:45 that changed once."""

_EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
_LATEST = datetime(2100, 1, 1, tzinfo=UTC)
_SCANNED = (datetime(1970, 1, 1, tzinfo=UTC), datetime(2101, 1, 1, tzinfo=UTC))
_PROBE_STEP = timedelta(days=6)  # no zone drawn changes offset twice within six days
_NEAR_A_CHANGE = (
    timedelta(0),
    -_MICROSECOND,
    _MICROSECOND,
    -timedelta(hours=1),
    timedelta(hours=1),
)


def zones() -> st.SearchStrategy[tzinfo]:
    """UTC, the zones of ``ZONE_NAMES`` and fixed offsets up to a minute short of a day."""
    minutes = 24 * 60 - 1
    fixed = st.integers(min_value=-minutes, max_value=minutes).map(
        lambda offset: timezone(timedelta(minutes=offset))
    )
    return st.one_of(st.just(UTC), _named_zones(), fixed)


def _named_zones() -> st.SearchStrategy[ZoneInfo]:
    return st.sampled_from(ZONE_NAMES).map(ZoneInfo)


def aware_datetimes(
    *, min_value: datetime = _EARLIEST, max_value: datetime = _LATEST
) -> st.SearchStrategy[datetime]:
    """Instants between ``min_value`` and ``max_value`` (2000 to 2100 by default) as a
    clock in one of ``zones()`` shows them, about half in a named zone. Half of those in
    zones whose offset changes (between 1970 and 2100) lie within two hours of a change,
    often a microsecond or an hour from it, so repeated hours (both passes, the second
    with ``fold=1``) come up often. Never a wall time that does not exist."""
    _check_aware(min_value)
    _check_aware(max_value)
    low, high = min_value.astimezone(UTC), max_value.astimezone(UTC)
    if low > high:
        raise ValueError("aware_datetimes: min_value is after max_value")
    return _aware_datetime(low, high)


@st.composite
def _aware_datetime(draw: st.DrawFn, low: datetime, high: datetime) -> datetime:
    zone = draw(st.one_of(_named_zones(), zones()))  # named zones twice as likely
    changes = [change for change in _offset_changes(zone) if low <= change <= high]
    near_a_change: bool = bool(changes) and draw(st.booleans())
    if near_a_change:
        change = draw(st.sampled_from(changes))
        step = draw(
            st.one_of(
                st.sampled_from(_NEAR_A_CHANGE),
                st.timedeltas(min_value=-timedelta(hours=2), max_value=timedelta(hours=2)),
            )
        )
        instant = min(max(change + step, low), high)
    else:
        span = (high - low) // _MICROSECOND
        instant = low + draw(st.integers(min_value=0, max_value=span)) * _MICROSECOND
    return instant.astimezone(zone)


def _offset(instant: datetime, zone: tzinfo) -> timedelta | None:
    return instant.astimezone(zone).utcoffset()


@functools.lru_cache(maxsize=32)
def _offset_changes(zone: tzinfo) -> tuple[datetime, ...]:
    """The first instant of each new UTC offset of ``zone`` in the scanned years, found
    by probing every six days and halving down to the microsecond."""
    if isinstance(zone, timezone):
        return ()
    changes: list[datetime] = []
    at, until = _SCANNED
    offset = _offset(at, zone)
    while at < until:
        probe = min(at + _PROBE_STEP, until)
        if _offset(probe, zone) != offset:
            probe = _first_different(zone, at, probe, offset)
            changes.append(probe)
            offset = _offset(probe, zone)
        at = probe
    return tuple(changes)


def _first_different(
    zone: tzinfo, same: datetime, different: datetime, offset: timedelta | None
) -> datetime:
    while different - same > _MICROSECOND:
        middle = same + (different - same) // 2
        if _offset(middle, zone) == offset:
            same = middle
        else:
            different = middle
    return different

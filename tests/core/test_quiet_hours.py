"""Properties of ``core.quiet_hours``: holds end exactly where the wall clock leaves the
window, daylight saving included.

The reference here shares no code with the module: it asks ``astimezone`` for the wall
clock at each candidate instant and tests inside-ness by arithmetic on the circle of a
day. Inside-ness can change only where the wall clock reaches a whole minute (windows are
whole minutes) or the offset changes. Both happen at whole UTC minutes, except in
Africa/Monrovia before 1972 (offset -0:44:30, left at 00:44:30 UTC), where both happen at
30 seconds past: so the candidates are each whole UTC minute and the instant within it
where the wall clock shows a whole minute.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, available_timezones

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tidings.core.quiet_hours import QuietHours, held_until, hold_text, is_quiet, parse_clock

MINUTE = timedelta(minutes=1)
MICROSECOND = timedelta(microseconds=1)
DAY_US = 24 * 60 * 60 * 10**6
HORIZON = timedelta(hours=50)
"""No real window holds longer than a day plus the largest step back of a clock."""

FIRST = datetime(1970, 1, 1, tzinfo=UTC)
LAST = datetime(2037, 12, 31, tzinfo=UTC)

ZONE_NAMES = tuple(sorted(available_timezones()))
SHIFTING = (
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",
    "America/Santiago",
    "Pacific/Chatham",
    "Asia/Tehran",
    "Africa/Casablanca",
    "Africa/Monrovia",
    "Pacific/Apia",
)
"""Zones drawn more often: both hemispheres, half-hour and 45-minute offsets, shifts of
half an hour (Lord Howe), Ramadan pauses (Casablanca), a sub-minute offset (Monrovia) and
a skipped day (Apia, 2011)."""

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")


# ----------------------------------------------------------------------------- reference


def us_of_day(clock: time) -> int:
    return ((clock.hour * 60 + clock.minute) * 60 + clock.second) * 10**6 + clock.microsecond


def quiet(window: QuietHours, instant: datetime) -> bool:
    """Inside the window: how far past ``starts`` the wall clock is, round the circle of
    a day, is less than the window's length."""
    wall = us_of_day(instant.astimezone(window.zone).time())
    starts, ends = us_of_day(window.starts), us_of_day(window.ends)
    return (wall - starts) % DAY_US < (ends - starts) % DAY_US


def candidates(zone: tzinfo, moment: datetime) -> Iterator[datetime]:
    """``moment``, then every later instant where inside-ness could change, in order."""
    start = moment.astimezone(UTC)
    yield start
    minute = start.replace(second=0, microsecond=0)
    while minute <= start + HORIZON:
        seconds = (60 - minute.astimezone(zone).second) % 60
        for instant in (minute, minute + timedelta(seconds=seconds)):
            if instant > start:
                yield instant
        minute += MINUTE


def first_not_quiet(window: QuietHours, moment: datetime) -> datetime | None:
    """What ``held_until`` must answer, found by walking every candidate."""
    if not quiet(window, moment):
        return None
    for instant in candidates(window.zone, moment):
        if not quiet(window, instant):
            return instant
    raise AssertionError(f"{window} still quiet {HORIZON} after {moment}")


def check_hold(window: QuietHours, moment: datetime) -> datetime | None:
    """Asserts every property of one hold and returns it."""
    until = held_until(window, moment)
    assert (until is None) == (not is_quiet(window, moment))
    assert is_quiet(window, moment) == quiet(window, moment)
    if until is not None:
        assert until.tzinfo is UTC
        assert until >= moment
        assert not quiet(window, until)
        assert not is_quiet(window, until)
    assert until == first_not_quiet(window, moment)
    return until


@functools.cache
def offset_changes(name: str, year: int) -> tuple[datetime, ...]:
    """The first instant of each new UTC offset of the zone in the year, found by probing
    every day (changes are days apart) and halving to the microsecond."""
    zone = ZoneInfo(name)

    def offset(instant: datetime) -> timedelta | None:
        return instant.astimezone(zone).utcoffset()

    changes: list[datetime] = []
    day = datetime(year, 1, 1, tzinfo=UTC)
    while day.year == year:
        same, different = day, day + timedelta(days=1)
        if offset(same) != offset(different):
            while different - same > MICROSECOND:
                middle = same + (different - same) // 2
                same, different = (
                    (middle, different) if offset(middle) == offset(same) else (same, middle)
                )
            changes.append(different)
        day += timedelta(days=1)
    return tuple(changes)


# ---------------------------------------------------------------------------- strategies

clocks = st.builds(time, hour=st.integers(0, 23), minute=st.integers(0, 59))
minutes_near = st.integers(min_value=-90, max_value=90).map(lambda count: count * MINUTE)


def near(clock: datetime, shift: timedelta) -> time:
    """The whole minute ``shift`` from the wall clock ``clock``."""
    return (clock.replace(second=0, microsecond=0, tzinfo=None) + shift).time()


@st.composite
def holds(draw: st.DrawFn) -> tuple[QuietHours, datetime]:
    """A window and a moment, anywhere from 1970 to 2037. In zones that change offset
    that year, three moments in four lie up to eight hours before a change or just after
    it, and most of those windows start before the moment and end near the wall times
    on either side of the change: the hold often spans the change, and skipped and
    repeated ends come up often."""
    name = draw(st.one_of(st.sampled_from(SHIFTING), st.sampled_from(ZONE_NAMES)))
    zone = ZoneInfo(name)
    year = draw(st.integers(FIRST.year, LAST.year))
    changes = offset_changes(name, year)
    near_a_change: bool = bool(changes) and draw(st.integers(0, 3)) > 0
    if not near_a_change:
        moment = datetime(year, 1, 1, tzinfo=UTC) + draw(
            st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=365))
        )
        ends = draw(clocks)
        starts = draw(clocks.filter(lambda clock: clock != ends))
        return QuietHours(starts=starts, ends=ends, zone=zone), moment.astimezone(zone)
    change = draw(st.sampled_from(changes))
    moment = change + draw(
        st.one_of(
            st.sampled_from((timedelta(0), -MICROSECOND, MICROSECOND)),
            st.timedeltas(min_value=-timedelta(hours=8), max_value=timedelta(hours=1)),
        )
    )
    side = draw(st.sampled_from((change - MICROSECOND, change))).astimezone(zone)
    ends = draw(st.one_of(minutes_near.map(lambda shift: near(side, shift)), clocks))
    before = st.integers(min_value=0, max_value=8 * 60).map(lambda count: -count * MINUTE)
    starts = draw(st.one_of(before.map(lambda shift: near(moment.astimezone(zone), shift)), clocks))
    if starts == ends:
        starts = near(datetime.combine(FIRST.date(), starts), MINUTE)
    return QuietHours(starts=starts, ends=ends, zone=zone), moment.astimezone(zone)


fixed_zones = st.integers(min_value=-24 * 60 + 1, max_value=24 * 60 - 1).map(
    lambda count: timezone(count * MINUTE)
)


# ---------------------------------------------------------------------------- properties


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(holds())
def test_hold_ends_at_the_first_instant_outside_the_window(
    hold: tuple[QuietHours, datetime],
) -> None:
    window, moment = hold
    check_hold(window, moment)


@settings(max_examples=50, deadline=None)
@given(
    zone=fixed_zones,
    starts=clocks,
    ends=clocks,
    moment=st.datetimes(
        min_value=FIRST.replace(tzinfo=None),
        max_value=LAST.replace(tzinfo=None),
        timezones=st.just(UTC),
    ),
)
def test_fixed_offsets_hold_for_the_window_length_at_most(
    zone: tzinfo, starts: time, ends: time, moment: datetime
) -> None:
    assume(starts != ends)
    window = QuietHours(starts=starts, ends=ends, zone=zone)
    until = check_hold(window, moment)
    if until is not None:
        length = (us_of_day(ends) - us_of_day(starts)) % DAY_US
        assert until - moment <= timedelta(microseconds=length)


# -------------------------------------------------------------- daylight saving, by hand


def at(
    zone: tzinfo, year: int, month: int, day: int, hour: int, minute: int, *more: int, fold: int = 0
) -> datetime:
    """A wall time in ``zone``; ``more`` is seconds and microseconds."""
    second, microsecond = (*more, 0, 0)[:2]
    return datetime(year, month, day, hour, minute, second, microsecond, zone, fold=fold)


def utc(year: int, month: int, day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


@pytest.mark.parametrize(
    ("zone", "starts", "ends", "moment", "expected"),
    [
        # Berlin springs forward 2026-03-29 02:00 -> 03:00: an end at 02:30 never shows,
        # the hold ends when the clocks jump.
        (BERLIN, "22:00", "02:30", at(BERLIN, 2026, 3, 28, 23, 0), utc(2026, 3, 29, 1, 0)),
        # Berlin falls back 2026-10-25 03:00 -> 02:00: an end at 02:30 shows twice; the
        # first pass ends the hold...
        (BERLIN, "22:00", "02:30", at(BERLIN, 2026, 10, 24, 23, 0), utc(2026, 10, 25, 0, 30)),
        # ... unless the moment is in the second pass of the hour, back inside the window.
        (
            BERLIN,
            "22:00",
            "02:30",
            at(BERLIN, 2026, 10, 25, 2, 10, fold=1),
            utc(2026, 10, 25, 1, 30),
        ),
        # The step back itself takes 02:50 summer time to 02:00 winter time, outside.
        (BERLIN, "02:45", "07:00", at(BERLIN, 2026, 10, 25, 2, 50), utc(2026, 10, 25, 1, 0)),
        # Wrapping midnight on an ordinary night, and a microsecond before its end.
        (BERLIN, "22:00", "07:00", at(BERLIN, 2026, 6, 1, 23, 30), utc(2026, 6, 2, 5, 0)),
        (
            BERLIN,
            "22:00",
            "07:00",
            at(BERLIN, 2026, 6, 2, 6, 59, 59, 999999),
            utc(2026, 6, 2, 5, 0),
        ),
        (BERLIN, "22:00", "07:00", at(BERLIN, 2026, 6, 2, 7, 0), None),
        (BERLIN, "22:00", "07:00", at(BERLIN, 2026, 6, 1, 21, 59, 59, 999999), None),
        # New York falls back 2026-11-01 02:00 -> 01:00, out of a window from 01:45.
        (NEW_YORK, "01:45", "07:00", at(NEW_YORK, 2026, 11, 1, 1, 50), utc(2026, 11, 1, 6, 0)),
        # New York springs forward 2026-03-08 02:00 -> 03:00, past a window to 02:30.
        (NEW_YORK, "01:00", "02:30", at(NEW_YORK, 2026, 3, 8, 1, 30), utc(2026, 3, 8, 7, 0)),
        (NEW_YORK, "22:00", "07:00", at(NEW_YORK, 2026, 3, 7, 23, 0), utc(2026, 3, 8, 11, 0)),
        # Lord Howe moves half an hour: 2026-10-04 02:00 -> 02:30 skips an end at 02:15...
        (
            LORD_HOWE,
            "22:00",
            "02:15",
            at(LORD_HOWE, 2026, 10, 3, 23, 0),
            utc(2026, 10, 3, 15, 30),
        ),
        # ... and 2026-04-05 02:00 -> 01:30 shows an end at 01:45 twice.
        (LORD_HOWE, "22:00", "01:45", at(LORD_HOWE, 2026, 4, 5, 1, 40), utc(2026, 4, 4, 14, 45)),
        (LORD_HOWE, "22:00", "01:45", at(LORD_HOWE, 2026, 4, 5, 1, 50), None),
        (
            LORD_HOWE,
            "22:00",
            "01:45",
            at(LORD_HOWE, 2026, 4, 5, 1, 35, fold=1),
            utc(2026, 4, 4, 15, 15),
        ),
        # Monrovia left -0:44:30 for UTC at 1972-01-07 00:44:30 UTC, skipping its end.
        (
            ZoneInfo("Africa/Monrovia"),
            "23:00",
            "00:10",
            at(ZoneInfo("Africa/Monrovia"), 1972, 1, 6, 23, 30),
            utc(1972, 1, 7, 0, 44, 30),
        ),
        # Apia skipped 2011-12-30 entirely: the time of day goes on, so does the hold.
        (
            ZoneInfo("Pacific/Apia"),
            "22:00",
            "07:00",
            at(ZoneInfo("Pacific/Apia"), 2011, 12, 29, 23, 0),
            utc(2011, 12, 30, 17, 0),
        ),
    ],
)
def test_daylight_saving_by_hand(
    zone: tzinfo, starts: str, ends: str, moment: datetime, expected: datetime | None
) -> None:
    window = QuietHours(starts=parse_clock("from", starts), ends=parse_clock("to", ends), zone=zone)
    assert check_hold(window, moment) == expected


class Looping(tzinfo):
    """A zone no real one resembles: every six hours its clock steps back to the hour
    it showed six hours before, so a window from 00:00 to 12:00 never ends."""

    def utcoffset(self, dt: datetime | None) -> timedelta | None:
        raise AssertionError("the module must ask for offsets at instants, by astimezone")

    def dst(self, dt: datetime | None) -> timedelta | None:
        return None

    def tzname(self, dt: datetime | None) -> str:
        return "Looping"

    def fromutc(self, dt: datetime) -> datetime:
        since_midnight = dt - dt.replace(hour=0, minute=0, second=0, microsecond=0)
        offset = -(since_midnight // timedelta(hours=6)) * timedelta(hours=6)
        return (dt + offset).replace(tzinfo=timezone(offset))


def test_a_window_that_never_ends_is_refused_not_looped() -> None:
    window = QuietHours(starts=time(0), ends=time(12), zone=Looping())
    with pytest.raises(ValueError, match="do not end within 16 changes of UTC offset"):
        held_until(window, utc(2026, 1, 1, 1))


def test_naive_moments_are_refused() -> None:
    window = QuietHours(starts=time(22), ends=time(7), zone=BERLIN)
    naive = datetime(2026, 6, 1, 23)  # noqa: DTZ001 - the point of the test
    with pytest.raises(ValueError, match="moment must be timezone-aware"):
        is_quiet(window, naive)
    with pytest.raises(ValueError, match="moment must be timezone-aware"):
        held_until(window, naive)
    with pytest.raises(ValueError, match="until must be timezone-aware"):
        hold_text(window, naive)


# ---------------------------------------------------------------------- parsing, values


def accepted(text: str) -> bool:
    """HH:MM as ASCII digits, written independently of the module's pattern."""
    if len(text) != 5 or text[2] != ":" or not all(c in "0123456789" for c in text[:2] + text[3:]):
        return False
    return int(text[:2]) < 24 and int(text[3:]) < 60


@given(hour=st.integers(0, 23), minute=st.integers(0, 59))
def test_every_clock_parses(hour: int, minute: int) -> None:
    assert parse_clock("from", f"{hour:02}:{minute:02}") == time(hour, minute)


@given(
    field=st.sampled_from(("from", "to", "quiet_hours.ends")),
    text=st.one_of(
        st.text(max_size=8),
        st.from_regex(
            re.compile("[0-9\u0660-\u0669]{1,3}:[0-9]{1,3}\\s?", re.ASCII), fullmatch=True
        ),
    ),
)
def test_parse_clock_accepts_exactly_hh_mm(field: str, text: str) -> None:
    if accepted(text):
        assert parse_clock(field, text) == time(int(text[:2]), int(text[3:]))
    else:
        with pytest.raises(ValueError, match=rf"^{re.escape(field)}: .* is not a time of day"):
            parse_clock(field, text)


def test_parse_clock_shortens_what_it_quotes() -> None:
    with pytest.raises(ValueError, match=r"^to: 'x{32}\.\.\.' is not a time of day as HH:MM$"):
        parse_clock("to", "x" * 10_000)


@pytest.mark.parametrize(
    ("field", "clock", "message"),
    [
        ("starts", time(22, 0, 30), "starts must be a whole minute"),
        ("ends", time(7, 0, 0, 1), "ends must be a whole minute"),
        ("starts", time(22, tzinfo=UTC), "starts must be a wall-clock time"),
    ],
)
def test_windows_are_whole_wall_clock_minutes(field: str, clock: time, message: str) -> None:
    fields = {"starts": time(22), "ends": time(7), field: clock}
    with pytest.raises(ValueError, match=message):
        QuietHours(starts=fields["starts"], ends=fields["ends"], zone=BERLIN)


def test_a_window_must_start_and_end_apart() -> None:
    with pytest.raises(ValueError, match=r"^quiet hours must start and end at different times$"):
        QuietHours(starts=time(7), ends=time(7), zone=BERLIN)


@pytest.mark.parametrize(
    ("zone", "until", "text"),
    [
        (BERLIN, utc(2026, 6, 2, 5, 0), "held until 07:00 Europe/Berlin (quiet hours)"),
        (BERLIN, utc(2026, 10, 25, 1, 30), "held until 02:30 Europe/Berlin (quiet hours)"),
        (LORD_HOWE, utc(2026, 10, 3, 15, 30), "held until 02:30 Australia/Lord_Howe (quiet hours)"),
        (
            timezone(timedelta(hours=-5)),
            utc(2026, 1, 1, 12),
            "held until 07:00 UTC-05:00 (quiet hours)",
        ),
    ],
)
def test_hold_text_shows_the_users_clock(zone: tzinfo, until: datetime, text: str) -> None:
    window = QuietHours(starts=time(22), ends=time(7), zone=zone)
    assert hold_text(window, until) == text

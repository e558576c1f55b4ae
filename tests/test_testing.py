"""``tidings.testing`` keeps its word: the fake clock moves only when told, each strategy
draws what its docstring promises (and the hard cases come up), and memory tidings is
a whole tidings that no setting of the developer's shell reaches."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import find, given
from returns.result import Success

from tidings import Channel, Event, Preference, Severity, parse_event
from tidings.core.validation import event_fields
from tidings.testing import (
    ZONE_NAMES,
    FakeClock,
    async_memory_tidings,
    aware_datetimes,
    channel_names,
    events,
    memory_tidings,
    preferences,
)

START = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
KNOWN = {channel.value for channel in Channel}

# -------------------------------------------------------------------------- the clock


def test_the_fake_clock_moves_only_when_told() -> None:
    clock = FakeClock(START)
    assert clock() == clock() == START
    assert clock.advance(timedelta(hours=2)) == START + timedelta(hours=2)
    assert clock.advance(-timedelta(hours=3)) == clock() == START - timedelta(hours=1)
    berlin = datetime(2024, 10, 27, 2, 30, fold=1, tzinfo=ZoneInfo("Europe/Berlin"))
    assert clock.set(berlin) is clock() is berlin


def test_the_fake_clock_refuses_naive_times() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        FakeClock(datetime(2024, 5, 1))  # noqa: DTZ001 - the point of the test
    clock = FakeClock(START)
    with pytest.raises(ValueError, match="timezone-aware"):
        clock.set(datetime(2024, 5, 1))  # noqa: DTZ001
    assert clock() == START


# ------------------------------------------------------------------------- strategies


@given(events(user_id="u7", kind="deadline", severity=Severity.WATCH))
def test_events_keep_the_fields_they_fix_and_pass_validation(event: Event) -> None:
    assert (event.user_id, event.kind, event.severity) == ("u7", "deadline", Severity.WATCH)
    assert parse_event(event_fields(event)) == Success(event)


def test_events_draw_payloads_and_shared_users() -> None:
    assert find(events(), lambda event: event.payload_json is not None).payload_json
    assert find(events(), lambda event: event.user_id == "u42").user_id == "u42"


def test_events_refuse_fixed_fields_no_valid_event_has() -> None:
    with pytest.raises(ValueError, match="reserved for global preferences"):
        events(kind="_global")
    with pytest.raises(ValueError, match="must not be empty"):
        events(user_id=" ")


@given(preferences(min_severity=Severity.CRITICAL, including=[Channel.EMAIL, Channel.WEBHOOK]))
def test_preferences_keep_the_minimum_and_the_channels_they_fix(row: Preference) -> None:
    assert row.min_severity is Severity.CRITICAL
    assert {"email", "webhook"} <= set(row.channels)


def test_channel_names_come_silent_unknown_and_repeated() -> None:
    assert find(channel_names(), lambda names: names == ()) == ()
    assert find(channel_names(), lambda names: bool(set(names) - KNOWN))
    assert find(channel_names(), lambda names: len(set(names)) < len(names))


BOUNDS = (datetime(2020, 3, 1, tzinfo=UTC), datetime(2020, 12, 1, tzinfo=UTC))


@given(aware_datetimes(min_value=BOUNDS[0], max_value=BOUNDS[1]))
def test_aware_datetimes_are_real_readings_within_the_bounds(moment: datetime) -> None:
    assert moment.utcoffset() is not None
    assert BOUNDS[0] <= moment <= BOUNDS[1]
    # A time that exists: back and forth through UTC gives the same wall time and offset.
    again = moment.astimezone(UTC).astimezone(moment.tzinfo)
    assert (again.replace(tzinfo=None), again.fold) == (moment.replace(tzinfo=None), moment.fold)


def test_aware_datetimes_reach_the_edges_of_offset_changes() -> None:
    named = set(ZONE_NAMES)
    repeated = find(aware_datetimes(), lambda moment: moment.fold == 1)
    assert str(repeated.tzinfo) in named
    assert find(aware_datetimes(), _a_microsecond_from_a_change)
    assert find(aware_datetimes(), lambda moment: str(moment.tzinfo) == "Australia/Lord_Howe")
    assert find(aware_datetimes(), lambda moment: isinstance(moment.tzinfo, timezone))


def _a_microsecond_from_a_change(moment: datetime) -> bool:
    step = timedelta(microseconds=1)
    around = [moment.astimezone(UTC) + step * k for k in (-1, 1)]
    return len({instant.astimezone(moment.tzinfo).utcoffset() for instant in around}) == 2


def test_aware_datetimes_refuse_bad_bounds() -> None:
    with pytest.raises(ValueError, match="after"):
        aware_datetimes(min_value=BOUNDS[1], max_value=BOUNDS[0])
    with pytest.raises(ValueError, match="timezone-aware"):
        aware_datetimes(min_value=datetime(2020, 1, 1))  # noqa: DTZ001


# ------------------------------------------------------------------ memory tidings


def test_memory_tidings_sends_and_keeps_the_cooldown_by_its_clock() -> None:
    clock = FakeClock(START)
    with memory_tidings(clock, cooldown_seconds=3600) as tidings:
        for title in ("first", "held back"):
            tidings.send(user_id="u1", kind="k", severity="info", title=title, body="b")
        tidings.run_until_idle()
        clock.advance(timedelta(hours=1))
        tidings.send(user_id="u1", kind="k", severity="info", title="an hour on", body="b")
        tidings.run_until_idle()
        inbox = tidings.inbox("u1")
    assert [(n.title, n.created_at) for n in inbox] == [
        ("an hour on", START + timedelta(hours=1)),
        ("first", START),
    ]


def test_memory_tidings_reads_no_environment_and_shares_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TIDINGS_COOLDOWN_SECONDS", "60")
    monkeypatch.setenv("TIDINGS_DATABASE_URL", "sqlite:///nowhere.db")
    with memory_tidings() as one, memory_tidings() as other:
        assert one.settings.policy.cooldown == timedelta(hours=24)
        one.send(user_id="u1", kind="k", severity="info", title="t", body="b")
        one.run_until_idle()
        assert len(one.inbox("u1")) == 1
        assert other.inbox("u1") == []
    with pytest.raises(ValueError, match="database_url"):
        memory_tidings(database_url="sqlite:///app.db")


def test_async_memory_tidings_runs_in_the_callers_loop() -> None:
    async def scenario() -> list[str]:
        async with async_memory_tidings(FakeClock(START)) as tidings:
            await tidings.send(user_id="u1", kind="k", severity="watch", title="t", body="b")
            await tidings.run_until_idle()
            return [n.title for n in await tidings.inbox("u1")]

    assert asyncio.run(scenario()) == ["t"]

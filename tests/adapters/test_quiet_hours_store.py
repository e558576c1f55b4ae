"""Quiet hours and the per-kind digest switch in every store (the contract suite's
``store`` fixture: memory, SQLite, PostgreSQL): what is written is what is read back,
the zone by its IANA name, and a zone that has none is refused before anything changes."""

from __future__ import annotations

import asyncio
from datetime import UTC, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from tidings.core import GLOBAL_KIND, Preference, Severity
from tidings.core.ports import Store
from tidings.core.quiet_hours import QuietHours

USER = "u42"
NIGHT = QuietHours(starts=time(22, 0), ends=time(7, 0), zone=ZoneInfo("Europe/Berlin"))
OFFICE = QuietHours(starts=time(9, 30), ends=time(17, 45), zone=ZoneInfo("America/New_York"))


def test_no_quiet_hours_until_set(store: Store, loop: asyncio.Runner) -> None:
    assert loop.run(store.quiet_hours(USER)) is None


def test_set_read_overwrite_and_clear(store: Store, loop: asyncio.Runner) -> None:
    async def scenario() -> None:
        await store.set_quiet_hours(USER, NIGHT)
        assert await store.quiet_hours(USER) == NIGHT
        assert await store.quiet_hours("u7") is None  # per user

        await store.set_quiet_hours(USER, OFFICE)  # replaces, no second window
        assert await store.quiet_hours(USER) == OFFICE

        await store.set_quiet_hours("u7", NIGHT)
        await store.set_quiet_hours(USER, None)
        assert await store.quiet_hours(USER) is None
        await store.set_quiet_hours(USER, None)  # clearing nothing is fine
        assert await store.quiet_hours(USER) is None
        assert await store.quiet_hours("u7") == NIGHT  # the other user's stays

    loop.run(scenario())


@pytest.mark.parametrize(
    "name", ["Europe/Berlin", "America/Port-au-Prince", "Etc/GMT+5", "Asia/Kolkata", "UTC"]
)
def test_the_zone_round_trips_by_name(store: Store, loop: asyncio.Runner, name: str) -> None:
    window = QuietHours(starts=time(23, 59), ends=time(0, 0), zone=ZoneInfo(name))

    async def scenario() -> None:
        await store.set_quiet_hours(USER, window)
        found = await store.quiet_hours(USER)
        assert found == window
        assert found is not None
        assert isinstance(found.zone, ZoneInfo)
        assert found.zone_name == name
        assert (found.starts, found.ends) == (time(23, 59), time(0, 0))

    loop.run(scenario())


def test_utc_given_as_datetime_timezone_is_read_back_as_the_named_zone(
    store: Store, loop: asyncio.Runner
) -> None:
    async def scenario() -> None:
        await store.set_quiet_hours(USER, QuietHours(starts=time(1, 0), ends=time(5, 0), zone=UTC))
        found = await store.quiet_hours(USER)
        assert found == QuietHours(starts=time(1, 0), ends=time(5, 0), zone=ZoneInfo("UTC"))

    loop.run(scenario())


def test_a_zone_without_an_iana_name_is_refused_and_nothing_changes(
    store: Store, loop: asyncio.Runner
) -> None:
    """A fixed offset has no name a store could read back as the same zone."""
    offset = QuietHours(starts=time(22, 0), ends=time(7, 0), zone=timezone(timedelta(hours=2)))

    async def scenario() -> None:
        await store.set_quiet_hours(USER, NIGHT)
        with pytest.raises(ValueError, match=r"^timezone: 'UTC\+02:00' is not a known IANA"):
            await store.set_quiet_hours(USER, offset)
        assert await store.quiet_hours(USER) == NIGHT

    loop.run(scenario())


@pytest.mark.parametrize("digest", [True, False, None])
def test_the_digest_switch_round_trips(
    store: Store, loop: asyncio.Runner, digest: bool | None
) -> None:
    preference = Preference(("in_app", "email"), Severity.WATCH, digest=digest)

    async def scenario() -> None:
        stored = await store.set_preference(USER, "deploy_failed", preference)
        assert stored == preference
        assert await store.preferences(USER) == {"deploy_failed": preference}
        everyone = await store.all_preferences()
        assert everyone[(USER, "deploy_failed")] == preference
        assert everyone[(USER, "deploy_failed")].digest is digest

    loop.run(scenario())


def test_overwriting_a_preference_overwrites_its_digest_switch(
    store: Store, loop: asyncio.Runner
) -> None:
    async def scenario() -> None:
        await store.set_preference(USER, "k", Preference(("in_app",), Severity.INFO, digest=True))
        await store.set_preference(USER, "k", Preference(("in_app",), Severity.INFO, digest=False))
        assert (await store.preferences(USER))["k"].digest is False
        await store.set_preference(USER, "k", Preference(("in_app",), Severity.INFO))
        assert (await store.preferences(USER))["k"].digest is None  # follows the policy again

    loop.run(scenario())


def test_a_dry_run_sees_the_digest_switch(store: Store, loop: asyncio.Runner) -> None:
    async def scenario() -> None:
        await store.set_preference(USER, GLOBAL_KIND, Preference(("in_app",), Severity.INFO))
        await store.set_preference(USER, "k", Preference(("email",), Severity.INFO, digest=True))
        inputs, _ = await store.decision_inputs(USER, "k")
        assert inputs.kind_preference == Preference(("email",), Severity.INFO, digest=True)
        assert inputs.global_preference == Preference(("in_app",), Severity.INFO)

    loop.run(scenario())

"""Quiet hours and the digest switch through the Python API, on every store: what is set
is read back, and bad arguments are each named by ``InvalidQuietHoursError`` (a
ValueError) or ``InvalidPreferenceError`` before anything is stored."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tidings.core import Preference, Severity
from tidings.core.quiet_hours import QuietHours
from tidings.runner.api import AsyncTidings, InvalidPreferenceError, InvalidQuietHoursError
from tidings.runner.sync_api import Tidings

NIGHT = QuietHours(starts=time(22, 0), ends=time(7, 0), zone=ZoneInfo("Europe/Berlin"))


@pytest.fixture(params=["sqlite", "memory", "postgresql"])
def tidings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Tidings]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'app.db'}"
    elif request.param == "memory":
        url = "memory://"
    else:
        url = request.getfixturevalue("postgres_url")
    with Tidings.open(url) as opened:
        opened.migrate()
        yield opened


def test_set_read_and_clear(tidings: Tidings) -> None:
    assert tidings.quiet_hours("ana") is None
    stored = tidings.set_quiet_hours("ana", starts="22:00", ends="07:00", timezone="Europe/Berlin")
    assert stored == NIGHT
    assert tidings.quiet_hours("ana") == NIGHT
    assert tidings.quiet_hours("bo") is None

    office = tidings.set_quiet_hours(
        "ana", starts=time(9, 30), ends=time(17, 0), timezone="America/New_York"
    )
    assert office.zone_name == "America/New_York"
    assert tidings.quiet_hours("ana") == office

    tidings.clear_quiet_hours("ana")
    assert tidings.quiet_hours("ana") is None
    tidings.clear_quiet_hours("ana")  # nothing to clear is fine


@pytest.mark.parametrize(
    ("arguments", "problems"),
    [
        ({"starts": "25:00"}, {"starts": "'25:00' is not a time of day as HH:MM"}),
        ({"ends": " 07:00"}, {"ends": "' 07:00' is not a time of day as HH:MM"}),
        ({"ends": "22:00"}, {"ends": "is the same time as the start (22:00): quiet hours"
                                     " must start and end at different times"}),
        ({"starts": time(22, 0, 30)}, {"starts": "must be a whole minute, not 22:00:30"}),
        ({"ends": time(7, tzinfo=UTC)},
         {"ends": "must be a wall-clock time without a time zone"}),
        ({"starts": 2200}, {"starts": "must be HH:MM text or a datetime.time, not int"}),
        ({"timezone": "Mars/Olympus"},
         {"timezone": "'Mars/Olympus' is not a known IANA time zone"}),
        ({"timezone": "/usr/share/zoneinfo/UTC"},
         {"timezone": "'/usr/share/zoneinfo/UTC' is not a known IANA time zone"}),
        ({"timezone": ZoneInfo("UTC")},
         {"timezone": "must be the name of an IANA time zone, not ZoneInfo"}),
        ({"starts": "late", "ends": "early", "timezone": ""},
         {"starts": "'late' is not a time of day as HH:MM",
          "ends": "'early' is not a time of day as HH:MM",
          "timezone": "must not be empty (an IANA time zone such as Europe/Berlin)"}),
    ],
)  # fmt: skip
def test_bad_arguments_are_each_named_and_nothing_is_stored(
    tidings: Tidings, arguments: dict[str, object], problems: dict[str, str]
) -> None:
    tidings.set_quiet_hours("ana", starts="22:00", ends="07:00", timezone="Europe/Berlin")
    given: dict[str, object] = {
        "starts": "22:00", "ends": "07:00", "timezone": "Europe/Berlin", **arguments
    }  # fmt: skip

    with pytest.raises(InvalidQuietHoursError) as refused:
        tidings.set_quiet_hours("ana", **given)  # type: ignore[arg-type]

    assert isinstance(refused.value, ValueError)
    assert refused.value.problems == problems
    assert str(refused.value) == "; ".join(f"{field}: {text}" for field, text in problems.items())
    assert tidings.quiet_hours("ana") == NIGHT


@pytest.mark.parametrize("digest", [True, False, None])
def test_the_digest_switch_round_trips(tidings: Tidings, digest: bool | None) -> None:
    stored = tidings.set_preference("ana", "deploy", ["in_app"], "watch", digest=digest)
    assert stored == Preference(("in_app",), Severity.WATCH, digest=digest)
    assert tidings.preferences("ana")["deploy"].digest is digest


def test_the_global_row_and_a_switch_that_is_not_a_bool_are_refused(tidings: Tidings) -> None:
    for digest in (True, False):
        with pytest.raises(InvalidPreferenceError, match="_global row takes no digest switch"):
            tidings.set_preference("ana", "_global", ["in_app"], digest=digest)
    assert tidings.set_preference("ana", "_global", ["in_app"]).digest is None
    with pytest.raises(InvalidPreferenceError, match=r"^digest: must be True, False or None"):
        tidings.set_preference("ana", "deploy", ["in_app"], digest="yes")  # type: ignore[arg-type]
    assert "deploy" not in tidings.preferences("ana")


def test_bad_quiet_hours_are_refused_before_the_schema_is_checked(tmp_path: Path) -> None:
    """Nothing is read, or created, for arguments that could never be stored."""
    path = tmp_path / "missing.db"
    with Tidings.open(f"sqlite:///{path}") as tidings, pytest.raises(InvalidQuietHoursError):
        tidings.set_quiet_hours("ana", starts="22:00", ends="07:00", timezone="Nowhere")
    assert not path.exists()


def test_the_asyncio_api_offers_the_same(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with AsyncTidings.open(f"sqlite:///{tmp_path / 'app.db'}") as tidings:
            await tidings.migrate()
            window = await tidings.set_quiet_hours(
                "ana", starts="22:00", ends="07:00", timezone="Europe/Berlin"
            )
            assert window == NIGHT
            assert await tidings.quiet_hours("ana") == NIGHT
            await tidings.clear_quiet_hours("ana")
            assert await tidings.quiet_hours("ana") is None
            stored = await tidings.set_preference("ana", "k", ["in_app"], digest=False)
            assert stored.digest is False

    asyncio.run(scenario())

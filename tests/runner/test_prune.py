"""Retention from the outside: ``tidings prune`` (dry run, removal, bad horizons, the
space given back), the ``retention`` setting, ``prune()`` in the Python API, and a
running dispatcher that applies the setting on its own.

History is written through the Python API on a clock of its own, set months back, so
that the command, on the wall clock, finds it old.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.runner.harness import Tidings as Cli
from tidings.runner.api import AsyncTidings
from tidings.runner.config import ConfigError, load_settings
from tidings.runner.sync_api import Tidings
from tidings.testing import FakeClock

LONG_AGO = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
NOTHING = {"deliveries": 0, "notifications": 0, "events": 0, "digests": 0}


def write_history(url: str, clock: FakeClock, *, notified: int = 5, skipped: int = 2) -> None:
    """Two keys: ana's ``notified`` events two hours apart, each notified (in-app and an
    email that is skipped, SMTP not being set up); ben's ``skipped`` events inside one
    cooldown (one notified, the rest skipped)."""
    with Tidings.open(url, clock=clock, cooldown_seconds=3600) as tidings:
        tidings.set_preference("ana", "deploy", ["in_app", "email"])
        tidings.set_recipient("ana", email="ana@example.com")
        for n in range(notified):
            tidings.send(
                user_id="ana", kind="deploy", severity="watch", title=f"Deploy {n}", body="."
            )
            tidings.run_until_idle()
            clock.advance(timedelta(hours=2))
        for n in range(skipped + 1):
            tidings.send(user_id="ben", kind="quota", severity="info", title=f"Q {n}", body=".")
        tidings.run_until_idle()


def test_dry_run_counts_per_table_then_prune_removes_it(tidings: Cli, database: Path) -> None:
    write_history(f"sqlite:///{database}", FakeClock(LONG_AGO))

    status, out, err = tidings("--json", "prune", "--older-than", "30d", "--dry-run")
    assert (status, err) == (0, "")
    # ana: four notifications of five (the latest stays) and their events; ben: his two
    # skipped events (his one notification is his latest). Every delivery is settled
    # (in-app delivered, email skipped), the latest notifications' too: all go.
    expected = {"deliveries": 11, "notifications": 4, "events": 6, "digests": 0}
    assert json.loads(out) == {
        "dry_run": True,
        "older_than": "30d",
        "older_than_seconds": 30 * 86400.0,
        "removed": expected,
    }
    status, out, _ = tidings("prune", "--older-than", "30d", "--dry-run")
    assert out.splitlines()[0] == "would remove, older than 30d:"
    assert "notifications  4" in out

    status, out, err = tidings("prune", "--older-than", "720h")
    assert (status, err) == (0, "")
    assert out.splitlines()[0] == "removed, older than 30d:"
    assert [line.split() for line in out.splitlines()[3:]] == [
        [table, str(count)] for table, count in expected.items()
    ]
    assert json.loads(tidings("--json", "prune", "--older-than", "30d")[1])["removed"] == NOTHING
    status, out, _ = tidings("--json", "inbox", "ana")
    assert [n["title"] for n in json.loads(out)["notifications"]] == [
        "Deploy 4"
    ]  # the key's latest stays


@pytest.mark.parametrize("value", ["90", "0d", "-1d", "1.5d", "abc", "1d2h", "99999999d", ""])
def test_a_bad_horizon_is_a_usage_error_naming_the_option(
    tidings: Cli, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_status:
        tidings("prune", f"--older-than={value}")
    assert exit_status.value.code == 2
    err = capsys.readouterr().err
    assert "argument --older-than: expected a duration such as 90d" in err
    assert "Traceback" not in err


def test_without_a_horizon_or_the_setting_prune_says_what_to_give(tidings: Cli) -> None:
    status, out, err = tidings("prune")
    assert (status, out) == (2, "")
    assert "--older-than" in err and "TIDINGS_RETENTION" in err


def test_the_retention_setting_is_the_default_horizon(
    tidings: Cli, database: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_history(f"sqlite:///{database}", FakeClock(LONG_AGO))
    monkeypatch.setenv("TIDINGS_RETENTION", "4w")
    status, out, _ = tidings("--json", "prune", "--dry-run")
    assert status == 0
    assert json.loads(out)["older_than"] == "4w"
    assert json.loads(out)["removed"]["notifications"] == 4


def test_a_bad_retention_setting_stops_prune_naming_it(
    tidings: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIDINGS_RETENTION", "ninety days")
    status, _, err = tidings("prune")
    assert status == 2
    assert err.startswith("tidings: retention must be a duration such as 90d")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("90d", timedelta(days=90)),
        ("2w", timedelta(weeks=2)),
        (3600, timedelta(hours=1)),
        ("off", None),
        (False, None),
    ],
)
def test_retention_takes_durations_whole_seconds_or_off(
    tmp_path: Path, value: object, expected: timedelta | None
) -> None:
    config = tmp_path / "tidings.toml"
    config.write_text(f"retention = {json.dumps(value)}\n")
    assert load_settings({}, environ={}, config_file=config).dispatch.retention == expected


@pytest.mark.parametrize("value", [True, 0, -60, "1.5h", "forever"])
def test_retention_refuses_anything_else(value: object) -> None:
    with pytest.raises(ConfigError, match=r"^retention must be a duration"):
        load_settings({"retention": value}, environ={})


def test_vacuum_gives_the_space_back_and_switches_to_incremental(
    tidings: Cli, database: Path
) -> None:
    write_history(f"sqlite:///{database}", FakeClock(LONG_AGO), notified=300)
    status, out, _ = tidings("--json", "prune", "--older-than", "1d", "--vacuum")
    assert status == 0
    found = json.loads(out)
    assert found["removed"]["notifications"] == 299
    assert found["vacuum"]["bytes_after"] < found["vacuum"]["bytes_before"]
    with sqlite3.connect(database) as connection:
        assert connection.execute("PRAGMA auto_vacuum").fetchone() == (2,)  # incremental
    connection.close()


def test_the_api_prunes_and_refuses_a_bad_horizon(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    with Tidings.open(url) as tidings:
        tidings.migrate()
    write_history(url, FakeClock(LONG_AGO))
    with Tidings.open(url) as tidings:
        assert tidings.prune("30d", dry_run=True)["events"] == 6
        assert tidings.prune(timedelta(days=30))["events"] == 6
        assert tidings.prune("30d") == NOTHING
        with pytest.raises(ValueError, match=r"^older_than: expected a duration"):
            tidings.prune("30 days")
        with pytest.raises(ValueError, match=r"^older_than: give a duration"):
            tidings.prune()
        with pytest.raises(ValueError, match=r"^older_than: must be above zero"):
            tidings.prune(timedelta(0))


def test_a_running_dispatcher_applies_the_setting_on_its_own(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    clock = FakeClock(LONG_AGO)
    with Tidings.open(url) as tidings:
        tidings.migrate()
    write_history(url, clock)
    clock.advance(timedelta(days=2))

    async def scenario() -> dict[str, int]:
        async with AsyncTidings.open(url, clock=clock, retention="1d") as tidings:
            assert (await tidings.prune(dry_run=True))["notifications"] == 4
            async with tidings.dispatching():  # a pass at start
                for _ in range(100):
                    if (await tidings.prune(dry_run=True)) == NOTHING:
                        break
                    await asyncio.sleep(0.05)
            return await tidings.prune(dry_run=True)

    assert asyncio.run(scenario()) == NOTHING
    with Tidings.open(url, clock=clock) as tidings:
        assert [n.title for n in tidings.inbox("ana")] == ["Deploy 4"]
        assert len(tidings.inbox("ben")) == 1

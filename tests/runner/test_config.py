"""Settings: flags beat the environment, which beats the TOML file; bad values are named."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from tidings.core import Channel, Severity
from tidings.runner.config import ConfigError, load_settings


def test_sources_layer_file_then_environment_then_flags(tmp_path: Path) -> None:
    config = tmp_path / "tidings.toml"
    config.write_text(
        "[tidings]\n"
        'database_url = "sqlite:///from-file.db"\n'
        "workers = 2\n"
        "cooldown_seconds = 3600\n"
        'default_channels = ["in_app", "email"]\n'
        'default_min_severity = "watch"\n'
        "lease_seconds = 6\n"
    )
    environ = {"TIDINGS_WORKERS": "3", "TIDINGS_DATABASE_URL": "sqlite:///from-env.db"}

    settings = load_settings({"workers": 5}, environ=environ, config_file=config)

    assert settings.database_url == "sqlite:///from-env.db"
    assert settings.dispatch.workers == 5
    assert settings.policy.cooldown == timedelta(hours=1)
    assert settings.policy.default_channels == (Channel.IN_APP, Channel.EMAIL)
    assert settings.policy.default_min_severity is Severity.WATCH
    assert settings.lease == timedelta(seconds=6)
    assert settings.dispatch.renew_interval == 2.0


def test_defaults_are_the_references() -> None:
    settings = load_settings({}, environ={})
    assert settings.database_url == "sqlite:///tidings.db"
    assert settings.dispatch.workers == 4
    assert settings.dispatch.batch_size == 2000
    assert settings.policy.cooldown == timedelta(hours=24)
    assert settings.dispatch.shutdown_grace == 30.0
    assert settings.dispatch.deliveries_in_hand == 64  # two rounds of 32 sends
    assert settings.dispatch.lease == settings.lease == timedelta(seconds=10)


def test_deliveries_in_hand_follow_the_sends_unless_given() -> None:
    sends = load_settings({}, environ={"TIDINGS_SENDS_PER_CHANNEL": "5"})
    assert sends.dispatch.deliveries_in_hand == 10
    given = {"TIDINGS_SENDS_PER_CHANNEL": "5", "TIDINGS_DELIVERIES_IN_HAND": "7"}
    assert load_settings({}, environ=given).dispatch.deliveries_in_hand == 7
    grace = load_settings({"shutdown_grace": "2.5"}, environ={})
    assert grace.dispatch.shutdown_grace == 2.5


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"TIDINGS_WORKERS": "0"}, "workers must be at least 1, got 0"),
        ({"TIDINGS_POLL_INTERVAL": "soon"}, "poll_interval must be a number, got 'soon'"),
        ({"TIDINGS_DEFAULT_CHANNELS": "in_app,pager"}, "default_channels: 'pager'"),
        ({"TIDINGS_DEFAULT_MIN_SEVERITY": "loud"}, "default_min_severity must be info, watch"),
        ({"TIDINGS_SHUTDOWN_GRACE": "0"}, "shutdown_grace must be above 0, got 0.0"),
        ({"TIDINGS_DELIVERIES_IN_HAND": "-1"}, "deliveries_in_hand must be at least 1, got -1"),
    ],
)
def test_bad_values_name_the_setting(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings({}, environ=environ)


def test_unknown_keys_and_broken_files_are_refused(tmp_path: Path) -> None:
    config = tmp_path / "tidings.toml"
    config.write_text("wokers = 3\n")
    with pytest.raises(ConfigError, match="unknown setting"):
        load_settings({}, environ={}, config_file=config)
    # The bound of the lease-claim intake, gone with it: named, not silently ignored.
    config.write_text("intake_size = 256\n")
    with pytest.raises(ConfigError, match=r"unknown setting\(s\): intake_size"):
        load_settings({}, environ={}, config_file=config)
    config.write_text("workers = [\n")
    with pytest.raises(ConfigError, match="config file"):
        load_settings({}, environ={}, config_file=config)

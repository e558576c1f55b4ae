"""The policy's switches (issue #13) are settings like every other: a flag of ``run``,
a ``TIDINGS_*`` variable, a TOML boolean, a ``--policy`` file for ``simulate``; off by
default, and a bad value is refused naming the setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from tidings.core import Policy
from tidings.runner.cli.parser import build_parser
from tidings.runner.config import POLICY_SWITCHES, ConfigError, load_policy, load_settings


def test_every_switch_is_off_by_default() -> None:
    assert load_settings({}, environ={}).policy == Policy()


@pytest.mark.parametrize("name", POLICY_SWITCHES)
@pytest.mark.parametrize(("text", "on"), [("true", True), ("1", True), ("off", False)])
def test_a_switch_from_the_environment(name: str, text: str, on: bool) -> None:
    policy = load_settings({}, environ={f"TIDINGS_{name.upper()}": text}).policy
    assert getattr(policy, name) is on


@pytest.mark.parametrize("name", POLICY_SWITCHES)
def test_a_switch_from_toml_and_from_a_flag(name: str, tmp_path: Path) -> None:
    config = tmp_path / "tidings.toml"
    config.write_text(f"{name} = true\n")
    assert getattr(load_settings({}, environ={}, config_file=config).policy, name) is True
    args = build_parser().parse_args(["run", f"--{name.replace('_', '-')}"])
    assert getattr(load_settings({name: getattr(args, name)}, environ={}).policy, name) is True
    assert getattr(load_policy(config, Policy()), name) is True


def test_a_bad_switch_value_names_the_setting() -> None:
    with pytest.raises(ConfigError, match="escalate_past_cooldown must be true or false"):
        load_settings({}, environ={"TIDINGS_ESCALATE_PAST_COOLDOWN": "maybe"})

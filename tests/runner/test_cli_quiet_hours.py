"""``tidings prefs quiet-hours`` and the digest switch of ``prefs set``, end to end on a
real SQLite file: every bad option is one line naming it, exit status 2, and nothing
stored."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.runner.harness import Tidings

SET_NIGHT = ("--from", "22:00", "--to", "07:00", "--timezone", "Europe/Berlin")
NIGHT_JSON = {"from": "22:00", "to": "07:00", "timezone": "Europe/Berlin"}


def _stored(tidings: Tidings, user: str = "u42") -> object:
    status, out, _ = tidings("--json", "prefs", "quiet-hours", user)
    assert status == 0
    return json.loads(out)["quiet_hours"]


def test_set_show_overwrite_and_clear(tidings: Tidings) -> None:
    assert tidings("prefs", "quiet-hours", "u42") == (0, "u42 quiet hours: none\n", "")
    assert tidings("prefs", "quiet-hours", "u42", *SET_NIGHT) == (
        0,
        "u42 quiet hours: 22:00 to 07:00 Europe/Berlin\n",
        "",
    )
    status, out, _ = tidings("--json", "prefs", "quiet-hours", "u42")
    assert status == 0
    assert json.loads(out) == {"user_id": "u42", "quiet_hours": NIGHT_JSON}
    assert tidings("prefs", "quiet-hours", "u42")[1] == (
        "u42 quiet hours: 22:00 to 07:00 Europe/Berlin\n"
    )

    status, out, _ = tidings(
        "--json", "prefs", "quiet-hours", "u42",
        "--from", "12:30", "--to", "13:15", "--timezone", "America/Port-au-Prince",
    )  # fmt: skip
    assert status == 0
    assert json.loads(out) == {
        "user_id": "u42",
        "quiet_hours": {"from": "12:30", "to": "13:15", "timezone": "America/Port-au-Prince"},
    }
    assert _stored(tidings, "u7") is None  # per user

    status, out, _ = tidings("--json", "prefs", "quiet-hours", "u42", "--off")
    assert (status, json.loads(out)) == (0, {"user_id": "u42", "quiet_hours": None})
    assert _stored(tidings) is None
    assert tidings("prefs", "quiet-hours", "u42", "--off") == (0, "u42 quiet hours: none\n", "")


LONG_ZONE = "Europe/" + "x" * 300


@pytest.mark.parametrize(
    ("options", "refusal"),
    [
        (("--from", "25:00", "--to", "07:00", "--timezone", "UTC"),
         "--from: '25:00' is not a time of day as HH:MM"),
        (("--from", "22:00", "--to", "7:00", "--timezone", "UTC"),
         "--to: '7:00' is not a time of day as HH:MM"),
        (("--from", "22:00:30", "--to", "07:00", "--timezone", "UTC"),
         "--from: '22:00:30' is not a time of day as HH:MM"),
        (("--from", "22:00", "--to", "22:00", "--timezone", "UTC"),
         "--to: is the same time as the start (22:00): quiet hours must start and end at"
         " different times"),
        (("--from", "22:00", "--to", "07:00", "--timezone", "Mars/Olympus"),
         "--timezone: 'Mars/Olympus' is not a known IANA time zone"),
        (("--from", "22:00", "--to", "07:00", "--timezone", "../etc/passwd"),
         "--timezone: '../etc/passwd' is not a known IANA time zone"),
        (("--from", "22:00", "--to", "07:00", "--timezone", "/etc/localtime"),
         "--timezone: '/etc/localtime' is not a known IANA time zone"),
        (("--from", "22:00", "--to", "07:00", "--timezone", "localtime"),
         "--timezone: 'localtime' is not a known IANA time zone"),
        (("--from", "22:00", "--to", "07:00", "--timezone", "zone.tab"),
         "--timezone: 'zone.tab' is not a known IANA time zone"),
        (("--from", "22:00", "--to", "07:00", "--timezone", "Europe/Ber\x00lin"),
         "--timezone: 'Europe/Ber\\x00lin' is not a known IANA time zone"),
        (("--from", "22:00", "--to", "07:00", "--timezone", LONG_ZONE),
         f"--timezone: '{LONG_ZONE[:32]}...' is not a known IANA time zone"),
        (("--from", "22:00", "--to", "07:00", "--timezone", ""),
         "--timezone: must not be empty (an IANA time zone such as Europe/Berlin)"),
        (("--off", "--from", "22:00"),
         "--off: removes the quiet hours, so it takes no --from"),
        (("--off", *SET_NIGHT),
         "--off: removes the quiet hours, so it takes no --from, --to, --timezone"),
        (("--from", "22:00", "--timezone", "UTC"),
         "--to: missing: quiet hours need --from, --to and --timezone"),
        (("--from", "22:00", "--to", "07:00"),
         "--timezone: missing: quiet hours need --from, --to and --timezone"),
    ],
)  # fmt: skip
def test_each_bad_option_is_named_on_one_line_and_nothing_changes(
    tidings: Tidings, options: tuple[str, ...], refusal: str
) -> None:
    assert tidings("prefs", "quiet-hours", "u42", *SET_NIGHT)[0] == 0

    status, out, err = tidings("prefs", "quiet-hours", "u42", *options)

    assert (status, out, err) == (2, "", f"rejected: {refusal}\n")
    assert _stored(tidings) == NIGHT_JSON


def test_every_bad_option_of_one_command_is_named(tidings: Tidings) -> None:
    status, out, err = tidings(
        "prefs", "quiet-hours", "u42", "--from", "24:00", "--to", "noon", "--timezone", "Nowhere"
    )
    assert (status, out) == (2, "")
    assert err.splitlines() == [
        "rejected: --from: '24:00' is not a time of day as HH:MM",
        "rejected: --to: 'noon' is not a time of day as HH:MM",
        "rejected: --timezone: 'Nowhere' is not a known IANA time zone",
    ]
    status, _, err = tidings("prefs", "quiet-hours", "u42", "--timezone", "UTC")
    assert status == 2
    assert err.splitlines() == [
        "rejected: --from: missing: quiet hours need --from, --to and --timezone",
        "rejected: --to: missing: quiet hours need --from, --to and --timezone",
    ]
    assert _stored(tidings) is None


def test_the_installed_command_refuses_an_unknown_zone_without_a_traceback(
    tmp_path: Path,
) -> None:
    script = Path(sys.executable).with_name("tidings")
    database = f"sqlite:///{tmp_path / 'tidings.db'}"
    migrated = subprocess.run(
        [str(script), "--database", database, "migrate"], capture_output=True, check=False
    )
    assert migrated.returncode == 0, migrated.stderr
    result = subprocess.run(
        [str(script), "--database", database, "prefs", "quiet-hours", "u42",
         "--from", "22:00", "--to", "07:00", "--timezone", "Mars/Olympus"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )  # fmt: skip
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == "rejected: --timezone: 'Mars/Olympus' is not a known IANA time zone\n"


def test_prefs_set_digest_switch_and_show(tidings: Tidings) -> None:
    status, out, err = tidings("prefs", "set", "u42", "deploy", "--channels", "in_app", "--digest")
    assert (status, out, err) == (
        0,
        "u42 kind deploy: channels in_app, min severity info, digest on\n",
        "",
    )
    status, out, _ = tidings(
        "--json", "prefs", "set", "u42", "build", "--channels", "email", "--no-digest"
    )
    assert status == 0
    assert json.loads(out) == {
        "user_id": "u42",
        "kind": "build",
        "channels": ["email"],
        "min_severity": "info",
        "digest": False,
    }
    status, out, _ = tidings("prefs", "set", "u42", "report", "--channels", "in_app")
    assert out == "u42 kind report: channels in_app, min severity info, digest as the policy says\n"
    tidings("prefs", "set", "u42", "_global", "--channels", "in_app")
    tidings("prefs", "quiet-hours", "u42", *SET_NIGHT)

    status, out, _ = tidings("--json", "prefs", "show", "u42")
    assert status == 0
    assert json.loads(out) == {
        "_global": {"channels": ["in_app"], "min_severity": None, "digest": None},
        "build": {"channels": ["email"], "min_severity": "info", "digest": False},
        "deploy": {"channels": ["in_app"], "min_severity": "info", "digest": True},
        "report": {"channels": ["in_app"], "min_severity": "info", "digest": None},
    }
    status, out, _ = tidings("prefs", "show", "u42")
    assert out.splitlines() == [
        "kind     channels  min_severity      digest",
        "-------  --------  ----------------  --------",
        "_global  in_app    (policy default)  (policy)",
        "build    email     info              off",
        "deploy   in_app    info              on",
        "report   in_app    info              (policy)",
        "u42 quiet hours: 22:00 to 07:00 Europe/Berlin",
    ]

    status, out, _ = tidings("prefs", "set", "u42", "deploy", "--channels", "in_app")
    assert json.loads(tidings("--json", "prefs", "show", "u42")[1])["deploy"]["digest"] is None


def test_prefs_show_without_preferences_still_shows_quiet_hours(tidings: Tidings) -> None:
    assert tidings("prefs", "show", "u7")[1] == (
        "u7 has no preferences: the policy defaults apply\n"
    )
    tidings("prefs", "quiet-hours", "u7", *SET_NIGHT)
    assert tidings("prefs", "show", "u7")[1] == (
        "u7 has no preferences: the policy defaults apply\n"
        "u7 quiet hours: 22:00 to 07:00 Europe/Berlin\n"
    )


def test_the_global_row_takes_no_digest_switch(tidings: Tidings) -> None:
    for flag in ("--digest", "--no-digest"):
        status, out, err = tidings("prefs", "set", "u42", "_global", "--channels", "in_app", flag)
        assert (status, out) == (2, "")
        assert err == (
            "rejected: the _global row takes no digest switch: a kind without its own row"
            " follows the policy's digest_after_cooldown; set digest on a per-kind row instead\n"
        )
    assert json.loads(tidings("--json", "prefs", "show", "u42")[1]) == {}


def test_digest_and_no_digest_together_are_a_usage_error(
    tidings: Tidings, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        tidings("prefs", "set", "u42", "k", "--channels", "in_app", "--digest", "--no-digest")
    assert exited.value.code == 2
    assert "argument --no-digest: not allowed with argument --digest" in capsys.readouterr().err
    assert json.loads(tidings("--json", "prefs", "show", "u42")[1]) == {}

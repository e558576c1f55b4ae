"""The ``tidings`` command line, end to end on a real SQLite file, bad input included."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.runner.harness import Tidings, event_line


def test_migrate_is_idempotent(tidings: Tidings, database: Path) -> None:
    status, out, _ = tidings("--json", "migrate")  # the fixture migrated already
    assert status == 0
    assert json.loads(out) == {"applied": 0, "migrations": []}
    assert tidings("migrate") == (0, f"sqlite:///{database}: schema up to date, 0 migration(s)"
                                     " applied\n", "")  # fmt: skip


def test_enqueue_rejects_bad_lines_alone_and_exits_2(tidings: Tidings, tmp_path: Path) -> None:
    lines = [event_line(event_id=f"ok-{n}") for n in range(5)]
    lines.insert(2, "{not json")
    lines.insert(4, event_line(event_id="bad", severity="urgent", title="a\nb", extra=1))
    lines.insert(5, "[1, 2]")
    source = tmp_path / "events.jsonl"
    source.write_text("\n".join(lines) + "\n\n")

    status, out, err = tidings("--json", "enqueue", str(source))

    assert status == 2
    assert json.loads(out) == {"enqueued": 5, "duplicates": 0, "rejected": 3}
    assert "line 3: not valid JSON" in err
    assert "line 5: " in err
    assert "severity: must be one of info, watch, critical, got 'urgent'" in err
    assert "title: must not contain line breaks" in err
    assert "extra: is not a known field" in err
    assert "line 6: must be a JSON object, got list" in err


def test_enqueue_assigns_ids_and_ignores_duplicates(tidings: Tidings, tmp_path: Path) -> None:
    source = tmp_path / "events.jsonl"
    source.write_text(event_line(event_id="same") + "\n" + event_line() + "\n")
    assert tidings("enqueue", str(source))[0] == 0
    status, out, _ = tidings("--json", "enqueue", str(source))
    assert status == 0
    assert json.loads(out) == {"enqueued": 1, "duplicates": 1, "rejected": 0}


def test_send_run_inbox_read_and_explain(tidings: Tidings) -> None:
    assert tidings("prefs", "set", "ana", "overload", "--channels", "in_app,email")[0] == 0
    for event_id in ("first", "second"):
        status, _, _ = tidings(
            "send", "--user", "ana", "--kind", "overload", "--severity", "critical",
            "--title", "Overload", "--body", "Hours crossed 60", "--event-id", event_id,
            "--payload", '{"hours": 60}',
        )  # fmt: skip
        assert status == 0

    status, out, _ = tidings("--json", "run", "--until-idle")
    assert status == 0
    assert json.loads(out) == {
        "notified": 1,
        "skipped": {"cooldown": 1},
        "rejected": 0,
        "deliveries": {"in_app:delivered": 1, "email:skipped": 1},
    }

    status, out, _ = tidings("--json", "inbox", "ana")
    inbox = json.loads(out)
    assert inbox["unread"] == 1
    [notification] = inbox["notifications"]
    assert notification["payload"] == {"hours": 60}
    assert notification["dispatched_via"] == ["in_app"]

    status, out, _ = tidings("explain", "second")
    assert status == 0
    assert "skipped: inside the cooldown for overload" in out

    status, out, _ = tidings("--json", "explain", "first")
    assert json.loads(out)["decision"]["channels"] == ["in_app", "email"]

    assert tidings("read", "bob", notification["id"])[0] == 1  # not bob's
    assert tidings("read", "ana", "no-such-id")[0] == 1
    assert tidings("read", "ana", notification["id"])[0] == 0
    assert tidings("read", "ana", notification["id"])[0] == 0  # idempotent
    status, out, _ = tidings("--json", "inbox", "ana", "--unread")
    assert json.loads(out) == {"unread": 0, "notifications": []}


def test_send_with_bad_fields_names_each(tidings: Tidings) -> None:
    status, _, err = tidings(
        "send", "--user", "", "--kind", "_global", "--severity", "loud",
        "--title", "x" * 201, "--body", "b", "--payload", "[1]",
    )  # fmt: skip
    assert status == 2
    for field in ("user_id", "kind", "severity", "title", "payload_json"):
        assert f"rejected: {field}:" in err


def test_prefs_show_and_global_row(tidings: Tidings) -> None:
    status, out, err = tidings(
        "prefs", "set", "ana", "_global", "--channels", " Email ,IN_APP,email,pager"
    )
    assert status == 0
    assert out == "ana global: channels email,in_app,pager, min severity the policy default\n"
    assert err == "warning: unknown channel name(s) kept but ignored: pager\n"
    tidings("prefs", "set", "ana", "digest", "--channels", "", "--min-severity", "watch")
    status, out, _ = tidings("--json", "prefs", "show", "ana")
    assert status == 0
    assert json.loads(out) == {
        "_global": {"channels": ["email", "in_app", "pager"], "min_severity": None, "digest": None},
        "digest": {"channels": [], "min_severity": "watch", "digest": None},
    }
    status, out, _ = tidings("prefs", "show", "ana")
    assert out.splitlines()[2:] == [
        "_global  email,in_app,pager  (policy default)  (policy)",
        "digest   (silent)            watch             (policy)",
    ]
    status, _, err = tidings(
        "prefs", "set", "ana", "x", "--channels", "email", "--min-severity", "loud"
    )
    assert (status, err) == (
        2,
        "rejected: min_severity: must be info, watch or critical, got 'loud'\n",
    )


def test_prefs_set_refuses_a_minimum_on_the_global_row(tidings: Tidings) -> None:
    """The global row's minimum is never used (rule 1: the policy default applies), so it
    is refused rather than stored and shown as if it mattered."""
    status, out, err = tidings(
        "prefs", "set", "ana", "_global", "--channels", "in_app", "--min-severity", "critical"
    )
    assert (status, out) == (2, "")
    assert err == (
        "rejected: the _global row's minimum severity is not used: a kind without its own row"
        " takes the global row's channels and the policy's default_min_severity (rule 1); set a"
        " minimum on a per-kind row instead\n"
    )
    assert json.loads(tidings("--json", "prefs", "show", "ana")[1]) == {}


def test_explain_unknown_event(tidings: Tidings) -> None:
    status, _, err = tidings("explain", "nope")
    assert status == 1
    assert "no event nope" in err


def test_bad_settings_are_named(tidings: Tidings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIDINGS_WORKERS", "many")
    status, _, err = tidings("run", "--until-idle")
    assert status == 2
    assert "workers must be a whole number, got 'many'" in err


def test_console_script_runs_the_demo(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("tidings")
    result = subprocess.run(
        [str(script), "demo"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        env={**os.environ, "TIDINGS_DATABASE_URL": "sqlite:///ignored.db"},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "skipped: inside the cooldown for burnout_overload" in result.stdout
    assert "rejected at the door" in result.stdout
    assert "ana's inbox (2 unread)" in result.stdout
    assert list(tmp_path.iterdir()) == []  # the demo leaves nothing behind


def test_recipients_set_checks_fields_and_never_prints_the_secret(tidings: Tidings) -> None:
    status, _, err = tidings(
        "recipients", "set", "ana", "--email", "not-an-address",
        "--webhook-url", "ftp://hooks", "--webhook-secret", "plain-secret-value",
    )  # fmt: skip
    assert status == 2
    assert "email: 'not-an-address' is not an email address" in err
    assert "webhook_url: 'ftp://hooks' is not an http(s) URL" in err
    assert "webhook_secret: must be whsec_ followed by base64" in err
    assert "plain-secret-value" not in err

    status, out, _ = tidings(
        "--json", "recipients", "set", "ana", "--email", "ana@example.com",
        "--webhook-url", "https://hooks.example.com/t", "--webhook-secret", "whsec_c2VjcmV0",
    )  # fmt: skip
    assert status == 0
    assert json.loads(out)["webhook_secret_set"] is True
    assert "c2VjcmV0" not in out


def test_recipients_set_changes_only_the_fields_given(tidings: Tidings) -> None:
    def recipient(*argv: str) -> dict[str, object]:
        status, out, err = tidings("--json", "recipients", "set", "ana", *argv)
        assert status == 0, err
        found: dict[str, object] = json.loads(out)
        return found

    assert recipient("--email", "ana@example.com")["webhook_url"] is None
    webhook = ("--webhook-url", "https://u:pw@hooks.example.com/t?k=1", "--webhook-secret")
    assert recipient(*webhook, "whsec_c2VjcmV0") == {
        "user_id": "ana",
        "email": "ana@example.com",  # kept
        "webhook_url": "https://hooks.example.com/t",
        "webhook_secret_set": True,
    }
    assert recipient("--webhook-url", "https://hooks.example.com/v2")["webhook_secret_set"]
    assert recipient("--clear-email") == {
        "user_id": "ana",
        "email": None,
        "webhook_url": "https://hooks.example.com/v2",
        "webhook_secret_set": True,
    }
    status, out, _ = tidings(
        "recipients", "set", "ana", "--clear-webhook", "--email", "a@b.example"
    )
    assert (status, out) == (0, "ana: email a@b.example, webhook -\n")


def test_recipients_set_refuses_nothing_to_change_and_conflicting_flags(
    tidings: Tidings, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = tidings("recipients", "set", "ana")
    assert (status, out) == (2, "")
    assert err == (
        "nothing to change: give --email, --webhook-url, --webhook-secret, --clear-email or"
        " --clear-webhook\n"
    )
    status, _, err = tidings(
        "recipients", "set", "ana", "--clear-webhook", "--webhook-url", "https://h.example/x"
    )
    assert (status, err) == (2, "give --clear-webhook or a new webhook, not both\n")
    with pytest.raises(SystemExit) as exited:
        tidings("recipients", "set", "ana", "--email", "a@b.example", "--clear-email")
    assert exited.value.code == 2
    assert "argument --clear-email: not allowed with argument --email" in capsys.readouterr().err
    status, _, err = tidings("recipients", "set", "ana", "--webhook-url", "https://h.example/x")
    assert (status, err) == (
        2,
        "rejected: webhook_secret: required with a webhook URL (whsec_...)\n",
    )


def test_deliveries_lists_and_retry_refuses_what_is_not_dead(tidings: Tidings) -> None:
    tidings("prefs", "set", "ana", "overload", "--channels", "in_app,webhook")
    tidings(
        "send", "--user", "ana", "--kind", "overload", "--severity", "watch",
        "--title", "Overload", "--body", "b",
    )  # fmt: skip
    assert tidings("run", "--until-idle")[0] == 0

    status, out, _ = tidings("--json", "deliveries", "--status", "skipped")
    assert status == 0
    [skipped] = json.loads(out)
    assert skipped["channel"] == "webhook"
    assert skipped["attempts"] == 1

    status, _, err = tidings("retry", skipped["delivery_id"])
    assert status == 1
    assert f"no dead delivery {skipped['delivery_id']}" in err


def test_explain_dry_run_decides_now_and_records_nothing(tidings: Tidings) -> None:
    tidings("prefs", "set", "ana", "overload", "--channels", "in_app", "--min-severity", "watch")
    status, out, _ = tidings("explain", "--user", "ana", "--kind", "overload", "--severity", "info")
    assert status == 0
    assert "skipped: severity info is below the minimum watch set by the per-kind preference" in out
    assert "nothing recorded" in out

    tidings(
        "send", "--user", "ana", "--kind", "overload", "--severity", "watch",
        "--title", "Overload", "--body", "b",
    )  # fmt: skip
    tidings("run", "--until-idle")
    status, out, _ = tidings(
        "--json", "explain", "--user", "ana", "--kind", "overload", "--severity", "critical"
    )
    assert status == 0
    dry = json.loads(out)
    assert dry["decision"]["reason"] == "cooldown"
    assert dry["inputs"]["kind_preference"] == {"channels": ["in_app"], "min_severity": "watch"}
    status, out, _ = tidings("--json", "inbox", "ana")
    assert json.loads(out)["unread"] == 1  # the dry runs sent nothing

    assert tidings("explain", "--user", "ana")[0] == 2
    assert tidings("explain", "some-id", "--user", "ana")[0] == 2
    assert tidings("explain", "--user", "a", "--kind", "k", "--severity", "loud")[0] == 2

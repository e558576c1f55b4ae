"""The synchronous Python API, end to end on every store, shared between threads, and
refusing bad input before anything is stored."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tidings.core import Channel, FieldError, Preference, Severity
from tidings.runner.api import InvalidEventError, InvalidPreferenceError, InvalidRecipientError
from tidings.runner.config import ConfigError
from tidings.runner.stores import migrations_for
from tidings.runner.sync_api import Tidings

SECRET = "whsec_c2VjcmV0LWtleQ=="


@pytest.fixture(params=["sqlite", "memory", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'app.db'}"
    if request.param == "memory":
        return "memory://"
    found: str = request.getfixturevalue("postgres_url")
    return found


@pytest.fixture
def tidings(url: str) -> Iterator[Tidings]:
    with Tidings.open(url) as opened:
        opened.migrate()
        yield opened


def test_migrate_names_what_it_applied_then_nothing(url: str) -> None:
    with Tidings.open(url) as tidings:
        expected = tuple(f"{m.version:04d}_{m.name}" for m in migrations_for(url))
        assert tidings.migrate() == expected  # none for memory://, born current
        assert tidings.migrate() == ()


def test_send_dispatch_read_and_explain(tidings: Tidings) -> None:
    assert tidings.set_preference("ana", "overload", ["in_app", "Email", "pager"], "watch") == (
        Preference(("in_app", "email", "pager"), Severity.WATCH)
    )
    first = tidings.send(
        user_id="ana", kind="overload", severity=Severity.CRITICAL, title="Overload",
        body="Hours crossed 60", payload={"hours": 60},
    )  # fmt: skip
    second = tidings.send(
        user_id="ana", kind="overload", severity="critical", title="Again", body="b",
        event_id="mine",
    )  # fmt: skip
    quiet = tidings.send(user_id="ana", kind="digest", severity="info", title="Digest", body="")
    tidings.set_preference("ana", "digest", [Channel.IN_APP], Severity.WATCH)

    summary = tidings.run_until_idle()

    assert second == "mine"
    assert summary.notified == 1
    assert summary.skipped == {"cooldown": 1, "severity_below_minimum": 1}
    explained = tidings.explain(first)
    assert explained is not None
    assert explained.startswith("notified via in_app, email: severity critical meets")
    assert "ignored unknown channels: pager" in explained
    assert str(tidings.explain("mine")).startswith("skipped: inside the cooldown for overload")
    assert str(tidings.explain(quiet)).startswith("skipped: severity info is below the minimum")
    assert tidings.explain("no-such-event") is None

    [notification] = tidings.inbox("ana")
    assert (notification.event_id, notification.payload_json) == (first, '{"hours":60}')
    assert tidings.unread_count("ana") == 1
    assert tidings.mark_read("bob", notification.id) is False  # not bob's
    assert tidings.mark_read("ana", notification.id) is True
    assert tidings.inbox("ana", unread_only=True) == []
    assert tidings.mark_all_read("ana") == 0
    assert tidings.preferences("ana") == {
        "overload": Preference(("in_app", "email", "pager"), Severity.WATCH),
        "digest": Preference(("in_app",), Severity.WATCH),
    }


def test_enqueue_takes_events_as_json_lines_hold_them(tidings: Tidings) -> None:
    ids = tidings.enqueue(
        [
            {"event_id": "e1", "user_id": "u1", "kind": "k", "severity": "info",
             "title": "T", "body": "b", "payload": {"n": 1}},
            {"user_id": "u2", "kind": "k", "severity": "watch", "title": "T", "body": "b"},
            {"event_id": "e1", "user_id": "u1", "kind": "k", "severity": "info",
             "title": "T", "body": "b"},
        ]
    )  # fmt: skip
    assert ids[0] == ids[2] == "e1"  # the duplicate keeps its id and is not stored twice
    assert ids[1] != "e1"
    assert tidings.run_until_idle().notified == 2


def test_a_bad_event_names_every_field_and_nothing_is_stored(tidings: Tidings) -> None:
    with pytest.raises(InvalidEventError) as raised:
        tidings.send(
            user_id="", kind="_global", severity="loud", title="a\nb", body="b", event_id="bad"
        )
    for field in ("user_id", "kind", "severity", "title"):
        assert f"{field}: " in str(raised.value)
    assert {error.field for error in raised.value.errors} == {
        "user_id",
        "kind",
        "severity",
        "title",
    }
    assert list(raised.value.invalid) == [0]

    good = {"user_id": "u1", "kind": "k", "severity": "info", "title": "T", "body": "b"}
    with pytest.raises(InvalidEventError) as raised:
        tidings.enqueue(
            [
                {**good, "event_id": "good-0"},
                {**good, "severity": "urgent", "extra": 1},
                {**good, "event_id": "good-2"},
                ["not", "a", "mapping"],  # type: ignore[list-item]
            ]
        )
    assert list(raised.value.invalid) == [1, 3]
    assert raised.value.invalid[3] == (FieldError("event", "must be a mapping, got list"),)
    assert str(raised.value) == (
        "2 invalid event(s), none stored: event 1 (extra: is not a known field; severity: must"
        " be one of info, watch, critical, got 'urgent'), event 3 (event: must be a mapping,"
        " got list)"
    )
    assert (tidings.explain("bad"), tidings.explain("good-0"), tidings.explain("good-2")) == (
        None, None, None,
    )  # fmt: skip
    assert tidings.run_until_idle().notified == 0


def test_the_global_row_takes_no_minimum(tidings: Tidings) -> None:
    with pytest.raises(InvalidPreferenceError, match="_global row's minimum severity is not used"):
        tidings.set_preference("ana", "_global", ["email"], "critical")
    with pytest.raises(InvalidPreferenceError, match="min_severity: must be info, watch or crit"):
        tidings.set_preference("ana", "overload", ["email"], "loud")
    assert tidings.preferences("ana") == {}
    assert tidings.set_preference("ana", "_global", ["email"]).channels == ("email",)


def test_recipients_change_field_by_field(tidings: Tidings) -> None:
    assert tidings.recipient("ana") is None
    tidings.set_recipient("ana", email="ana@example.com")
    stored = tidings.set_recipient(
        "ana", webhook_url="https://hooks.example.com/a", webhook_secret=SECRET
    )
    assert (stored.email, stored.webhook_url, stored.webhook_secret) == (
        "ana@example.com", "https://hooks.example.com/a", SECRET,
    )  # fmt: skip
    stored = tidings.set_recipient("ana", webhook_url="https://hooks.example.com/b")  # secret kept
    assert (stored.email, stored.webhook_secret) == ("ana@example.com", SECRET)
    stored = tidings.set_recipient("ana", email=None)
    assert (stored.email, stored.webhook_url) == (None, "https://hooks.example.com/b")
    assert tidings.recipient("ana") == stored

    with pytest.raises(InvalidRecipientError) as raised:
        tidings.set_recipient("ana", webhook_secret=None)  # the URL would lose its secret
    assert raised.value.problems == ("webhook_secret: required with a webhook URL (whsec_...)",)
    with pytest.raises(InvalidRecipientError) as raised:
        tidings.set_recipient("bob", email="bob@localhost", webhook_url="ftp://x")
    assert [problem.split(":")[0] for problem in raised.value.problems] == [
        "email", "webhook_url", "webhook_secret",
    ]  # fmt: skip
    with pytest.raises(InvalidRecipientError, match="whsec_ followed by base64"):
        tidings.set_recipient("bob", webhook_secret="plain-secret-value")
    assert "plain-secret-value" not in str(raised.value)
    with pytest.raises(InvalidRecipientError, match="nothing to change"):
        tidings.set_recipient("bob")
    assert tidings.recipient("bob") is None
    assert tidings.recipient("ana") == stored


def test_a_bad_inbox_limit_is_refused(tidings: Tidings) -> None:
    with pytest.raises(ValueError, match="limit must be at least 1, got 0"):
        tidings.inbox("ana", limit=0)


def test_one_tidings_serves_many_threads_at_once(url: str) -> None:
    """8 threads each send 50 events (and read as they go) through one Tidings: every
    event is stored once, and no call fails."""
    failures: list[BaseException] = []
    start = threading.Barrier(8)

    with Tidings.open(url) as tidings:
        tidings.migrate()

        def produce(thread: int) -> None:
            try:
                start.wait()
                for n in range(50):
                    tidings.send(
                        user_id=f"u{thread}", kind=f"k{n}", severity="info", title="T", body="b"
                    )
                    tidings.unread_count(f"u{thread}")
            except Exception as error:  # collected: the test asserts there were none
                failures.append(error)

        threads = [threading.Thread(target=produce, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert failures == []
        assert tidings.run_until_idle().notified == 400
        assert [tidings.unread_count(f"u{n}") for n in range(8)] == [50] * 8


def test_settings_are_read_as_the_cli_reads_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "tidings.toml"
    config.write_text("cooldown_seconds = 60\nbatch_size = 7\n")
    monkeypatch.setenv("TIDINGS_BATCH_SIZE", "9")
    monkeypatch.setenv("TIDINGS_DATABASE_URL", "memory://")
    with Tidings.open(config_file=config, batch_size=11) as tidings:
        assert tidings.settings.database_url == "memory://"
        assert tidings.settings.policy.cooldown.total_seconds() == 60  # from the file
        assert tidings.settings.dispatch.batch_size == 11  # the keyword beats the environment
    with pytest.raises(ConfigError, match="unknown setting"):
        Tidings.open("memory://", colour="blue")
    with pytest.raises(ConfigError, match="workers must be a whole number"):
        Tidings.open("memory://", workers="many")
    with pytest.raises(ConfigError, match="mysql: is not supported"):
        Tidings.open("mysql://root:pw@db/app")


def test_a_closed_tidings_refuses_calls_and_closes_once() -> None:
    tidings = Tidings.open("memory://")
    tidings.send(user_id="u", kind="k", severity="info", title="T", body="b")
    tidings.close()
    tidings.close()
    with pytest.raises(RuntimeError, match="closed"):
        tidings.unread_count("u")


def test_a_tidings_left_open_closes_when_the_interpreter_exits(postgres_url: str) -> None:
    """As one opened at import time by a web application is: its connections end cleanly,
    with nothing said on stderr."""
    with Tidings.open(postgres_url) as tidings:
        tidings.migrate()
    script = (
        "from tidings.runner.sync_api import Tidings\n"
        f"tidings = Tidings.open({postgres_url!r})\n"
        "tidings.send(user_id='u', kind='k', severity='info', title='T', body='b')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert (result.returncode, result.stderr) == (0, "")
    with Tidings.open(postgres_url) as tidings:
        assert tidings.run_until_idle().notified == 1

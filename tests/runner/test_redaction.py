"""No credential inside a URL reaches a log line or the CLI's output, and nothing stored
acts on the operator's terminal."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.runner.harness import Tidings
from tests.webhook_receiver import SECRET, Receiver
from tidings.adapters.channels.addresses import AddressGuard, parse_allowed_networks
from tidings.adapters.channels.webhook import WebhookSender
from tidings.adapters.memory import MemoryStore
from tidings.core.records import Delivered, DeliveryJob, Notification, RecipientChange
from tidings.core.values import Channel, Severity
from tidings.runner.output import for_terminal, to_json
from tidings.runner.telemetry.logs import configure_logging
from tidings.runner.telemetry.redaction import scheme_of, scrub_urls, shown_database, shown_url


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    """The runner's logging set up on a string; afterwards, the process's as it was."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    libraries = {name: logging.getLogger(name).level for name in ("httpx", "httpcore")}
    stream = io.StringIO()
    configure_logging(stream, json_lines=True)
    try:
        yield stream
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        for name, level in libraries.items():
            logging.getLogger(name).setLevel(level)


# -- what a URL shows --------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:pw@hooks.example.com/t?token=abc#frag", "https://hooks.example.com/t"),
        ("http://hooks.example.com:8080/a/b", "http://hooks.example.com:8080/a/b"),
        ("https://[2001:db8::1]:8443/h?k=v", "https://[2001:db8::1]:8443/h"),
        ("https://hooks.example.com", "https://hooks.example.com"),
        ("https://u:p@host:99999/x", "https://..."),
        ("no url at all", "(not a URL)"),
    ],
)
def test_a_url_shows_where_it_leads_only(url: str, shown: str) -> None:
    assert shown_url(url) == shown


def test_urls_inside_text_are_scrubbed_and_other_text_kept() -> None:
    text = 'POST http://ann:pw1@127.0.0.1:9/p?token=t0k "HTTP/1.1 200 OK" then https://x.test/?a=1'
    assert scrub_urls(text) == 'POST http://127.0.0.1:9/p "HTTP/1.1 200 OK" then https://x.test/'
    assert scrub_urls("no links here") == "no links here"


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://tidings:s3cret@db:5433/t",
        "postgresql://tidings@db/t?password=s3cret&sslmode=require",
        "postgres://tidings:s3cret@db/t?password=s3cret",
    ],
)
def test_database_urls_lose_every_password(url: str) -> None:
    shown = shown_database(url)
    assert "s3cret" not in shown
    assert shown.startswith("postgresql://db")
    assert "tidings@" not in shown


def test_database_urls_without_secrets_show_as_given() -> None:
    assert shown_database("sqlite:///tidings.db") == "sqlite:///tidings.db"
    assert shown_database("memory://") == "memory://"
    assert shown_database("postgresql://db:5432/t") == "postgresql://db:5432/t"
    assert shown_database("postgresql://u@h/t?nonsense=1&password=x") == "postgresql://..."


def test_an_unsupported_database_is_named_by_its_scheme_only(tidings: Tidings) -> None:
    status, _, err = tidings("--database", "mysql://root:hunter2@db.internal/app", "inbox", "u")
    assert status == 2
    assert "mysql:" in err
    assert "hunter2" not in err
    assert "db.internal" not in err
    assert scheme_of("not a url at all") == "(unrecognised)"


# -- logs --------------------------------------------------------------------------


def _webhook_job() -> DeliveryJob:
    notification = Notification(
        id="n-1", event_id="e-1", user_id="u42", kind="overload", severity=Severity.WATCH,
        title="Load high", body="b", payload_json=None,
        created_at=datetime(2024, 5, 1, tzinfo=UTC), read_at=None, dispatched_via=(),
    )  # fmt: skip
    return DeliveryJob(
        delivery_id="d-1", channel=Channel.WEBHOOK, attempts=0, notification=notification
    )


def _send_webhook(url: str) -> object:
    store = MemoryStore(clock=lambda: datetime.now(UTC))
    guard = AddressGuard(parse_allowed_networks("127.0.0.0/8"))

    async def scenario() -> object:
        await store.update_recipient(
            RecipientChange(user_id="u42", webhook_url=url, webhook_secret=SECRET)
        )
        sender = WebhookSender(store, guard, clock=lambda: datetime.now(UTC))
        try:
            return await sender.send(_webhook_job())
        finally:
            await sender.aclose()

    return asyncio.run(scenario())


@pytest.mark.parametrize("library_level", [None, logging.DEBUG])
def test_webhook_credentials_reach_no_log_line(
    log_stream: io.StringIO, library_level: int | None
) -> None:
    """By default the HTTP libraries log warnings only; even told to log everything,
    their lines go through the formatter, which shows URLs as scheme://host/path."""
    if library_level is not None:
        for name in ("httpx", "httpcore"):
            logging.getLogger(name).setLevel(library_level)
    receiver = Receiver()
    receiver.start()
    try:
        base = receiver.url("/ok")
        url = base.replace("http://", "http://hookuser:p4ssw0rd@") + "?token=t0ken-in-query"
        assert _send_webhook(url) == Delivered()
    finally:
        receiver.stop()
    assert receiver.received, "the webhook was not sent"
    written = log_stream.getvalue()
    for secret in ("p4ssw0rd", "hookuser", "t0ken-in-query", "token="):
        assert secret not in written
    if library_level is not None:
        assert f"POST {base}" in written  # the library's line, scrubbed, is there


# -- CLI output --------------------------------------------------------------------


def test_recipients_set_shows_the_webhook_url_without_credentials(tidings: Tidings) -> None:
    url = "https://hookuser:p4ssw0rd@hooks.example.com/in?token=t0ken"
    for flags in ((), ("--json",)):
        status, out, _ = tidings(
            *flags, "recipients", "set", "ana",
            "--webhook-url", url, "--webhook-secret", "whsec_c2VjcmV0",
        )  # fmt: skip
        assert status == 0
        assert "https://hooks.example.com/in" in out
        for secret in ("p4ssw0rd", "hookuser", "t0ken"):
            assert secret not in out
    status, _, err = tidings(
        "recipients", "set", "ana", "--webhook-url", "ftp://hookuser:p4ssw0rd@hooks/x?t0ken",
        "--webhook-secret", "whsec_c2VjcmV0",
    )  # fmt: skip
    assert status == 2
    assert "webhook_url: 'ftp://hooks/x' is not an http(s) URL" in err
    assert "p4ssw0rd" not in err


def test_stored_text_cannot_act_on_the_terminal(tidings: Tidings, tmp_path: Path) -> None:
    """A notification row as an older version, or a producer with SQL, could have left it:
    escape sequences and bidi overrides print as escapes; JSON stays valid (a payload's
    escaped lone surrogate included) and says the same text."""
    assert tidings("migrate")[0] == 0
    title = "t\x1b]0;owned\x07 \u202egnp.exe \x9b2J"
    with sqlite3.connect(tmp_path / "tidings.db") as connection:
        connection.execute(
            "INSERT INTO notifications (id, event_id, user_id, kind, severity, title, body,"
            " payload_json, created_at, read_at, dispatched_via)"
            " VALUES ('n1', 'e1', 'ana', 'k\x1b[31m', 'info', ?, 'b', ?, ?, NULL, '[]')",
            (title, '{"x": "\\ud800\\u202e"}', "2026-01-01T00:00:00+00:00"),
        )
    status, out, _ = tidings("inbox", "ana")
    assert status == 0
    assert not any(ch in out for ch in "\x1b\x07\u202e\x9b")
    assert "\\x1b]0;owned\\x07 \\u202egnp.exe \\x9b2J" in out

    status, out, _ = tidings("--json", "inbox", "ana")
    assert status == 0
    assert not any(ch in out for ch in "\x1b\x07\u202e\x9b")
    (found,) = json.loads(out)["notifications"]
    assert found["kind"] == "k\x1b[31m"
    assert found["payload"] == {"x": "\ud800\u202e"}


def test_terminal_and_json_escapes() -> None:
    assert for_terminal("a\x1b[2Jb\u202ec\nd\td\u2028") == "a\\x1b[2Jb\\u202ec\nd\\x09d\\u2028"
    text = to_json({"t": "ü\x85\u2066\ud800"})
    assert text == '{"t": "ü\\u0085\\u2066\\ud800"}'
    assert json.loads(text) == {"t": "ü\x85\u2066\ud800"}


def test_numeric_flags_are_checked_by_the_parser(tidings: Tidings) -> None:
    for argv in (
        ("inbox", "ana", "--limit", "-1"),
        ("inbox", "ana", "--limit", "1" * 5000),
        ("deliveries", "--limit", "0"),
        ("run", "--metrics-port", "70000"),
        ("run", "--workers", "0"),
        ("simulate", "--top", "-3"),
    ):
        with pytest.raises(SystemExit) as exited:
            tidings(*argv)
        assert exited.value.code == 2


def test_a_new_sqlite_database_is_private(tidings: Tidings, tmp_path: Path) -> None:
    assert tidings("migrate")[0] == 0
    assert (tmp_path / "tidings.db").stat().st_mode & 0o777 == 0o600


def test_the_runner_start_up_line_shows_no_database_password(postgres_url: str) -> None:
    """The server trusts loopback, so the passwords are not needed, only carried."""
    url = postgres_url.replace("postgres@", "postgres:hunter2@") + "?password=hunter3"
    script = Path(sys.executable).with_name("tidings")
    written = ""
    for command in ("migrate", "run --until-idle"):
        result = subprocess.run(
            [str(script), "--database", url, *command.split()],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        written += result.stdout + result.stderr
    assert f"started on postgresql://127.0.0.1:5432/{postgres_url.rpartition('/')[2]}" in written
    assert "hunter" not in written

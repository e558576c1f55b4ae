"""The email channel against real SMTP servers: aiosmtpd on 127.0.0.1, no mocks.

Each test starts the servers it needs (a fresh free port each, in aiosmtpd's own
thread) and reads what actually arrived: headers, body, envelope, AUTH mechanism.
Header injection is judged by two readers, the email package's parser and
``email.header`` on the raw bytes, since readers decode encoded words differently.
TLS uses a throwaway CA from trustme, trusted only by the sender under test. The
dispatcher tests run the real ``Dispatcher`` over ``MemoryStore`` with a fake clock,
so retry times are crossed by advancing the clock, not by waiting.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import ssl
from collections.abc import Mapping
from datetime import timedelta
from email import message_from_bytes
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.policy import compat32
from pathlib import Path
from typing import Any

import attrs
import pytest
import trustme
from aiosmtpd.smtp import AuthResult

from tests.adapters.conftest import START
from tests.smtp_server import HOST, Mailbox, Received, StartServer, free_port
from tidings.adapters.channels.email import EmailSender
from tidings.adapters.channels.email_message import WORD_JOINER
from tidings.adapters.channels.smtp_config import SmtpConfig, smtp_config_from_environment
from tidings.adapters.channels.unconfigured import UnconfiguredSender
from tidings.adapters.memory import MemoryStore
from tidings.core import Channel, Event, Preference, Severity
from tidings.core.ports import ChannelSender
from tidings.core.records import (
    ChannelFailed,
    ChannelOutcome,
    ChannelSkipped,
    Delivered,
    DeliveryJob,
    DeliveryRecord,
    DeliveryStatus,
    Notification,
    RecipientChange,
)
from tidings.runner.dispatch import Dispatcher, DispatchOptions
from tidings.testing import FakeClock

USER = "u42"
TO = "u42@example.test"
FROM = "alerts@tidings.example"
FROM_NAME = "Tidings ✉ Alerts"
USERNAME = "mailer"
PASSWORD = "pa55-Wörd-s3cret"
DELIVERY_ID = "0f4c2a9e5b7d4e0c9a1b2c3d4e5f6a7b"
TITLE = "Überlast erkannt 🔥"
BODY = "Ligne 1 : très chargé — 负载过高 🚨\nLine 2: take a break ☕"
RETRIES = DispatchOptions(
    retry_schedule=(timedelta(seconds=5), timedelta(seconds=10)), poll_interval=0.01
)


class Credentials:
    """An aiosmtpd authenticator accepting one user and password; notes each mechanism."""

    def __init__(self) -> None:
        self.mechanisms: list[str] = []

    def __call__(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> Any:
        self.mechanisms.append(mechanism)
        valid = auth_data.login == USERNAME.encode() and auth_data.password == PASSWORD.encode()
        # handled=False: aiosmtpd then answers the failure itself (535).
        return AuthResult(success=valid, handled=False)


def make_config(port: int, **changes: Any) -> SmtpConfig:
    config = SmtpConfig(
        host=HOST,
        port=port,
        tls_mode="none",
        from_address=FROM,
        from_name=FROM_NAME,
        timeout_seconds=5,
    )
    return attrs.evolve(config, **changes)


def make_job(*, title: str = TITLE, body: str = BODY, attempts: int = 0) -> DeliveryJob:
    notification = Notification(
        id="n1",
        event_id="e1",
        user_id=USER,
        kind="overload",
        severity=Severity.WATCH,
        title=title,
        body=body,
        payload_json=None,
        created_at=START,
        read_at=None,
        dispatched_via=(Channel.IN_APP,),
    )
    return DeliveryJob(
        delivery_id=DELIVERY_ID, channel=Channel.EMAIL, attempts=attempts, notification=notification
    )


def send(
    config: SmtpConfig | None,
    *jobs: DeliveryJob,
    email: str | None = TO,
    tls_context: ssl.SSLContext | None = None,
) -> list[ChannelOutcome]:
    """Send ``jobs`` in turn with a fresh sender whose directory knows ``USER``, then
    close it (its pooled connection QUITs)."""

    async def run() -> list[ChannelOutcome]:
        store = MemoryStore(clock=FakeClock(START))
        await store.update_recipient(RecipientChange(user_id=USER, email=email))
        sender = EmailSender(config, store, clock=FakeClock(START), tls_context=tls_context)
        try:
            return [await sender.send(job) for job in jobs]
        finally:
            await sender.aclose()

    return asyncio.run(run())


# -- the message --------------------------------------------------------------------


def test_plain_delivery_carries_headers_and_utf8_body(start_smtp_server: StartServer) -> None:
    mailbox = Mailbox()
    port = start_smtp_server(mailbox)

    assert send(make_config(port), make_job()) == [Delivered()]

    [received] = mailbox.received
    assert (received.mail_from, received.rcpt_tos) == (FROM, (TO,))
    message = received.message
    [sender] = message["From"].addresses
    assert (sender.display_name, sender.addr_spec) == (FROM_NAME, FROM)
    assert str(message["To"]) == TO
    assert str(message["Subject"]) == TITLE
    assert message["Message-ID"] == f"<{DELIVERY_ID}@tidings.example>"
    assert message["X-Tidings-Delivery"] == DELIVERY_ID
    assert message["Date"].datetime == START.replace(microsecond=0)
    assert message.get_content_type() == "text/plain"
    assert message.get_content_charset() == "utf-8"
    assert message.get_content().splitlines() == BODY.splitlines()


def test_html_alternative_is_escaped_text(start_smtp_server: StartServer) -> None:
    mailbox = Mailbox()
    port = start_smtp_server(mailbox)
    job = make_job(title="<b>hot</b> 🔥", body="use <script> & relax\nsecond line")

    assert send(make_config(port, html=True), job) == [Delivered()]

    message = mailbox.received[0].message
    assert message.get_content_type() == "multipart/alternative"
    plain = message.get_body(preferencelist=("plain",))
    rich = message.get_body(preferencelist=("html",))
    assert isinstance(plain, EmailMessage)
    assert isinstance(rich, EmailMessage)
    assert plain.get_content().splitlines() == ["use <script> & relax", "second line"]
    html = rich.get_content().replace("\r\n", "\n")
    assert "<h1>&lt;b&gt;hot&lt;/b&gt; 🔥</h1>" in html
    assert "use &lt;script&gt; &amp; relax<br>\nsecond line" in html
    assert "<script>" not in html


def test_line_breaks_in_a_title_cannot_add_headers(start_smtp_server: StartServer) -> None:
    mailbox = Mailbox()
    port = start_smtp_server(mailbox)

    assert send(make_config(port), make_job(title="Alert\r\nBcc: x@y")) == [Delivered()]

    [received] = mailbox.received
    assert received.rcpt_tos == (TO,)
    assert received.message.get_all("Subject") == ["Alert Bcc: x@y"]
    assert received.message.get_all("Bcc") is None


def b_word(text: str) -> str:
    """``text`` as one base64 RFC 2047 encoded word, as an attacker would write it."""
    return f"=?utf-8?b?{base64.b64encode(text.encode()).decode()}?="


EVIL = "evil@attacker.test"
INJECTIONS = {
    "q": f"=?utf-8?q?x=0D=0ABcc:_{EVIL}?=",
    "q upper case, mid-word": f"Alert=?UTF-8?Q?=0D=0ABcc:_{EVIL}?=",
    "q latin-1": f"=?iso-8859-1?q?x=0D=0AReply-To:_{EVIL}?=",
    "b bcc": b_word(f"x\r\nBcc: {EVIL}"),
    "b reply-to": b_word(f"x\r\nReply-To: {EVIL}"),
    "b ends the headers": b_word("x\r\n\r\n<html><body>pay here</body></html>"),
    "q split in three": f"=?utf-8?q?x?= =?utf-8?q?=0D=0A?= =?utf-8?q?Bcc:_{EVIL}?=",
    "b split in three": " ".join(b_word(part) for part in ("x", "\r\n", f"Reply-To: {EVIL}")),
    "b of a q word": b_word(f"=?utf-8?q?x=0D=0ABcc:_{EVIL}?="),
}
"""Titles and sender names that only become line breaks once a reader decodes them."""

EXPECTED_HEADERS = [
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "X-Tidings-Delivery",
    "Content-Type",
    "Content-Transfer-Encoding",
    "MIME-Version",
]


def as_read(received: Received, name: str) -> str:
    """Header ``name`` as a second reader shows it: the raw header unfolded and
    decoded with ``email.header`` (not the email package's policy parser)."""
    raw = message_from_bytes(received.content, policy=compat32)[name]
    assert isinstance(raw, str)
    unfolded = raw.replace("\r\n", "").replace("\n", "")
    return str(make_header(decode_header(unfolded)))


def assert_nothing_injected(received: Received) -> None:
    """One recipient, the headers tidings writes and no other, the body intact."""
    message = received.message
    assert received.rcpt_tos == (TO,)
    assert message.keys() == EXPECTED_HEADERS
    for name in ("Subject", "From"):
        for shown in (str(message[name]), as_read(received, name)):
            assert "\r" not in shown
            assert "\n" not in shown
    assert message.get_content().splitlines() == BODY.splitlines()


@pytest.mark.parametrize("title", INJECTIONS.values(), ids=INJECTIONS.keys())
def test_an_encoded_word_in_a_title_arrives_as_its_literal_text(
    start_smtp_server: StartServer, title: str
) -> None:
    mailbox = Mailbox()
    port = start_smtp_server(mailbox)

    assert send(make_config(port), make_job(title=title)) == [Delivered()]

    [received] = mailbox.received
    assert_nothing_injected(received)
    subject = str(received.message["Subject"])
    assert subject.replace(WORD_JOINER, "") == title
    assert as_read(received, "Subject") == subject


@pytest.mark.parametrize("name", INJECTIONS.values(), ids=INJECTIONS.keys())
def test_an_encoded_word_in_the_sender_name_arrives_as_its_literal_text(
    start_smtp_server: StartServer, name: str
) -> None:
    mailbox = Mailbox()
    port = start_smtp_server(mailbox)

    assert send(make_config(port, from_name=name), make_job()) == [Delivered()]

    [received] = mailbox.received
    assert_nothing_injected(received)
    [sender] = received.message["From"].addresses
    assert sender.addr_spec == FROM
    # Readers disagree on a space between two encoded words of a long display name
    # (the email package's folder and its parser each differ from RFC 2047's rule),
    # so the literal text is compared without spaces.
    for shown in (sender.display_name, as_read(received, "From").removesuffix(f" <{FROM}>")):
        assert shown.replace(WORD_JOINER, "").replace(" ", "") == name.replace(" ", "")
    assert str(received.message["Subject"]) == TITLE


@pytest.mark.parametrize(
    "name", ["ü evil@attacker.test", "Café, Inc.", 'é "quoted" \\ <x@y.test>', "Ops (24/7) ✉"]
)
def test_a_sender_name_with_specials_stays_one_name(
    start_smtp_server: StartServer, name: str
) -> None:
    mailbox = Mailbox()
    port = start_smtp_server(mailbox)

    assert send(make_config(port, from_name=name), make_job()) == [Delivered()]

    [received] = mailbox.received
    assert_nothing_injected(received)
    [sender] = received.message["From"].addresses
    assert (sender.display_name, sender.addr_spec) == (name, FROM)


def test_same_message_id_on_a_retry_after_4xx(start_smtp_server: StartServer) -> None:
    mailbox = Mailbox(data_replies=("451 4.3.0 try later",))
    port = start_smtp_server(mailbox)

    first, second = send(make_config(port), make_job(), make_job(attempts=1))

    assert first == ChannelFailed(error="smtp 451 4.3.0 try later", retryable=True)
    assert second == Delivered()
    ids = [received.message["Message-ID"] for received in mailbox.received]
    assert ids == [f"<{DELIVERY_ID}@tidings.example>"] * 2


def test_5xx_reply_is_final(start_smtp_server: StartServer) -> None:
    port = start_smtp_server(Mailbox(rcpt_replies=("550 5.1.1 no such user",)))

    [outcome] = send(make_config(port), make_job())

    assert outcome == ChannelFailed(error="smtp 550 5.1.1 no such user", retryable=False)


def test_server_down_is_retryable() -> None:
    [outcome] = send(make_config(free_port()), make_job())

    assert isinstance(outcome, ChannelFailed)
    assert outcome.retryable
    assert outcome.error.startswith("smtp connection failed")


# -- TLS and AUTH -------------------------------------------------------------------


def test_implicit_tls_with_auth_plain(
    start_smtp_server: StartServer, server_tls: ssl.SSLContext, client_tls: ssl.SSLContext
) -> None:
    mailbox, credentials = Mailbox(), Credentials()
    # aiosmtpd only counts STARTTLS as TLS for auth_require_tls, so on an implicit-TLS
    # listener (encrypted from the first byte) that flag must be off, and with it
    # auth_required (aiosmtpd warns about the pair); the mechanism list shows AUTH ran.
    port = start_smtp_server(
        mailbox,
        ssl_context=server_tls,
        authenticator=credentials,
        auth_require_tls=False,
        auth_exclude_mechanism=["LOGIN"],
    )
    config = make_config(port, tls_mode="implicit", username=USERNAME, password=PASSWORD)

    assert send(config, make_job(), tls_context=client_tls) == [Delivered()]

    assert credentials.mechanisms == ["PLAIN"]
    assert mailbox.received[0].message["Message-ID"] == f"<{DELIVERY_ID}@tidings.example>"


def test_starttls_with_auth_login(
    start_smtp_server: StartServer, server_tls: ssl.SSLContext, client_tls: ssl.SSLContext
) -> None:
    mailbox, credentials = Mailbox(), Credentials()
    port = start_smtp_server(
        mailbox,
        tls_context=server_tls,
        require_starttls=True,
        authenticator=credentials,
        auth_required=True,
        auth_require_tls=True,
        auth_exclude_mechanism=["PLAIN"],
    )
    config = make_config(port, tls_mode="starttls", username=USERNAME, password=PASSWORD)

    assert send(config, make_job(), tls_context=client_tls) == [Delivered()]

    assert credentials.mechanisms == ["LOGIN"]
    assert len(mailbox.received) == 1


def test_wrong_password_is_final_and_never_shown(
    start_smtp_server: StartServer,
    server_tls: ssl.SSLContext,
    client_tls: ssl.SSLContext,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "not-the-Pa55word"
    port = start_smtp_server(
        Mailbox(),
        tls_context=server_tls,
        require_starttls=True,
        authenticator=Credentials(),
        auth_required=True,
    )
    config = make_config(port, tls_mode="starttls", username=USERNAME, password=wrong)

    [outcome] = send(config, make_job(), tls_context=client_tls)

    assert isinstance(outcome, ChannelFailed)
    assert not outcome.retryable
    assert outcome.error.startswith("smtp 535")
    assert wrong not in outcome.error
    assert wrong not in caplog.text
    assert wrong not in repr(config)


def test_a_reply_echoing_the_password_is_scrubbed(start_smtp_server: StartServer) -> None:
    # Plain text and AUTH only because this loopback server exists to misbehave.
    port = start_smtp_server(
        Mailbox(rcpt_replies=(f"550 5.7.1 {PASSWORD} is not welcome here",)),
        authenticator=Credentials(),
        auth_require_tls=False,
    )
    config = make_config(port, username=USERNAME, password=PASSWORD, allow_plaintext_auth=True)

    [outcome] = send(config, make_job())

    assert outcome == ChannelFailed(
        error="smtp 550 5.7.1 [redacted] is not welcome here", retryable=False
    )


def test_auth_over_plain_text_needs_the_opt_in(start_smtp_server: StartServer) -> None:
    mailbox, credentials = Mailbox(), Credentials()
    port = start_smtp_server(mailbox, authenticator=credentials, auth_require_tls=False)
    env = {
        "SMTP_HOST": HOST,
        "SMTP_PORT": str(port),
        "SMTP_TLS_MODE": "none",
        "SMTP_FROM_ADDRESS": FROM,
        "SMTP_USER": USERNAME,
        "SMTP_PASSWORD": PASSWORD,
    }

    # Every way to a config that would AUTH in plain text is refused, so no sender
    # can be handed one: the server offering AUTH without TLS never sees it.
    with pytest.raises(ValueError, match=r"^SMTP_TLS_MODE: none with SMTP_USER set"):
        smtp_config_from_environment(env)
    with pytest.raises(ValueError, match="SMTP_ALLOW_PLAINTEXT_AUTH=1"):
        make_config(port, username=USERNAME, password=PASSWORD)
    allowed = make_config(port, username=USERNAME, password=PASSWORD, allow_plaintext_auth=True)
    with pytest.raises(ValueError, match=r"^SMTP_TLS_MODE: "):
        attrs.evolve(allowed, allow_plaintext_auth=False)
    assert credentials.mechanisms == []

    # With the opt-in (a relay on the same host), AUTH runs over the plain connection.
    config = smtp_config_from_environment({**env, "SMTP_ALLOW_PLAINTEXT_AUTH": "1"})
    assert config is not None
    assert config.allow_plaintext_auth
    assert send(attrs.evolve(config, timeout_seconds=5), make_job()) == [Delivered()]
    assert credentials.mechanisms == ["PLAIN"]
    assert len(mailbox.received) == 1


def test_starttls_missing_on_the_server_fails_before_auth(
    start_smtp_server: StartServer, client_tls: ssl.SSLContext
) -> None:
    credentials = Credentials()
    port = start_smtp_server(Mailbox(), authenticator=credentials, auth_require_tls=False)
    config = make_config(port, tls_mode="starttls", username=USERNAME, password=PASSWORD)

    [outcome] = send(config, make_job(), tls_context=client_tls)

    assert isinstance(outcome, ChannelFailed)
    assert not outcome.retryable
    assert "STARTTLS" in outcome.error
    assert credentials.mechanisms == []


def test_untrusted_certificate_is_retryable(
    start_smtp_server: StartServer, server_tls: ssl.SSLContext
) -> None:
    port = start_smtp_server(Mailbox(), ssl_context=server_tls)

    [outcome] = send(make_config(port, tls_mode="implicit"), make_job())

    assert isinstance(outcome, ChannelFailed)
    assert outcome.retryable
    assert "CERTIFICATE_VERIFY_FAILED" in outcome.error


# -- skipped and refused deliveries -------------------------------------------------


def test_unconfigured_smtp_skips() -> None:
    assert send(None, make_job()) == [ChannelSkipped("smtp not configured")]


@pytest.mark.parametrize("email", [None, ""])
def test_recipient_without_email_skips(email: str | None) -> None:
    config = make_config(free_port())
    assert send(config, make_job(), email=email) == [ChannelSkipped("no email address")]


def test_unknown_recipient_skips() -> None:
    async def run() -> ChannelOutcome:
        store = MemoryStore(clock=FakeClock(START))
        sender = EmailSender(make_config(free_port()), store, clock=FakeClock(START))
        outcome = await sender.send(make_job())
        await sender.aclose()
        return outcome

    assert asyncio.run(run()) == ChannelSkipped("no email address")


@pytest.mark.parametrize("email", ["not-an-address", "u42@example.test\r\nRCPT TO:<x@y.z>"])
def test_unusable_address_fails_for_good(email: str) -> None:
    [outcome] = send(make_config(free_port()), make_job(), email=email)

    assert outcome == ChannelFailed(error="invalid email address", retryable=False)


# -- configuration from the environment ---------------------------------------------

BASE_ENV = {"SMTP_HOST": "smtp.example", "SMTP_FROM_ADDRESS": FROM}


@pytest.mark.parametrize(
    ("extra", "port", "tls_mode"),
    [
        ({}, 465, "implicit"),
        ({"SMTP_PORT": "587"}, 587, "starttls"),
        ({"SMTP_PORT": "2525"}, 2525, "implicit"),
        ({"SMTP_PORT": "25", "SMTP_TLS_MODE": "none"}, 25, "none"),
        ({"SMTP_PORT": "587", "SMTP_TLS_MODE": "implicit"}, 587, "implicit"),
        ({"SMTP_PORT": "465", "SMTP_TLS_MODE": " STARTTLS "}, 465, "starttls"),
        ({"SMTP_PORT": "", "SMTP_TLS_MODE": ""}, 465, "implicit"),
    ],
)
def test_environment_port_and_tls_mode(extra: dict[str, str], port: int, tls_mode: str) -> None:
    config = smtp_config_from_environment({**BASE_ENV, **extra})

    assert config is not None
    assert (config.port, config.tls_mode) == (port, tls_mode)


def test_environment_full_config() -> None:
    env = {
        **BASE_ENV,
        "SMTP_USER": USERNAME,
        "SMTP_PASSWORD": PASSWORD,
        "SMTP_FROM_NAME": FROM_NAME,
    }

    assert smtp_config_from_environment(env) == SmtpConfig(
        host="smtp.example",
        port=465,
        tls_mode="implicit",
        username=USERNAME,
        password=PASSWORD,
        from_address=FROM,
        from_name=FROM_NAME,
    )


@pytest.mark.parametrize("env", [{}, {"SMTP_HOST": ""}, {"SMTP_HOST": "  ", "SMTP_PORT": "x"}])
def test_environment_without_host_means_unconfigured(env: Mapping[str, str]) -> None:
    assert smtp_config_from_environment(env) is None


@pytest.mark.parametrize(
    ("extra", "variable"),
    [
        ({"SMTP_PORT": "smtp"}, "SMTP_PORT"),
        ({"SMTP_PORT": "0"}, "SMTP_PORT"),
        ({"SMTP_PORT": "65536"}, "SMTP_PORT"),
        ({"SMTP_PORT": "-25"}, "SMTP_PORT"),
        ({"SMTP_TLS_MODE": "ssl"}, "SMTP_TLS_MODE"),
        ({"SMTP_FROM_ADDRESS": ""}, "SMTP_FROM_ADDRESS"),
        ({"SMTP_FROM_ADDRESS": "alerts"}, "SMTP_FROM_ADDRESS"),
        ({"SMTP_FROM_ADDRESS": "alerts@localhost"}, "SMTP_FROM_ADDRESS"),
        ({"SMTP_FROM_ADDRESS": "a,b@tidings.example"}, "SMTP_FROM_ADDRESS"),
        ({"SMTP_FROM_ADDRESS": "älerts@tidings.example"}, "SMTP_FROM_ADDRESS"),
        ({"SMTP_FROM_ADDRESS": "=?utf-8?q?a?=@tidings.example"}, "SMTP_FROM_ADDRESS"),
        ({"SMTP_FROM_ADDRESS": f"{FROM}\r\nRCPT TO:<x@y.test>"}, "SMTP_FROM_ADDRESS"),
        ({"SMTP_USER": USERNAME}, "SMTP_PASSWORD"),
        ({"SMTP_ALLOW_PLAINTEXT_AUTH": "yes"}, "SMTP_ALLOW_PLAINTEXT_AUTH"),
        *(({"SMTP_FROM_NAME": name}, "SMTP_FROM_NAME") for name in INJECTIONS.values()),
        ({"SMTP_FROM_NAME": "Alerts\r\nBcc: evil@attacker.test"}, "SMTP_FROM_NAME"),
        ({"SMTP_FROM_NAME": "Alerts\tTeam"}, "SMTP_FROM_NAME"),
        ({"SMTP_FROM_NAME": "Alerts\x00"}, "SMTP_FROM_NAME"),
        ({"SMTP_FROM_NAME": "Alerts\x85Team"}, "SMTP_FROM_NAME"),
        ({"SMTP_FROM_NAME": "Alerts\u2028Team"}, "SMTP_FROM_NAME"),
        ({"SMTP_FROM_NAME": "Alerts \udc85"}, "SMTP_FROM_NAME"),
        ({"SMTP_FROM_NAME": "=?x-unknown?q?Alerts=0D=0A?="}, "SMTP_FROM_NAME"),
        ({"SMTP_FROM_NAME": "=?utf-8?q?Alerts=09Team?="}, "SMTP_FROM_NAME"),
    ],
)
def test_environment_bad_values_name_the_variable(extra: dict[str, str], variable: str) -> None:
    with pytest.raises(ValueError, match=f"^{variable}: "):
        smtp_config_from_environment({**BASE_ENV, **extra})


@pytest.mark.parametrize("name", ["=?utf-8?q?Caf=C3=A9?=", "Equals =? sign", "Tidings\u2060Alerts"])
def test_a_sender_name_that_decodes_to_one_line_is_kept_as_written(name: str) -> None:
    config = smtp_config_from_environment({**BASE_ENV, "SMTP_FROM_NAME": name})

    assert config is not None
    assert config.from_name == name


def test_a_ca_file_that_does_not_load_names_the_variable(tmp_path: Path, ca: trustme.CA) -> None:
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("not a certificate\n")
    pem = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(pem))

    for path in (tmp_path / "missing.pem", not_pem, tmp_path, "ca\x00.pem"):
        with pytest.raises(ValueError, match=r"^SMTP_CA_FILE: cannot load CA certificates"):
            smtp_config_from_environment({**BASE_ENV, "SMTP_CA_FILE": str(path)})

    config = smtp_config_from_environment({**BASE_ENV, "SMTP_CA_FILE": f" {pem} "})
    assert config is not None
    assert config.ca_file == str(pem)


# -- through the dispatcher ---------------------------------------------------------


async def dispatch(store: MemoryStore, sender: EmailSender, clock: FakeClock) -> None:
    """One dispatcher run until nothing is due at the clock's current reading."""
    senders: dict[Channel, ChannelSender] = {
        Channel.IN_APP: UnconfiguredSender(),
        Channel.EMAIL: sender,
        Channel.WEBHOOK: UnconfiguredSender(),
    }
    dispatcher = Dispatcher(
        store, senders, worker_id="w1", options=RETRIES, clock=clock, jitter=lambda: 0.0
    )
    await dispatcher.run(until_idle=True)


async def email_delivery(store: MemoryStore) -> DeliveryRecord:
    [record] = [r for r in await store.deliveries() if r.channel is Channel.EMAIL]
    return record


@attrs.frozen
class Dispatched:
    """The email delivery after each run, and the notification at the end."""

    deliveries: list[DeliveryRecord]
    notification: Notification


def run_dispatches(port: int, *advances: timedelta) -> Dispatched:
    """Record one event planned for in-app and email, dispatch, then dispatch again after
    each advance of the clock."""
    clock = FakeClock(START)

    async def run() -> Dispatched:
        store = MemoryStore(clock=clock)
        await store.set_preference(USER, "overload", Preference(("in_app", "email"), Severity.INFO))
        await store.update_recipient(RecipientChange(user_id=USER, email=TO))
        event = Event(
            event_id="e1",
            user_id=USER,
            kind="overload",
            severity=Severity.WATCH,
            title=TITLE,
            body=BODY,
        )
        await store.enqueue([event])
        sender = EmailSender(make_config(port), store, clock=clock)
        await dispatch(store, sender, clock)
        records = [await email_delivery(store)]
        for advance in advances:
            clock.advance(advance)
            await dispatch(store, sender, clock)
            records.append(await email_delivery(store))
        await sender.aclose()
        [notification] = await store.inbox(USER)
        return Dispatched(records, notification)

    return asyncio.run(run())


def test_dispatcher_retries_a_4xx_until_delivered(start_smtp_server: StartServer) -> None:
    mailbox = Mailbox(rcpt_replies=("451 4.3.0 try later",))
    port = start_smtp_server(mailbox)

    run = run_dispatches(port, timedelta(seconds=6))

    first, second = run.deliveries
    assert (first.status, first.attempts) == (DeliveryStatus.FAILED, 1)
    assert first.last_error is not None
    assert "451" in first.last_error
    assert first.next_attempt_at == START + timedelta(seconds=5)
    assert (second.status, second.attempts) == (DeliveryStatus.DELIVERED, 2)
    assert run.notification.dispatched_via == (Channel.IN_APP, Channel.EMAIL)
    [received] = mailbox.received
    assert received.message["Message-ID"] == f"<{second.delivery_id}@tidings.example>"


def test_dispatcher_gives_up_at_once_on_a_5xx(start_smtp_server: StartServer) -> None:
    port = start_smtp_server(Mailbox(rcpt_replies=("550 5.1.1 no such user",)))

    run = run_dispatches(port)

    [record] = run.deliveries
    assert (record.status, record.attempts) == (DeliveryStatus.DEAD, 1)
    assert record.last_error == "smtp 550 5.1.1 no such user"
    assert run.notification.dispatched_via == (Channel.IN_APP,)


def test_dispatcher_server_down_is_dead_after_the_schedule() -> None:
    run = run_dispatches(free_port(), timedelta(seconds=6), timedelta(seconds=11))

    statuses = [(record.status, record.attempts) for record in run.deliveries]
    assert statuses == [
        (DeliveryStatus.FAILED, 1),
        (DeliveryStatus.FAILED, 2),
        (DeliveryStatus.DEAD, 3),
    ]
    assert run.notification.dispatched_via == (Channel.IN_APP,)

"""The runner's email sender as an operator configures it, through ``SMTP_*``: a relay
whose certificate comes from a private CA (trustme's) is trusted with ``SMTP_CA_FILE``
and only then, over implicit TLS and STARTTLS, against a real aiosmtpd server on
127.0.0.1. Bad values stop start-up with the variable's name.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import trustme

from tests.smtp_server import HOST, Mailbox, StartServer
from tidings.adapters.memory import MemoryStore
from tidings.core import Channel, Severity
from tidings.core.records import (
    ChannelFailed,
    ChannelOutcome,
    Delivered,
    DeliveryJob,
    Notification,
    RecipientChange,
)
from tidings.runner.config import ConfigError, load_settings
from tidings.runner.dispatch.senders import channel_senders

TO = "u42@example.test"
FROM = "alerts@tidings.example"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(HOST).configure_cert(context)
    return context


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> Path:
    path = tmp_path / "private-ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


def job() -> DeliveryJob:
    notification = Notification(
        id="n1",
        event_id="e1",
        user_id="u42",
        kind="overload",
        severity=Severity.WATCH,
        title="Overload",
        body="Hours crossed 60",
        payload_json=None,
        created_at=datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
        read_at=None,
        dispatched_via=(Channel.IN_APP,),
    )
    return DeliveryJob(
        delivery_id="d1", channel=Channel.EMAIL, attempts=0, notification=notification
    )


def send_email(environ: Mapping[str, str]) -> ChannelOutcome:
    """One email delivery by the sender ``tidings run`` would build from ``environ``."""
    settings = load_settings({}, environ=environ)

    async def run() -> ChannelOutcome:
        store = MemoryStore(clock=lambda: datetime.now(UTC))
        await store.update_recipient(RecipientChange(user_id="u42", email=TO))
        async with channel_senders(store, settings) as senders:
            return await senders[Channel.EMAIL].send(job())

    return asyncio.run(run())


def environment(port: int, tls_mode: str, **extra: str) -> dict[str, str]:
    return {
        "SMTP_HOST": HOST,
        "SMTP_PORT": str(port),
        "SMTP_TLS_MODE": tls_mode,
        "SMTP_FROM_ADDRESS": FROM,
        **extra,
    }


@pytest.mark.parametrize(
    ("tls_mode", "server"),
    [
        ("implicit", lambda tls: {"ssl_context": tls}),
        ("starttls", lambda tls: {"tls_context": tls, "require_starttls": True}),
    ],
)
def test_a_private_ca_is_trusted_only_with_smtp_ca_file(
    start_smtp_server: StartServer,
    server_tls: ssl.SSLContext,
    ca_file: Path,
    tls_mode: str,
    server: Callable[[ssl.SSLContext], dict[str, Any]],
) -> None:
    mailbox = Mailbox()
    port = start_smtp_server(mailbox, **server(server_tls))

    without = send_email(environment(port, tls_mode))
    with_ca = send_email(environment(port, tls_mode, SMTP_CA_FILE=str(ca_file)))

    assert isinstance(without, ChannelFailed)
    assert "CERTIFICATE_VERIFY_FAILED" in without.error
    assert with_ca == Delivered()
    [received] = mailbox.received
    assert received.rcpt_tos == (TO,)


def test_the_runner_refuses_to_start_with_bad_smtp_settings(tmp_path: Path) -> None:
    base = environment(465, "implicit")
    with pytest.raises(ConfigError, match=r"^SMTP_CA_FILE: cannot load CA certificates"):
        load_settings({}, environ={**base, "SMTP_CA_FILE": str(tmp_path / "missing.pem")})
    with pytest.raises(ConfigError, match=r"^SMTP_FROM_NAME: "):
        load_settings({}, environ={**base, "SMTP_FROM_NAME": "=?utf-8?q?x=0D=0ABcc:_e@x.test?="})
    plain = environment(25, "none", SMTP_USER="mailer", SMTP_PASSWORD="secret")
    with pytest.raises(ConfigError, match=r"^SMTP_TLS_MODE: none with SMTP_USER set"):
        load_settings({}, environ=plain)
    settings = load_settings({}, environ={**plain, "SMTP_ALLOW_PLAINTEXT_AUTH": "1"})
    assert settings.smtp is not None
    assert settings.smtp.allow_plaintext_auth

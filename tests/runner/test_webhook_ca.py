"""``TIDINGS_WEBHOOK_CA_FILE``: an HTTPS receiver on 127.0.0.1 whose certificate comes
from a private CA (trustme's) is reached by the runner's webhook sender only when the
setting names that CA's PEM file; a file that does not load stops start-up with the
setting's name. Loopback is allowed the way an operator would, with
``TIDINGS_WEBHOOK_ALLOWED_NETWORKS``.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path

import pytest
import trustme

from tests.webhook_receiver import SECRET, Receiver
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
from tidings.runner.dispatch.senders import _webhook_trust, channel_senders

LOOPBACK = {"TIDINGS_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8"}


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> Path:
    path = tmp_path / "private-ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture
def receiver(ca: trustme.CA) -> Iterator[Receiver]:
    """An HTTPS receiver whose certificate, for 127.0.0.1, the private CA issued."""
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(tls)
    found = Receiver(tls=tls)
    found.start()
    try:
        yield found
    finally:
        found.stop()


def job() -> DeliveryJob:
    notification = Notification(
        id="n1",
        event_id="e1",
        user_id="u42",
        kind="overload",
        severity=Severity.WATCH,
        title="Overload",
        body="Hours crossed 60",
        payload_json='{"hours": 60}',
        created_at=datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
        read_at=None,
        dispatched_via=(Channel.IN_APP,),
    )
    return DeliveryJob(
        delivery_id="d1", channel=Channel.WEBHOOK, attempts=0, notification=notification
    )


def send_webhook(url: str, environ: Mapping[str, str]) -> ChannelOutcome:
    """One webhook delivery by the sender ``tidings run`` would build from ``environ``."""
    settings = load_settings({}, environ=environ)

    async def run() -> ChannelOutcome:
        store = MemoryStore(clock=lambda: datetime.now(UTC))
        await store.update_recipient(
            RecipientChange(user_id="u42", webhook_url=url, webhook_secret=SECRET)
        )
        async with channel_senders(store, settings) as senders:
            return await senders[Channel.WEBHOOK].send(job())

    return asyncio.run(run())


def test_a_private_ca_is_trusted_only_with_the_setting(receiver: Receiver, ca_file: Path) -> None:
    url = receiver.url("/ok")

    without = send_webhook(url, LOOPBACK)
    with_ca = send_webhook(url, {**LOOPBACK, "TIDINGS_WEBHOOK_CA_FILE": str(ca_file)})

    assert isinstance(without, ChannelFailed)
    assert "CERTIFICATE_VERIFY_FAILED" in without.error
    assert with_ca == Delivered()
    [request] = receiver.received
    assert request.verified is not None


def test_the_private_ca_is_trusted_besides_the_default_bundle(
    ca: trustme.CA, ca_file: Path, tmp_path: Path
) -> None:
    config = tmp_path / "tidings.toml"
    config.write_text(f"webhook_ca_file = {str(ca_file)!r}\n")

    settings = load_settings({}, environ=LOOPBACK, config_file=config)

    assert settings.webhook_ca_file == str(ca_file)
    context = _webhook_trust(settings.webhook_ca_file)
    assert context is not None
    trusted = context.get_ca_certs(binary_form=True)
    assert ssl.PEM_cert_to_DER_cert(ca.cert_pem.bytes().decode()) in trusted
    assert len(trusted) > 1  # the public CAs are still there


@pytest.mark.parametrize("name", ["missing.pem", "not.pem", "."])
def test_a_ca_file_that_does_not_load_stops_start_up(tmp_path: Path, name: str) -> None:
    (tmp_path / "not.pem").write_text("not a certificate\n")
    environ = {**LOOPBACK, "TIDINGS_WEBHOOK_CA_FILE": str(tmp_path / name)}

    with pytest.raises(ConfigError, match=r"^webhook_ca_file: cannot load CA certificates"):
        load_settings({}, environ=environ)

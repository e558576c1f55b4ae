"""Which sender serves each channel in a running process.

In-app delivery is the notification row itself and never reaches a sender. Email goes
through SMTP when ``SMTP_*`` is configured and is skipped with that reason when not
(the reference's graceful degradation); webhooks are signed and guarded against
private destinations.

A private CA is trusted differently per channel. Email goes to one known relay, so
``SMTP_CA_FILE`` is its whole trust store (nothing else can vouch for the relay);
webhooks go to many receivers, most with public certificates, so
``TIDINGS_WEBHOOK_CA_FILE`` is trusted besides the default bundle, not instead.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from tidings.adapters.channels.smtp_config import NOT_CONFIGURED
from tidings.adapters.channels.unconfigured import UnconfiguredSender
from tidings.core.ports import ChannelSender, WebhookDirectory
from tidings.core.records import ChannelOutcome, DeliveryJob
from tidings.core.values import Channel
from tidings.runner.clock import system_clock
from tidings.runner.config import Settings

if TYPE_CHECKING:
    from tidings.adapters.channels.email import EmailSender
    from tidings.adapters.channels.webhook import WebhookSender

_IN_APP = UnconfiguredSender("in-app is delivered when recorded")
_SMTP_NOT_CONFIGURED = UnconfiguredSender(NOT_CONFIGURED)


class _WebhookOnFirstSend:
    """The webhook sender, built when the first webhook is due: its HTTP library and
    TLS context then load only in processes that send one, and a runner that has
    only in-app work starts faster."""

    def __init__(self, directory: WebhookDirectory, settings: Settings) -> None:
        self._directory = directory
        self._settings = settings
        self._sender: WebhookSender | None = None

    async def send(self, job: DeliveryJob) -> ChannelOutcome:
        if self._sender is None:
            from tidings.adapters.channels.addresses import AddressGuard
            from tidings.adapters.channels.webhook import WebhookSender

            guard = AddressGuard(self._settings.webhook_allowed_networks)
            self._sender = WebhookSender(
                self._directory,
                guard,
                clock=system_clock,
                tls_context=_webhook_trust(self._settings.webhook_ca_file),
            )
        return await self._sender.send(job)

    async def aclose(self) -> None:
        if self._sender is not None:
            await self._sender.aclose()


@asynccontextmanager
async def channel_senders(
    directory: WebhookDirectory, settings: Settings
) -> AsyncIterator[Mapping[Channel, ChannelSender]]:
    """The configured senders, closed (idle connections dropped) on the way out; they
    look recipients up in ``directory``. Their HTTP and SMTP libraries load only in
    processes that use them."""
    webhook = _WebhookOnFirstSend(directory, settings)
    email: ChannelSender = _SMTP_NOT_CONFIGURED
    email_sender: EmailSender | None = None  # its pooled connections QUIT on the way out
    if settings.smtp is not None:
        from tidings.adapters.channels.email import EmailSender

        trust = _smtp_trust(settings.smtp.ca_file)
        email = email_sender = EmailSender(
            settings.smtp, directory, clock=system_clock, tls_context=trust
        )
    try:
        yield {Channel.IN_APP: _IN_APP, Channel.EMAIL: email, Channel.WEBHOOK: webhook}
    finally:
        await webhook.aclose()
        if email_sender is not None:
            await email_sender.aclose()


def _smtp_trust(ca_file: str | None) -> ssl.SSLContext | None:
    """Only the CAs in ``ca_file`` when given; None leaves the system's trust store."""
    return None if ca_file is None else ssl.create_default_context(cafile=ca_file)


def _webhook_trust(ca_file: str | None) -> ssl.SSLContext | None:
    """httpx's default trust (certifi's bundle) plus the CAs in ``ca_file`` when given;
    None leaves the default alone."""
    if ca_file is None:
        return None
    import httpx  # loaded with the webhook sender, on the first webhook

    context = httpx.create_ssl_context(trust_env=False)
    context.load_verify_locations(cafile=ca_file)
    return context


def default_senders() -> Mapping[Channel, ChannelSender]:
    """Every channel skipped as "not configured": for tests and benchmarks that
    exercise the loop without any outside server."""
    not_configured = UnconfiguredSender()
    return {channel: not_configured for channel in Channel}

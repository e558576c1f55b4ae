"""Which sender serves each channel in a running process.

In-app delivery is the notification row itself and never reaches a sender. Email goes
through SMTP when ``SMTP_*`` is configured and is skipped with that reason when not
(the reference's graceful degradation); webhooks are signed and guarded against
private destinations.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from adapters.channels.unconfigured import UnconfiguredSender
from core.ports import ChannelSender, Store
from core.values import Channel
from runner.clock import system_clock
from runner.config import Settings

_IN_APP = UnconfiguredSender("in-app is delivered when recorded")


@asynccontextmanager
async def channel_senders(
    store: Store, settings: Settings
) -> AsyncIterator[Mapping[Channel, ChannelSender]]:
    """The configured senders, closed (idle connections dropped) on the way out.
    Their HTTP and SMTP libraries load here, only in processes that deliver."""
    from adapters.channels.addresses import AddressGuard
    from adapters.channels.email import EmailSender
    from adapters.channels.webhook import WebhookSender

    webhook = WebhookSender(
        store, AddressGuard(settings.webhook_allowed_networks), clock=system_clock
    )
    try:
        yield {
            Channel.IN_APP: _IN_APP,
            Channel.EMAIL: EmailSender(settings.smtp, store, clock=system_clock),
            Channel.WEBHOOK: webhook,
        }
    finally:
        await webhook.aclose()


def default_senders() -> Mapping[Channel, ChannelSender]:
    """Every channel skipped as "not configured": for tests and benchmarks that
    exercise the loop without any outside server."""
    not_configured = UnconfiguredSender()
    return {channel: not_configured for channel in Channel}

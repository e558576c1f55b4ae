"""Which sender serves each channel in this process.

In-app delivery is the notification row itself and never reaches a sender; email
and webhook are skipped as "not configured" until their channels are set up.
"""

from __future__ import annotations

from collections.abc import Mapping

from adapters.channels.unconfigured import UnconfiguredSender
from core.ports import ChannelSender
from core.values import Channel


def default_senders() -> Mapping[Channel, ChannelSender]:
    not_configured = UnconfiguredSender()
    return {channel: not_configured for channel in Channel}

"""The sender for a channel the operator has not configured.

The reference degrades gracefully when SMTP is not set up: the delivery is skipped,
with that reason, and other channels carry on. It is never reported delivered.
"""

from __future__ import annotations

import attrs

from tidings.core.records import ChannelOutcome, ChannelSkipped, DeliveryJob


@attrs.frozen
class UnconfiguredSender:
    """Skips every delivery with ``reason``."""

    reason: str = "not configured"

    async def send(self, job: DeliveryJob) -> ChannelOutcome:
        return ChannelSkipped(self.reason)

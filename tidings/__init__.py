"""tidings: decide, deliver and audit notifications for your users.

The names exported here are tidings' public API, documented and kept stable: the pure
decision and the values it speaks in, and the ports and records needed to write one's
own channel sender or recipient directory. The modules under ``tidings.core``,
``tidings.adapters`` and ``tidings.runner`` are the implementation and may change
between releases; import from ``tidings`` (and ``tidings.testing`` in tests) instead.
"""

from tidings.core import (
    GLOBAL_KIND,
    Channel,
    DecisionInputs,
    Event,
    FieldError,
    InvalidEvent,
    Plan,
    Policy,
    Preference,
    PreferenceSource,
    Severity,
    Skip,
    SkipReason,
    crossed_upward,
    decide,
    decide_with,
    explain,
    normalise_channel_names,
    outcome_from_mapping,
    outcome_of,
    outcome_to_mapping,
    parse_event,
)
from tidings.core.ports import ChannelSender, RecipientDirectory, StoreUnavailable
from tidings.core.records import (
    ChannelFailed,
    ChannelOutcome,
    ChannelSkipped,
    Delivered,
    DeliveryJob,
    DeliveryStatus,
    Notification,
    Recipient,
)

__version__ = "0.1.0"

__all__ = [
    "GLOBAL_KIND",
    "Channel",
    "ChannelFailed",
    "ChannelOutcome",
    "ChannelSender",
    "ChannelSkipped",
    "DecisionInputs",
    "Delivered",
    "DeliveryJob",
    "DeliveryStatus",
    "Event",
    "FieldError",
    "InvalidEvent",
    "Notification",
    "Plan",
    "Policy",
    "Preference",
    "PreferenceSource",
    "Recipient",
    "RecipientDirectory",
    "Severity",
    "Skip",
    "SkipReason",
    "StoreUnavailable",
    "__version__",
    "crossed_upward",
    "decide",
    "decide_with",
    "explain",
    "normalise_channel_names",
    "outcome_from_mapping",
    "outcome_of",
    "outcome_to_mapping",
    "parse_event",
]

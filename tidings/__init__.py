"""tidings: decide, deliver and audit notifications for your users.

The names exported here are tidings' public API, documented and kept stable: the pure
decision and the values it speaks in; the ports and records needed to write one's own
channel sender or recipient directory; and the application API (``Tidings``,
``AsyncTidings``) with its errors. The modules under ``tidings.core``,
``tidings.adapters`` and ``tidings.runner`` are the implementation and may change
between releases; import from ``tidings`` (and ``tidings.testing`` in tests) instead.

The application API loads on first use: code that only embeds ``decide`` does not pay
for asyncio, the settings and the dispatcher.
"""

import importlib
from typing import TYPE_CHECKING

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
from tidings.core.decision import Hold
from tidings.core.digest import HeldEvent, digest_event
from tidings.core.ports import ChannelSender, RecipientDirectory, StoreUnavailable
from tidings.core.quiet_hours import QuietHours, held_until, is_quiet
from tidings.core.records import (
    UNCHANGED,
    ChannelFailed,
    ChannelOutcome,
    ChannelSkipped,
    Delivered,
    DeliveryJob,
    DeliveryStatus,
    Notification,
    Recipient,
)

if TYPE_CHECKING:
    from tidings.runner.api import (
        AsyncTidings,
        InvalidEventError,
        InvalidPreferenceError,
        InvalidQuietHoursError,
        InvalidRecipientError,
    )
    from tidings.runner.bootstrap import SchemaNotReady
    from tidings.runner.sync_api import Tidings
    from tidings.runner.telemetry.observers import DispatchSummary

__version__ = "0.1.0"

_APPLICATION_API = {
    "AsyncTidings": "tidings.runner.api",
    "InvalidEventError": "tidings.runner.api",
    "InvalidPreferenceError": "tidings.runner.api",
    "InvalidQuietHoursError": "tidings.runner.api",
    "InvalidRecipientError": "tidings.runner.api",
    "SchemaNotReady": "tidings.runner.bootstrap",
    "DispatchSummary": "tidings.runner.telemetry.observers",
    "Tidings": "tidings.runner.sync_api",
}


def __getattr__(name: str) -> object:
    """The application API's names, imported when first asked for."""
    module = _APPLICATION_API.get(name)
    if module is None:
        raise AttributeError(f"module 'tidings' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "GLOBAL_KIND",
    "UNCHANGED",
    "AsyncTidings",
    "Channel",
    "ChannelFailed",
    "ChannelOutcome",
    "ChannelSender",
    "ChannelSkipped",
    "DecisionInputs",
    "Delivered",
    "DeliveryJob",
    "DeliveryStatus",
    "DispatchSummary",
    "Event",
    "FieldError",
    "HeldEvent",
    "Hold",
    "InvalidEvent",
    "InvalidEventError",
    "InvalidPreferenceError",
    "InvalidQuietHoursError",
    "InvalidRecipientError",
    "Notification",
    "Plan",
    "Policy",
    "Preference",
    "PreferenceSource",
    "QuietHours",
    "Recipient",
    "RecipientDirectory",
    "SchemaNotReady",
    "Severity",
    "Skip",
    "SkipReason",
    "StoreUnavailable",
    "Tidings",
    "__version__",
    "crossed_upward",
    "decide",
    "decide_with",
    "digest_event",
    "explain",
    "held_until",
    "is_quiet",
    "normalise_channel_names",
    "outcome_from_mapping",
    "outcome_of",
    "outcome_to_mapping",
    "parse_event",
]

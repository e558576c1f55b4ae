"""tidings core: the pure decision and the values it speaks in.

No I/O, no clock, no randomness, no logging: everything here can be embedded,
property-tested and replayed. The names below are the stable public API.
"""

from tidings.core.codec import outcome_from_mapping, outcome_to_mapping
from tidings.core.decision import (
    DecisionInputs,
    Plan,
    Skip,
    SkipReason,
    decide,
    decide_with,
    outcome_of,
)
from tidings.core.explanation import explain
from tidings.core.triggers import crossed_upward
from tidings.core.validation import FieldError, InvalidEvent, parse_event
from tidings.core.values import (
    GLOBAL_KIND,
    Channel,
    Event,
    Policy,
    Preference,
    PreferenceSource,
    Severity,
    normalise_channel_names,
)

__all__ = [
    "GLOBAL_KIND",
    "Channel",
    "DecisionInputs",
    "Event",
    "FieldError",
    "InvalidEvent",
    "Plan",
    "Policy",
    "Preference",
    "PreferenceSource",
    "Severity",
    "Skip",
    "SkipReason",
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

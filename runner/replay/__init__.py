"""What-if replays of recorded decisions: a pure engine (``engine``), its reading of
history (``history``), its inputs (``inputs``) and its tables (``tables``)."""

from tidings.runner.replay.engine import Counts, Key, Replay, Replayer
from tidings.runner.replay.history import replay
from tidings.runner.replay.inputs import (
    ReplayInputError,
    parse_since,
    read_preference_changes,
    with_changes,
)
from tidings.runner.replay.tables import progress_line, replay_json, replay_table

__all__ = [
    "Counts",
    "Key",
    "Replay",
    "ReplayInputError",
    "Replayer",
    "parse_since",
    "progress_line",
    "read_preference_changes",
    "replay",
    "replay_json",
    "replay_table",
    "with_changes",
]

"""The what-if inputs of a replay: a preferences file over the stored rows, and where
in history to start (``--since``)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tidings.core import GLOBAL_KIND, Channel, Preference, Severity, normalise_channel_names
from tidings.runner.replay.engine import Key


class ReplayInputError(ValueError):
    """A what-if input (preferences file, --since) is malformed; the message names it."""


_DURATION = re.compile(r"(\d+)([dhms])")
_UNITS = {
    "d": timedelta(days=1),
    "h": timedelta(hours=1),
    "m": timedelta(minutes=1),
    "s": timedelta(seconds=1),
}


def parse_since(text: str, now: datetime) -> datetime:
    """``30d``, ``12h``, ``90m``, ``3600s`` before ``now``, or an ISO date/time (UTC
    unless it says otherwise). ``now`` comes from the runner's clock."""
    cleaned = text.strip()
    try:
        if duration := _DURATION.fullmatch(cleaned):
            return now - int(duration[1]) * _UNITS[duration[2]]
        moment = datetime.fromisoformat(cleaned)
    except (ValueError, OverflowError):
        raise ReplayInputError(
            f"--since must be a duration like 30d, 12h, 90m or 3600s, or an ISO date/time;"
            f" got {text!r}"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


_KNOWN_CHANNELS = tuple(channel.value for channel in Channel)
_ROW_FIELDS = frozenset({"channels", "min_severity", "digest"})


def read_preference_changes(path: Path) -> dict[Key, Preference | None]:
    """A JSON file ``{user: {kind or _global: {"channels": [...], "min_severity": ...,
    "digest": true|false|null}}}``; a row ``null`` means "remove this row". Channel
    names are normalised as stores do; unknown ones are refused, since in a what-if file
    they are typos. ``digest`` (per-kind rows only, as stores keep it) turns digests on
    or off for the kind; null or left out follows the policy."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ReplayInputError(f"prefs file {path}: {error.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ReplayInputError(f"prefs file {path}: not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise ReplayInputError(f"prefs file {path}: must be a JSON object of users")
    changes: dict[Key, Preference | None] = {}
    for user, rows in data.items():
        if not user.strip() or not isinstance(rows, dict):
            raise ReplayInputError(
                f"prefs file {path}: user {user!r}: must be a non-empty id mapping to"
                " an object of kinds"
            )
        for kind, row in rows.items():
            where = f"prefs file {path}: user {user!r}, kind {kind!r}"
            if not kind.strip():
                raise ReplayInputError(f"{where}: the kind must not be empty")
            changes[(user, kind)] = _preference_row(where, row, is_global=kind == GLOBAL_KIND)
    return changes


def _preference_row(where: str, row: object, *, is_global: bool) -> Preference | None:
    if row is None:
        return None
    if not isinstance(row, dict):
        raise ReplayInputError(
            f"{where}: must be an object with channels, min_severity and digest, or null"
        )
    unknown = sorted(set(row) - _ROW_FIELDS)
    if unknown:
        raise ReplayInputError(f"{where}: unknown field(s) {', '.join(unknown)}")
    channels = row.get("channels")
    if not isinstance(channels, list) or not all(isinstance(name, str) for name in channels):
        raise ReplayInputError(
            f"{where}, channels: must be a list of channel names ([] for silent)"
        )
    names = normalise_channel_names(channels)
    unknown = [name for name in names if name not in _KNOWN_CHANNELS]
    if unknown:
        raise ReplayInputError(
            f"{where}, channels: unknown {', '.join(unknown)} (known: {', '.join(_KNOWN_CHANNELS)})"
        )
    severity = row.get("min_severity", Severity.INFO.value)
    try:
        minimum = Severity(severity)
    except ValueError:
        raise ReplayInputError(
            f"{where}, min_severity: must be info, watch or critical, got {severity!r}"
        ) from None
    digest = row.get("digest")
    if digest is not None and not isinstance(digest, bool):
        raise ReplayInputError(f"{where}, digest: must be true, false or null, got {digest!r}")
    if digest is not None and is_global:
        raise ReplayInputError(
            f"{where}, digest: only a per-kind row turns digests on or off"
            " (the policy's digest_after_cooldown covers the rest)"
        )
    return Preference(names, minimum, digest=digest)


def with_changes(
    current: Mapping[Key, Preference], changes: Mapping[Key, Preference | None]
) -> dict[Key, Preference]:
    """The stored rows with the file's rows replacing, adding or (``None``) removing them."""
    merged = dict(current)
    for key, preference in changes.items():
        if preference is None:
            merged.pop(key, None)
        else:
            merged[key] = preference
    return merged

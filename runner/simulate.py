"""What-if replays: recorded events decided again under other preferences or policy.

Before changing a cooldown or a user's channels, an operator wants to know what it
would do. History keeps every decided event and the moment it was decided, and the
decision is a pure function, so deciding those events again in decision order, with
a cooldown memory of the replay's own, says exactly what would have been sent; with
the current inputs it reproduces what was sent. Events are read page by page, so
memory stays flat however long the history; only the counts grow, with the users.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

import attrs
from returns.result import Failure, Success

from tidings.core import (
    GLOBAL_KIND,
    Channel,
    Policy,
    Preference,
    Severity,
    decide,
    normalise_channel_names,
)
from tidings.core.ports import History
from tidings.core.records import DecidedEvent
from tidings.runner.output import table

Key = tuple[str, str]
"""(user_id, kind), the unit of preferences and of the cooldown."""


class ReplayInputError(ValueError):
    """A what-if input (preferences file, --since) is malformed; the message names it."""


@attrs.frozen(kw_only=True)
class Counts:
    """Events decided for one kind, one user or in all, and how many notified then
    (``sent``) and would notify under the replay's inputs (``would_send``)."""

    events: int
    sent: int
    would_send: int

    @property
    def delta(self) -> int:
        return self.would_send - self.sent


@attrs.frozen(kw_only=True)
class Replay:
    """What a replay found: counts in all, per kind, per user, and why it would skip."""

    totals: Counts
    per_kind: Mapping[str, Counts]
    per_user: Mapping[str, Counts]
    would_skip_by_reason: Mapping[str, int]


class _Tally:
    """A Counts being added up: mutable, since one is touched per event three times."""

    __slots__ = ("events", "sent", "would_send")

    def __init__(self) -> None:
        self.events = self.sent = self.would_send = 0

    def add(self, sent: bool, would_send: bool) -> None:
        self.events += 1
        self.sent += int(sent)
        self.would_send += int(would_send)

    def counts(self) -> Counts:
        return Counts(events=self.events, sent=self.sent, would_send=self.would_send)


class _Replayer:
    """Decides recorded events one by one, in order, remembering its own last sends."""

    def __init__(
        self,
        preferences: Mapping[Key, Preference],
        policy: Policy,
        last_sent: Mapping[Key, datetime],
    ) -> None:
        self._preferences = preferences
        self._policy = policy
        self._last_sent = dict(last_sent)
        self._totals = _Tally()
        self._per_kind: defaultdict[str, _Tally] = defaultdict(_Tally)
        self._per_user: defaultdict[str, _Tally] = defaultdict(_Tally)
        self._skipped: Counter[str] = Counter()

    def take(self, decided: DecidedEvent) -> None:
        event = decided.event
        key = (event.user_id, event.kind)
        outcome = decide(
            event,
            kind_preference=self._preferences.get(key),
            global_preference=self._preferences.get((event.user_id, GLOBAL_KIND)),
            last_sent_at=self._last_sent.get(key),
            now=decided.decided_at,
            policy=self._policy,
        )
        would_send = False
        match outcome:
            case Success(_):
                # As when recording: the cooldown starts at the decision, delivered or not.
                self._last_sent[key] = decided.decided_at
                would_send = True
            case Failure(skip):
                self._skipped[skip.reason.value] += 1
        for tally in (self._totals, self._per_kind[event.kind], self._per_user[event.user_id]):
            tally.add(decided.notified, would_send)

    def result(self) -> Replay:
        return Replay(
            totals=self._totals.counts(),
            per_kind={kind: tally.counts() for kind, tally in sorted(self._per_kind.items())},
            per_user={user: tally.counts() for user, tally in sorted(self._per_user.items())},
            would_skip_by_reason=dict(sorted(self._skipped.items())),
        )


async def replay(
    store: History,
    *,
    preferences: Mapping[Key, Preference],
    policy: Policy,
    since: datetime,
    progress: Callable[[int], None] | None = None,
    page_size: int = 5000,
) -> Replay:
    """Decide every event decided at or after ``since`` again, under ``preferences``
    and ``policy``, starting from the cooldowns the real notifications before
    ``since`` left. ``progress`` hears the running count of events after each page."""
    replayer = _Replayer(preferences, policy, await store.last_notified_before(since))
    after: tuple[datetime, int] | None = None
    replayed = 0
    while True:
        page = await store.decided_events(since, after, page_size)
        for decided in page:
            replayer.take(decided)
        replayed += len(page)
        if progress is not None and page:
            progress(replayed)
        if len(page) < page_size:
            return replayer.result()
        after = page[-1].position


# -- inputs ----------------------------------------------------------------------------

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
_ROW_FIELDS = frozenset({"channels", "min_severity"})


def read_preference_changes(path: Path) -> dict[Key, Preference | None]:
    """A JSON file ``{user: {kind or _global: {"channels": [...], "min_severity": ...}}}``;
    a row ``null`` means "remove this row". Channel names are normalised as stores do;
    unknown ones are refused, since in a what-if file they are typos."""
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
            changes[(user, kind)] = _preference_row(where, row)
    return changes


def _preference_row(where: str, row: object) -> Preference | None:
    if row is None:
        return None
    if not isinstance(row, dict):
        raise ReplayInputError(
            f"{where}: must be an object with channels and min_severity, or null"
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
        return Preference(names, Severity(severity))
    except ValueError:
        raise ReplayInputError(
            f"{where}, min_severity: must be info, watch or critical, got {severity!r}"
        ) from None


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


# -- output ----------------------------------------------------------------------------


def progress_line(stream: TextIO) -> Callable[[int], None] | None:
    """A running count rewritten in place, only on a terminal: in a pipe or a log
    file the carriage returns would be noise."""
    if not stream.isatty():
        return None

    def show(replayed: int) -> None:
        stream.write(f"\rreplayed {replayed:,} events")
        stream.flush()

    return show


def _change(delta: int) -> str:
    return f"{delta:+,}" if delta else "0"


def _row(name: str, counts: Counts) -> tuple[str, int, int, int, str]:
    return (name, counts.events, counts.sent, counts.would_send, _change(counts.delta))


def replay_table(found: Replay, top: int) -> str:
    """Per kind, the totals and skip reasons, then the ``top`` users whose count
    changes most: the per-user map can hold every user, too many to print."""
    headers = ("kind", "events", "sent", "would send", "change")
    totals = found.totals
    reasons = ", ".join(
        f"{reason} {count:,}" for reason, count in found.would_skip_by_reason.items()
    )
    lines = [
        table(headers, [_row(kind, counts) for kind, counts in found.per_kind.items()]),
        f"total: {totals.events:,} events, {totals.sent:,} sent, "
        f"{totals.would_send:,} would send ({_change(totals.delta)})",
        f"would skip: {reasons or 'none'}",
    ]
    changed = sorted(
        ((user, counts) for user, counts in found.per_user.items() if counts.delta),
        key=lambda item: (-abs(item[1].delta), item[0]),
    )
    if not changed:
        lines.append("no user's count changes")
    elif top:
        shown = [_row(user, counts) for user, counts in changed[:top]]
        lines += [
            f"\n{len(shown)} of {len(changed):,} changed user(s), largest change first:",
            table(("user", *headers[1:]), shown),
        ]
    return "\n".join(lines)


def _counts_json(counts: Counts) -> dict[str, int]:
    return {
        "events": counts.events,
        "sent": counts.sent,
        "would_send": counts.would_send,
        "delta": counts.delta,
    }


def replay_json(found: Replay) -> dict[str, object]:
    return {
        "totals": _counts_json(found.totals),
        "per_kind": {kind: _counts_json(counts) for kind, counts in found.per_kind.items()},
        "per_user": {user: _counts_json(counts) for user, counts in found.per_user.items()},
        "would_skip_by_reason": dict(found.would_skip_by_reason),
    }

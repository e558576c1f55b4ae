"""The replay engine, pure: recorded events decided again, in decision order, under
other preferences or another policy, counting what was sent against what would be.

The decision is a pure function, so deciding those events again with a cooldown memory
of the replay's own says exactly what would have been sent; with the current inputs it
reproduces what was sent. Reading history (``history``) and showing the result
(``tables``) are apart, so the engine is tested on values alone.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from datetime import datetime

import attrs
from returns.result import Failure, Success

from tidings.core import GLOBAL_KIND, Policy, Preference, decide
from tidings.core.records import DecidedEvent

Key = tuple[str, str]
"""(user_id, kind), the unit of preferences and of the cooldown."""


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


class Replayer:
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

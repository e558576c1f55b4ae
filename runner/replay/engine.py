"""The replay engine, pure: recorded events decided again, in decision order, under
other preferences or another policy, counting what was sent against what would be.

The decision is a pure function, so deciding those events again with a memory of the
replay's own says exactly what would have been sent; with the current inputs it
reproduces what was sent. That memory is what a store keeps for the same rules
(adapters/recording.py): each (user, kind)'s last notification, its time for the
cooldown and its severity for an escalation past it; and each key's pending digest,
the events its cooldown held back, due when that cooldown ends. A digest is decided
as an event of its own (``core.digest``) at its due time, before the key's next
event, and waits for a cooldown started since (an escalation), as stores do; a runner
decides it at the first sweep after its due time, which is that time give or take a
poll. Users' quiet hours are today's, like their preferences. Reading history
(``history``) and showing the result (``tables``) are apart, so the engine is tested
on values alone.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime

import attrs

from tidings.core import GLOBAL_KIND, Event, Policy, Preference, Severity
from tidings.core.decision import (
    HELD_CHANNELS,
    DecisionInputs,
    Plan,
    Skip,
    SkipReason,
    decide_with,
    outcome_of,
)
from tidings.core.digest import DIGEST_PREFIX, HeldEvent, digest_event
from tidings.core.quiet_hours import QuietHours
from tidings.core.records import DecidedEvent

Key = tuple[str, str]
"""(user_id, kind), the unit of preferences, of the cooldown and of digests."""


@attrs.frozen(kw_only=True)
class Counts:
    """What one kind, one user or everyone got. Events: how many were decided, how many
    notified then (``sent``) and would notify under the replay's inputs
    (``would_send``). Digests: how many notified then (``digests_sent``), would notify
    (``digests_would_send``) and would still be pending, due after the replay's end
    (``digests_pending``). ``held``: the email and webhook deliveries of the replay's
    notifications that quiet hours would hold until their window ends."""

    events: int
    sent: int
    would_send: int
    digests_sent: int = 0
    digests_would_send: int = 0
    digests_pending: int = 0
    held: int = 0

    @property
    def delta(self) -> int:
        """The change in notifications received, events' and digests' together."""
        return self.would_send + self.digests_would_send - self.sent - self.digests_sent


@attrs.frozen(kw_only=True)
class Replay:
    """What a replay found: counts in all, per kind, per user, and why it would skip
    events (a digest it would skip counts in ``digests_would_skip_by_reason``)."""

    totals: Counts
    per_kind: Mapping[str, Counts]
    per_user: Mapping[str, Counts]
    would_skip_by_reason: Mapping[str, int]
    digests_would_skip_by_reason: Mapping[str, int] = attrs.Factory(dict)


class _Tally:
    """A Counts being added up: mutable, since one is touched per event three times."""

    __slots__ = (
        "digests_pending",
        "digests_sent",
        "digests_would_send",
        "events",
        "held",
        "sent",
        "would_send",
    )

    def __init__(self) -> None:
        self.events = self.sent = self.would_send = self.held = 0
        self.digests_sent = self.digests_would_send = self.digests_pending = 0

    def counts(self) -> Counts:
        return Counts(
            events=self.events,
            sent=self.sent,
            would_send=self.would_send,
            digests_sent=self.digests_sent,
            digests_would_send=self.digests_would_send,
            digests_pending=self.digests_pending,
            held=self.held,
        )


@attrs.define
class _Pending:
    """A key's digest in the replay: what its cooldown held, due when that ends."""

    held: list[HeldEvent]
    due_at: datetime


class Replayer:
    """Decides recorded events one by one, in order, remembering its own notifications
    and digests. It starts from what history left at ``since``: each key's last
    notification (``last_sent``: time and severity) and the events held for digests
    still pending then (``held``, due when the cooldown of that last notification ends
    under the replay's policy). ``digests_sent`` counts the digests recorded at or
    after ``since``, per key."""

    def __init__(
        self,
        preferences: Mapping[Key, Preference],
        policy: Policy,
        *,
        since: datetime,
        last_sent: Mapping[Key, tuple[datetime, Severity]],
        quiet_hours: Mapping[str, QuietHours] | None = None,
        held: Mapping[Key, Sequence[HeldEvent]] | None = None,
        digests_sent: Mapping[Key, int] | None = None,
    ) -> None:
        self._preferences = preferences
        self._policy = policy
        self._quiet_hours = quiet_hours or {}
        self._last_sent = dict(last_sent)
        self._pending: dict[Key, _Pending] = {}
        self._digests = 0
        self._totals = _Tally()
        self._per_kind: defaultdict[str, _Tally] = defaultdict(_Tally)
        self._per_user: defaultdict[str, _Tally] = defaultdict(_Tally)
        self._skipped: Counter[str] = Counter()
        self._digests_skipped: Counter[str] = Counter()
        for key, events in (held or {}).items():
            if events:
                last = self._last_sent.get(key)
                due_at = since if last is None else max(since, last[0] + policy.cooldown)
                self._pending[key] = _Pending(list(events), due_at)
        for key, sent in (digests_sent or {}).items():
            for tally in self._tallies(key):
                tally.digests_sent += sent

    def take(self, decided: DecidedEvent) -> None:
        event = decided.event
        key = (event.user_id, event.kind)
        now = decided.decided_at
        self._send_due_digest(key, now)
        outcome = self._decide(event, key, now)
        tallies = self._tallies(key)
        for tally in tallies:
            tally.events += 1
            tally.sent += int(decided.notified)
        if isinstance(outcome, Plan):
            for tally in tallies:
                tally.would_send += 1
            self._notified(key, outcome, now)
            return
        self._skipped[outcome.reason.value] += 1
        if outcome.held_for_digest:
            self._hold(key, event, outcome, now)

    def result(self, until: datetime) -> Replay:
        """The counts at ``until``, the end of the replayed window: digests due by then
        are sent; those due later count as pending."""
        for key in list(self._pending):
            self._send_due_digest(key, until)
        for key in self._pending:
            for tally in self._tallies(key):
                tally.digests_pending += 1
        return Replay(
            totals=self._totals.counts(),
            per_kind={kind: tally.counts() for kind, tally in sorted(self._per_kind.items())},
            per_user={user: tally.counts() for user, tally in sorted(self._per_user.items())},
            would_skip_by_reason=dict(sorted(self._skipped.items())),
            digests_would_skip_by_reason=dict(sorted(self._digests_skipped.items())),
        )

    def _tallies(self, key: Key) -> tuple[_Tally, _Tally, _Tally]:
        return self._totals, self._per_kind[key[1]], self._per_user[key[0]]

    def _decide(self, event: Event, key: Key, now: datetime) -> Plan | Skip:
        last = self._last_sent.get(key)
        inputs = DecisionInputs(
            kind_preference=self._preferences.get(key),
            global_preference=self._preferences.get((key[0], GLOBAL_KIND)),
            last_sent_at=None if last is None else last[0],
            last_severity=None if last is None else last[1],
            quiet_hours=self._quiet_hours.get(key[0]),
        )
        return outcome_of(decide_with(event, inputs, now, self._policy))

    def _notified(self, key: Key, plan: Plan, now: datetime) -> None:
        # As when recording: the cooldown starts at the decision, delivered or not.
        self._last_sent[key] = (now, plan.severity)
        if plan.hold is not None:
            held = len(HELD_CHANNELS.intersection(plan.channels))
            for tally in self._tallies(key):
                tally.held += held

    def _hold(self, key: Key, event: Event, skip: Skip, now: datetime) -> None:
        """``event`` joins the key's digest, due when the cooldown that held it ends."""
        assert skip.cooldown_ends_at is not None  # a cooldown skip carries its end
        held = HeldEvent(
            event_id=event.event_id, severity=event.severity, title=event.title, held_at=now
        )
        pending = self._pending.get(key)
        if pending is None:
            self._pending[key] = _Pending([held], skip.cooldown_ends_at)
        else:
            pending.held.append(held)
            pending.due_at = skip.cooldown_ends_at

    def _send_due_digest(self, key: Key, now: datetime) -> None:
        """Decide the key's digest at its due time if that is at or before ``now``; one
        that meets a cooldown started since waits for its end, and is tried again."""
        pending = self._pending.get(key)
        while pending is not None and pending.due_at <= now:
            self._digests += 1
            digest = digest_event(f"{DIGEST_PREFIX}replay-{self._digests}", *key, pending.held)
            outcome = self._decide(digest, key, pending.due_at)
            if isinstance(outcome, Skip) and outcome.reason is SkipReason.COOLDOWN:
                assert outcome.cooldown_ends_at is not None
                pending.due_at = outcome.cooldown_ends_at
                continue
            del self._pending[key]
            if isinstance(outcome, Plan):
                for tally in self._tallies(key):
                    tally.digests_would_send += 1
                self._notified(key, outcome, pending.due_at)
            else:
                self._digests_skipped[outcome.reason.value] += 1
            pending = None

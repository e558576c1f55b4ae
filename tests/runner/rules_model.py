"""The rules of README.md ("The rules") written the plain way, for the stateful test of
the dispatcher (tests/runner/test_dispatcher_stateful.py).

Nothing here calls the decision or the stores' recording code: preferences are a
dictionary, the cooldown a last (time, severity) per (user, kind), the end of quiet
hours a minute-by-minute walk of the user's wall clock, and a digest a list of held
events with a due time. ``RulesModel.drain`` decides what one drain of the dispatcher
decides at one instant: for each key, in the order the events were accepted, its due
digest first and then the event; then the digests still due (the runner's sweep);
then every delivery whose first attempt is due.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, time, timedelta

import attrs

from tidings.core import GLOBAL_KIND, Event, Policy, Preference, Severity
from tidings.core.quiet_hours import QuietHours

Key = tuple[str, str]

KNOWN = ("in_app", "email", "webhook")
HELD_BY_QUIET_HOURS = ("email", "webhook")
_RANK = {severity: rank for rank, severity in enumerate(Severity)}
_MINUTE = timedelta(minutes=1)
_LONGEST_QUIET = timedelta(days=2)
"""A window lasts less than a day; a daylight-saving change adds at most an hour or so."""

NOTIFIED = "notified"


@attrs.frozen(kw_only=True)
class Verdict:
    """What the rules say about one event (or digest) at one instant: ``reason`` is None
    to notify, else the skip reason."""

    reason: str | None
    channels: tuple[str, ...] = ()
    escalated_over: Severity | None = None
    held_until: datetime | None = None
    cooldown_ends_at: datetime | None = None
    last_severity: Severity | None = None
    """What a cooldown skip compared the event with, when escalation is on."""


@attrs.frozen(kw_only=True)
class Outcome:
    """An event's expected terminal state."""

    verdict: Verdict
    held_for_digest: bool = False


@attrs.frozen(kw_only=True)
class HeldEvent:
    event_id: str
    severity: Severity


@attrs.define(kw_only=True)
class Digest:
    """A key's digest: pending until decided, then ``notified`` or ``skipped``."""

    user_id: str
    kind: str
    due_at: datetime
    held: list[HeldEvent] = attrs.Factory(list)
    status: str = "pending"

    @property
    def ident(self) -> str:
        """How the test names its notification: by the held event ids."""
        return digest_ident([item.event_id for item in self.held])

    def severity(self) -> Severity:
        return max((item.severity for item in self.held), key=_RANK.__getitem__)

    def title(self) -> str:
        count = len(self.held)
        return f"{count} more {self.kind} {'event' if count == 1 else 'events'}"


@attrs.frozen(kw_only=True)
class Sent:
    """An expected notification: an event's, or a digest's (``ident`` from its ids)."""

    ident: str
    user_id: str
    kind: str
    severity: Severity
    title: str
    created_at: datetime
    channels: tuple[str, ...]


@attrs.define(kw_only=True)
class Delivery:
    """An expected delivery: due at ``due``, first attempted at the first drain from then
    (in-app: when recorded)."""

    due: datetime
    first_attempt: datetime | None = None


def digest_ident(event_ids: Sequence[str]) -> str:
    return "digest:" + ",".join(event_ids)


def is_quiet(window: QuietHours, moment: datetime) -> bool:
    """Whether the user's wall clock shows a time inside the window (fold ignored)."""
    wall = moment.astimezone(window.zone).time()
    if window.starts < window.ends:
        return window.starts <= wall < window.ends
    return wall >= window.starts or wall < window.ends


def quiet_ends(window: QuietHours, now: datetime) -> datetime | None:
    """The first instant from ``now`` that is not quiet, or None if ``now`` is not.
    Windows are whole minutes, and the zones the test uses change offset on whole
    minutes, so quiet ends on a whole minute: walk them."""
    if not is_quiet(window, now):
        return None
    moment = now.replace(second=0, microsecond=0) + _MINUTE
    while is_quiet(window, moment):
        moment += _MINUTE
        if moment - now > _LONGEST_QUIET:
            raise AssertionError(f"quiet hours {window} never end after {now}")
    return moment


class RulesModel:
    """The decisions, digests and deliveries the dispatcher should have recorded."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.preferences: dict[Key, Preference] = {}
        self.quiet_hours: dict[str, QuietHours] = {}
        self.last_sent: dict[Key, tuple[datetime, Severity]] = {}
        self.pending: dict[Key, Digest] = {}
        self.digests: list[Digest] = []
        self.outcomes: dict[str, Outcome] = {}
        self.sent: dict[str, Sent] = {}
        self.deliveries: dict[tuple[str, str], Delivery] = {}

    # -- the rules -------------------------------------------------------------------

    def verdict(self, user_id: str, kind: str, severity: Severity, now: datetime) -> Verdict:
        """Rules 1 to 6, first match wins."""
        own = self.preferences.get((user_id, kind))
        shared = self.preferences.get((user_id, GLOBAL_KIND))
        if own is not None:
            names, minimum = own.channels, own.min_severity
        elif shared is not None:
            names, minimum = shared.channels, self.policy.default_min_severity
        else:
            names = tuple(channel.value for channel in self.policy.default_channels)
            minimum = self.policy.default_min_severity
        channels = tuple(dict.fromkeys(name for name in names if name in KNOWN))
        if _RANK[severity] < _RANK[minimum]:
            return Verdict(reason="severity_below_minimum")
        if not channels:
            return Verdict(reason="no_channels")
        escalated_over = None
        last = self.last_sent.get((user_id, kind))
        if last is not None and now - last[0] < self.policy.cooldown:
            if self.policy.escalate_past_cooldown and _RANK[severity] > _RANK[last[1]]:
                escalated_over = last[1]
            else:
                return Verdict(
                    reason="cooldown",
                    cooldown_ends_at=last[0] + self.policy.cooldown,
                    last_severity=last[1] if self.policy.escalate_past_cooldown else None,
                )
        held_until = None
        window = self.quiet_hours.get(user_id)
        holds = severity is not Severity.CRITICAL or self.policy.quiet_hours_hold_critical
        if window is not None and holds and set(channels) & set(HELD_BY_QUIET_HOURS):
            held_until = quiet_ends(window, now)
        return Verdict(
            reason=None, channels=channels, escalated_over=escalated_over, held_until=held_until
        )

    def digests_on(self, user_id: str, kind: str) -> bool:
        """A per-kind row's switch, else the policy's (the global row has none)."""
        own = self.preferences.get((user_id, kind))
        if own is not None and own.digest is not None:
            return own.digest
        return self.policy.digest_after_cooldown

    # -- one drain -------------------------------------------------------------------

    def drain(self, events: Sequence[Event], now: datetime) -> None:
        for event in events:
            self._decide_due_digest((event.user_id, event.kind), now)
            self._decide_event(event, now)
        for key in sorted(self.pending):
            self._decide_due_digest(key, now)
        for delivery in self.deliveries.values():
            if delivery.first_attempt is None and delivery.due <= now:
                delivery.first_attempt = now

    def _decide_event(self, event: Event, now: datetime) -> None:
        key = (event.user_id, event.kind)
        verdict = self.verdict(event.user_id, event.kind, event.severity, now)
        held = verdict.reason == "cooldown" and self.digests_on(*key)
        self.outcomes[event.event_id] = Outcome(verdict=verdict, held_for_digest=held)
        if verdict.reason is None:
            self._notify(event.event_id, key, event.severity, event.title, verdict, now)
        elif held:
            assert verdict.cooldown_ends_at is not None
            digest = self.pending.get(key)
            if digest is None:
                digest = Digest(user_id=key[0], kind=key[1], due_at=verdict.cooldown_ends_at)
                self.pending[key] = digest
                self.digests.append(digest)
            digest.due_at = verdict.cooldown_ends_at
            digest.held.append(HeldEvent(event_id=event.event_id, severity=event.severity))

    def _decide_due_digest(self, key: Key, now: datetime) -> None:
        """A due digest is decided as one event, now; a cooldown makes it wait again."""
        digest = self.pending.get(key)
        if digest is None or digest.due_at > now:
            return
        verdict = self.verdict(*key, digest.severity(), now)
        if verdict.reason == "cooldown":
            assert verdict.cooldown_ends_at is not None
            digest.due_at = verdict.cooldown_ends_at
            return
        del self.pending[key]
        if verdict.reason is not None:
            digest.status = "skipped"
            return
        digest.status = NOTIFIED
        self._notify(digest.ident, key, digest.severity(), digest.title(), verdict, now)

    def _notify(
        self, ident: str, key: Key, severity: Severity, title: str, verdict: Verdict, now: datetime
    ) -> None:
        self.last_sent[key] = (now, severity)
        self.sent[ident] = Sent(
            ident=ident,
            user_id=key[0],
            kind=key[1],
            severity=severity,
            title=title,
            created_at=now,
            channels=verdict.channels,
        )
        for channel in verdict.channels:
            if channel == "in_app":  # the notification row itself: delivered at once
                self.deliveries[(ident, channel)] = Delivery(due=now, first_attempt=now)
            else:
                self.deliveries[(ident, channel)] = Delivery(due=verdict.held_until or now)

    # -- what is still ahead ---------------------------------------------------------

    def next_due(self, now: datetime) -> datetime | None:
        """The next instant after ``now`` when a held delivery or a digest falls due."""
        ahead = [d.due for d in self.deliveries.values() if d.first_attempt is None]
        ahead += [digest.due_at for digest in self.pending.values()]
        return min((moment for moment in ahead if moment > now), default=None)


def clock_time(minutes: int) -> time:
    """Minutes after midnight as a wall-clock time."""
    return time(minutes // 60, minutes % 60)

"""The dispatcher against a simple model, driven by hypothesis.

The model is the rules written the plain way: a dictionary of preferences and of
last-notified times. Hypothesis interleaves preference changes, events, clock
jumps and drains with one to four lanes, on the in-memory store, which claims and
decides in one step as the SQL stores do; after every drain each event must be
terminal with the outcome the model predicts, and no (user, kind) may hold two
notifications inside the cooldown.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import defaultdict
from datetime import UTC, datetime, timedelta

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from tidings.adapters.memory import MemoryStore
from tidings.core import GLOBAL_KIND, Event, Preference, Severity, Skip
from tidings.core.records import EventStatus
from tidings.runner.dispatch import Dispatcher, DispatchOptions
from tidings.runner.dispatch.senders import default_senders
from tidings.testing import FakeClock

USERS = ("u1", "u2")
KINDS = ("overload", "digest")
COOLDOWN = timedelta(hours=24)
KNOWN = ("in_app", "email", "webhook")


def model_outcome(
    preferences: dict[tuple[str, str], Preference],
    last_sent: dict[tuple[str, str], datetime],
    event: Event,
    now: datetime,
) -> str:
    """The rules, written independently of core.decide: 'notified' or the skip reason."""
    key = (event.user_id, event.kind)
    if key in preferences:
        channels = [c for c in preferences[key].channels if c in KNOWN]
        minimum = preferences[key].min_severity
    elif (event.user_id, GLOBAL_KIND) in preferences:
        channels = [c for c in preferences[(event.user_id, GLOBAL_KIND)].channels if c in KNOWN]
        minimum = Severity.INFO
    else:
        channels, minimum = ["in_app"], Severity.INFO
    order = list(Severity)
    if order.index(event.severity) < order.index(minimum):
        return "severity_below_minimum"
    if not channels:
        return "no_channels"
    if key in last_sent and now - last_sent[key] < COOLDOWN:
        return "cooldown"
    return "notified"


class DispatcherMachine(RuleBasedStateMachine):
    """The dispatcher on the memory store, in lanes of keys."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
        self.store = MemoryStore(clock=self.clock)
        self.preferences: dict[tuple[str, str], Preference] = {}
        self.last_sent: dict[tuple[str, str], datetime] = {}
        self.expected: dict[str, str] = {}
        self.undrained: list[Event] = []
        self.counter = 0

    @rule(
        user=st.sampled_from(USERS),
        kind=st.sampled_from((*KINDS, GLOBAL_KIND)),
        channels=st.lists(st.sampled_from((*KNOWN, "pager")), max_size=3),
        minimum=st.sampled_from(Severity),
    )
    def set_preference(self, user: str, kind: str, channels: list[str], minimum: Severity) -> None:
        preference = Preference(tuple(channels), minimum)
        stored = asyncio.run(self.store.set_preference(user, kind, preference))
        self.preferences[(user, kind)] = stored

    @rule(
        user=st.sampled_from(USERS),
        kind=st.sampled_from(KINDS),
        severity=st.sampled_from(Severity),
    )
    def emit(self, user: str, kind: str, severity: Severity) -> None:
        self.counter += 1
        event = Event(
            event_id=f"e{self.counter}",
            user_id=user,
            kind=kind,
            severity=severity,
            title="t",
            body="b",
        )
        assert asyncio.run(self.store.enqueue([event])) == 1
        # The model decides at drain time: preferences may still change before then.
        self.undrained.append(event)

    @rule(seconds=st.sampled_from((1, 86399, 86400, 90000)))
    def advance_clock(self, seconds: int) -> None:
        self.clock.advance(timedelta(seconds=seconds))

    @rule(workers=st.integers(min_value=1, max_value=4))
    def drain(self, workers: int) -> None:
        for event in self.undrained:
            outcome = model_outcome(self.preferences, self.last_sent, event, self.clock())
            self.expected[event.event_id] = outcome
            if outcome == "notified":
                self.last_sent[(event.user_id, event.kind)] = self.clock()
        self.undrained = []

        async def run() -> None:
            dispatcher = Dispatcher(
                self.store,
                default_senders(),
                worker_id="w",
                options=DispatchOptions(workers=workers, poll_interval=0.001, batch_size=3),
                clock=self.clock,
            )
            await dispatcher.run(until_idle=True)

        asyncio.run(run())
        backlog = asyncio.run(self.store.backlog())
        assert backlog.empty, backlog

    @invariant()
    def drained_events_match_the_model(self) -> None:
        for event_id, expected in self.expected.items():
            record = asyncio.run(self.store.event_record(event_id))
            assert record is not None
            if expected == "notified":
                assert record.status is EventStatus.NOTIFIED, (event_id, record)
            else:
                assert record.status is EventStatus.SKIPPED, (event_id, record)
                assert isinstance(record.outcome, Skip)
                assert record.outcome.reason.value == expected, (event_id, record)

    @invariant()
    def each_notified_event_has_exactly_one_notification(self) -> None:
        notified = [
            notification.event_id
            for user in USERS
            for notification in asyncio.run(self.store.inbox(user, limit=10_000))
        ]
        assert sorted(notified) == sorted(
            event_id for event_id, expected in self.expected.items() if expected == "notified"
        )

    @invariant()
    def no_two_notifications_inside_a_cooldown(self) -> None:
        times: dict[tuple[str, str], list[datetime]] = defaultdict(list)
        for user in USERS:
            for notification in asyncio.run(self.store.inbox(user, limit=10_000)):
                times[(user, notification.kind)].append(notification.created_at)
        for moments in times.values():
            moments.sort()
            for earlier, later in itertools.pairwise(moments):
                assert later - earlier >= COOLDOWN


TestDispatcher = DispatcherMachine.TestCase
TestDispatcher.settings = settings(max_examples=200, stateful_step_count=30, deadline=None)

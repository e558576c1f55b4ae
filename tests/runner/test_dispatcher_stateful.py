"""The dispatcher against a simple model, driven by hypothesis.

The model (tests/runner/rules_model.py) is the rules of README.md written the plain
way: dictionaries of preferences, quiet hours and last notifications, and a list of
held events per pending digest. Each test case draws a policy (escalation past the
cooldown, quiet hours holding critical events, digests after the cooldown, and a
cooldown of a day or of three hours) and a start a few hours before a change of UTC
offset in its home zone; hypothesis then interleaves preference changes (the per-kind
digest switch included), quiet-hours changes, bursts of events, clock jumps (to the
cooldown's end, to the next held delivery or digest falling due) and drains with one
to four lanes, on the in-memory store and on SQLite, which claim and decide in one
step. After every drain the store and the model must agree on each event's outcome,
each notification (a digest's by the event ids it holds), each digest, and each
delivery's first attempt (a held one waits, pending, until its quiet hours end); and
no (user, kind) may hold two notifications inside a cooldown unless the later one rose
above the earlier.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import shutil
import sqlite3
import tempfile
from collections import defaultdict
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import attrs
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from tests.runner.rules_model import Digest, RulesModel, clock_time, digest_ident
from tidings.adapters.memory import MemoryStore
from tidings.adapters.sqlite import SqliteStore
from tidings.adapters.zones import zone_named
from tidings.core import GLOBAL_KIND, Event, Plan, Policy, Preference, Severity, Skip
from tidings.core.digest import DIGEST_PREFIX
from tidings.core.ports import ChannelSender, Store
from tidings.core.quiet_hours import QuietHours
from tidings.core.records import (
    ChannelOutcome,
    Delivered,
    DeliveryJob,
    DeliveryStatus,
    EventStatus,
    Notification,
)
from tidings.core.values import Channel
from tidings.runner.dispatch import Dispatcher, DispatchOptions
from tidings.testing import FakeClock

USERS = ("u1", "u2")
KINDS = ("overload", "digest")
KEYS = tuple(itertools.product(USERS, KINDS))
KNOWN = ("in_app", "email", "webhook")
HOME = "home"
"""A window's zone that stands for the test case's home zone."""
ZONES = ("UTC", "Asia/Kathmandu", HOME, HOME)
STARTS = (
    (datetime(2026, 3, 28, 20, tzinfo=UTC), "Europe/Berlin"),  # +1 to +2 at 01:00 UTC
    (datetime(2026, 10, 24, 20, tzinfo=UTC), "Europe/Berlin"),  # +2 to +1 at 01:00 UTC
    (datetime(2026, 3, 8, 2, tzinfo=UTC), "America/New_York"),  # -5 to -4 at 07:00 UTC
    (datetime(2026, 11, 1, 1, 30, tzinfo=UTC), "America/New_York"),  # -4 to -5 at 06:00 UTC
    (datetime(2026, 4, 4, 10, 7, 13, tzinfo=UTC), "Australia/Lord_Howe"),  # +11 to +10:30
    (datetime(2026, 10, 3, 10, 30, tzinfo=UTC), "Australia/Lord_Howe"),  # +10:30 to +11
)
NIGHT = (0, 60, 90, 120, 130, 150, 180, 210, 240, 1320)
"""Wall-clock minutes around the changes of offset, drawn often for quiet hours."""
COOLDOWNS = (timedelta(hours=24), timedelta(hours=3))
JUMPS = ("1s", "59s", "30min", "1h", "5h", "25h", "cooldown-1s", "cooldown", "cooldown+1h", "due")
"""Clock jumps: fixed, the policy's cooldown give or take, or to the next thing due."""

Window = tuple[time, time, str]
"""Quiet hours as drawn: start, end, and a zone name (or ``HOME``)."""
DigestSeen = tuple[str, str, tuple[str, ...], str, datetime]
"""A digest as the test compares it: user, kind, held event ids, status, due time."""


def ident_of(notification: Notification) -> str:
    """An event's notification by its event id; a digest's by the event ids it holds."""
    if notification.event_id.startswith(DIGEST_PREFIX):
        return digest_ident(json.loads(notification.payload_json or "{}")["event_ids"])
    return notification.event_id


@attrs.frozen
class RecordingSender:
    """Delivers at once and remembers each attempt: what, on which channel, when."""

    clock: FakeClock
    attempts: list[tuple[str, str, datetime]]

    async def send(self, job: DeliveryJob) -> ChannelOutcome:
        self.attempts.append((ident_of(job.notification), job.channel.value, self.clock()))
        return Delivered()


def _preferences() -> st.SearchStrategy[Preference]:
    """Rows as stored, unknown names and repeats included, silent ones now and then; the
    digest switch drawn for the global row too, where it means nothing."""
    names = st.lists(st.sampled_from((*KNOWN, "pager")), min_size=1, max_size=3)
    return st.builds(
        Preference,
        st.one_of(names, st.just([])).map(tuple),
        st.sampled_from(Severity),
        digest=st.sampled_from((None, True, False)),
    )


def _windows() -> st.SearchStrategy[Window]:
    minutes = st.one_of(st.integers(0, 1439), st.sampled_from(NIGHT)).map(clock_time)
    drawn = st.tuples(minutes, minutes, st.sampled_from(ZONES))
    return drawn.filter(lambda window: window[0] != window[1])


class DispatcherMachine(RuleBasedStateMachine):
    """The dispatcher on one store, in lanes of keys; subclasses open the store."""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.Runner()
        self.clock = FakeClock(STARTS[0][0])
        self.home = STARTS[0][1]
        self.store = self.open_store()
        self.model = RulesModel(Policy())
        self.attempts: list[tuple[str, str, datetime]] = []
        sender = RecordingSender(self.clock, self.attempts)
        self.senders: dict[Channel, ChannelSender] = dict.fromkeys(Channel, sender)
        self.undrained: list[Event] = []
        self.unchecked: list[str] = []
        """Events decided since the last check (a terminal record never changes)."""
        self.counter = 0
        self.drained = False

    def open_store(self) -> Store:
        raise NotImplementedError

    def stored_digests(self) -> list[DigestSeen]:
        raise NotImplementedError

    def teardown(self) -> None:
        self.loop.run(self.store.close())
        self.loop.close()

    @initialize(
        start=st.sampled_from(STARTS),
        cooldown=st.sampled_from(COOLDOWNS),
        escalate=st.booleans(),
        hold_critical=st.booleans(),
        digests=st.booleans(),
        windows=st.lists(_windows() | st.none(), min_size=len(USERS), max_size=len(USERS)),
        rows=st.lists(
            st.one_of(_preferences(), _preferences(), st.none()),
            min_size=len(KEYS),
            max_size=len(KEYS),
        ),
    )
    def choose_policy_and_people(
        self,
        start: tuple[datetime, str],
        cooldown: timedelta,
        escalate: bool,
        hold_critical: bool,
        digests: bool,
        windows: list[Window | None],
        rows: list[Preference | None],
    ) -> None:
        """A policy and a start per test case, and people who start with quiet hours and
        preference rows."""
        self.clock.set(start[0])
        self.home = start[1]
        self.model = RulesModel(
            Policy(
                cooldown=cooldown,
                escalate_past_cooldown=escalate,
                quiet_hours_hold_critical=hold_critical,
                digest_after_cooldown=digests,
            )
        )
        for user, window in zip(USERS, windows, strict=True):
            if window is not None:
                self.set_quiet_hours(user, window)
        for (user, kind), row in zip(KEYS, rows, strict=True):
            if row is not None:
                self.set_preference(user, kind, row)

    @rule(
        user=st.sampled_from(USERS),
        kind=st.sampled_from((*KINDS, GLOBAL_KIND)),
        preference=_preferences(),
    )
    def set_preference(self, user: str, kind: str, preference: Preference) -> None:
        self.loop.run(self.store.set_preference(user, kind, preference))
        self.model.preferences[(user, kind)] = preference

    @rule(user=st.sampled_from(USERS), window=_windows() | st.none())
    def set_quiet_hours(self, user: str, window: Window | None) -> None:
        if window is None:
            self.loop.run(self.store.set_quiet_hours(user, None))
            self.model.quiet_hours.pop(user, None)
            return
        starts, ends, name = window
        zone = zone_named(self.home if name == HOME else name)
        quiet = QuietHours(starts=starts, ends=ends, zone=zone)
        self.loop.run(self.store.set_quiet_hours(user, quiet))
        self.model.quiet_hours[user] = quiet

    @rule(
        emitted=st.lists(
            st.tuples(st.sampled_from((KEYS[0], *KEYS)), st.sampled_from(Severity)),
            min_size=1,
            max_size=6,
        ),
        then_drain=st.booleans(),
    )
    def emit(self, emitted: list[tuple[tuple[str, str], Severity]], then_drain: bool) -> None:
        events = []
        for (user, kind), severity in emitted:
            self.counter += 1
            events.append(
                Event(
                    event_id=f"e{self.counter}",
                    user_id=user,
                    kind=kind,
                    severity=severity,
                    title=f"t{self.counter}",
                    body="b",
                )
            )
        assert self.loop.run(self.store.enqueue(events)) == len(events)
        # The model decides at drain time: preferences may still change before then.
        self.undrained.extend(events)
        if then_drain:
            self.drain(workers=2)

    @rule(jump=st.sampled_from(JUMPS), then_drain=st.booleans())
    def advance(self, jump: str, then_drain: bool) -> None:
        """Move the clock (by a fixed step, by the cooldown give or take, or right to
        the next held delivery or digest falling due), and drain if told to."""
        cooldown = self.model.policy.cooldown
        steps = {
            "1s": timedelta(seconds=1),
            "59s": timedelta(seconds=59),
            "30min": timedelta(minutes=30),
            "1h": timedelta(hours=1),
            "5h": timedelta(hours=5),
            "25h": timedelta(hours=25),
            "cooldown-1s": cooldown - timedelta(seconds=1),
            "cooldown": cooldown,
            "cooldown+1h": cooldown + timedelta(hours=1),
        }
        if jump in steps:
            self.clock.advance(steps[jump])
        elif (due := self.model.next_due(self.clock())) is not None:
            self.clock.set(due)
        if then_drain:
            self.drain(workers=1)

    @rule(workers=st.integers(min_value=1, max_value=4))
    def drain(self, workers: int) -> None:
        self.model.drain(self.undrained, self.clock())
        self.unchecked += [event.event_id for event in self.undrained]
        self.undrained = []
        dispatcher = Dispatcher(
            self.store,
            self.senders,
            worker_id="w",
            policy=self.model.policy,
            options=DispatchOptions(workers=workers, poll_interval=0.001, batch_size=3),
            clock=self.clock,
        )
        self.loop.run(dispatcher.run(until_idle=True))
        backlog = self.loop.run(self.store.backlog())
        assert backlog.empty, backlog
        self.drained = True

    @invariant()
    def the_store_agrees_with_the_model(self) -> None:
        """Checked after each drain: nothing else changes what the store recorded."""
        if not self.drained:
            return
        self.drained = False
        notifications = {
            ident_of(notification): notification
            for user in USERS
            for notification in self.loop.run(self.store.inbox(user, limit=10_000))
        }
        self.events_match(notifications)
        self.notifications_match(notifications)
        self.deliveries_match(notifications)
        assert sorted(self.stored_digests()) == sorted(map(_seen, self.model.digests))
        no_two_notifications_inside_a_cooldown(list(notifications.values()), self.model.policy)

    def events_match(self, notifications: dict[str, Notification]) -> None:
        for event_id in self.unchecked:
            expected = self.model.outcomes[event_id]
            record = self.loop.run(self.store.event_record(event_id))
            assert record is not None
            verdict = expected.verdict
            if verdict.reason is None:
                assert record.status is EventStatus.NOTIFIED, (event_id, record)
                assert isinstance(record.outcome, Plan)
                assert record.outcome.escalated_over is verdict.escalated_over, record
                until = None if record.outcome.hold is None else record.outcome.hold.until
                assert until == verdict.held_until, (event_id, record, verdict)
                assert record.notification_id == notifications[event_id].id
            else:
                assert record.status is EventStatus.SKIPPED, (event_id, record)
                assert isinstance(record.outcome, Skip)
                assert record.outcome.reason.value == verdict.reason, (event_id, record)
                assert record.outcome.held_for_digest is expected.held_for_digest, record
                assert record.outcome.cooldown_ends_at == verdict.cooldown_ends_at, record
                assert record.outcome.last_severity is verdict.last_severity, record
        self.unchecked = []

    def notifications_match(self, notifications: dict[str, Notification]) -> None:
        assert sorted(notifications) == sorted(self.model.sent)
        for ident, expected in self.model.sent.items():
            found = notifications[ident]
            seen = (found.user_id, found.kind, found.severity, found.title, found.created_at)
            assert seen == (
                expected.user_id,
                expected.kind,
                expected.severity,
                expected.title,
                expected.created_at,
            ), (ident, found)
            attempted = {
                channel
                for channel in expected.channels
                if self.model.deliveries[(ident, channel)].first_attempt is not None
            }
            assert {channel.value for channel in found.dispatched_via} == attempted, found

    def deliveries_match(self, notifications: dict[str, Notification]) -> None:
        ident_by_id = {notification.id: ident for ident, notification in notifications.items()}
        stored = {
            (ident_by_id[row.notification_id], row.channel.value): row
            for row in self.loop.run(self.store.deliveries(None, 100_000))
        }
        assert sorted(stored) == sorted(self.model.deliveries)
        for key, expected in self.model.deliveries.items():
            row = stored[key]
            if expected.first_attempt is None:
                waiting = (row.status, row.attempts, row.next_attempt_at, row.delivered_at)
                assert waiting == (DeliveryStatus.PENDING, 0, expected.due, None), (key, row)
            else:
                sent = (row.status, row.attempts, row.delivered_at)
                assert sent == (DeliveryStatus.DELIVERED, 1, expected.first_attempt), (key, row)
        attempted = sorted((ident, channel) for ident, channel, _ in self.attempts)
        assert attempted == sorted(set(attempted)), "a delivery was sent twice"
        for ident, channel, at in self.attempts:
            assert self.model.deliveries[(ident, channel)].first_attempt == at, (ident, channel)


def _seen(digest: Digest) -> DigestSeen:
    held = tuple(item.event_id for item in digest.held)
    return (digest.user_id, digest.kind, held, digest.status, digest.due_at)


def no_two_notifications_inside_a_cooldown(
    notifications: list[Notification], policy: Policy
) -> None:
    """Read from the store alone: a key's notifications are a cooldown apart, unless
    escalation let a more severe one through."""
    by_key: dict[tuple[str, str], list[Notification]] = defaultdict(list)
    for notification in notifications:
        by_key[(notification.user_id, notification.kind)].append(notification)
    for found in by_key.values():
        # Two in one batch share their time; the later one rose above the earlier.
        found.sort(key=lambda notification: (notification.created_at, notification.severity))
        for earlier, later in itertools.pairwise(found):
            rose = policy.escalate_past_cooldown and later.severity > earlier.severity
            assert rose or later.created_at - earlier.created_at >= policy.cooldown


class MemoryMachine(DispatcherMachine):
    """On the in-memory store. No port reads digests back, so each machine reads its
    store's own rows."""

    def open_store(self) -> Store:
        return MemoryStore(clock=self.clock)

    def stored_digests(self) -> list[DigestSeen]:
        assert isinstance(self.store, MemoryStore)
        return [
            (row.user_id, row.kind, row.held, row.status.value, row.due_at)
            for row in self.store._digests.values()
        ]


class SqliteMachine(DispatcherMachine):
    """On a SQLite file of its own, migrated; its digests read with plain SQL."""

    def open_store(self) -> Store:
        self.directory = Path(tempfile.mkdtemp(prefix="tidings-stateful-"))
        self.path = self.directory / "tidings.db"
        store = SqliteStore(str(self.path), clock=self.clock)
        self.loop.run(store.migrate())
        return store

    def teardown(self) -> None:
        try:
            super().teardown()
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)

    def stored_digests(self) -> list[DigestSeen]:
        with contextlib.closing(sqlite3.connect(self.path)) as connection:
            held: dict[str, list[str]] = defaultdict(list)
            for digest_id, event_id in connection.execute(
                "SELECT digest_id, event_id FROM events WHERE digest_id IS NOT NULL ORDER BY seq"
            ):
                held[digest_id].append(event_id)
            return [
                (user_id, kind, tuple(held[digest_id]), status, datetime.fromisoformat(due_at))
                for digest_id, user_id, kind, status, due_at in connection.execute(
                    "SELECT id, user_id, kind, status, due_at FROM digests"
                )
            ]


TestDispatcherInMemory = MemoryMachine.TestCase
TestDispatcherInMemory.settings = settings(max_examples=300, stateful_step_count=30, deadline=None)
TestDispatcherOnSqlite = SqliteMachine.TestCase
TestDispatcherOnSqlite.settings = settings(max_examples=80, stateful_step_count=30, deadline=None)

# Two runs the random ones reach only now and then, replayed through the same machine
# (its invariant checks after every drain) on each store.

MACHINES = pytest.mark.parametrize(
    "machine", [MemoryMachine, SqliteMachine], ids=["memory", "sqlite"]
)


@MACHINES
def test_a_due_digest_waits_for_the_cooldown_an_escalation_started(
    machine: type[DispatcherMachine],
) -> None:
    state = machine()
    try:
        state.choose_policy_and_people(
            start=STARTS[0], cooldown=timedelta(hours=3), escalate=True, hold_critical=False,
            digests=True, windows=[None, None], rows=[None] * len(KEYS),
        )  # fmt: skip
        # UTC: notified at 20:00, held at 21:00 (due 23:00), a rise notified at 22:00.
        for severity in (Severity.INFO, Severity.INFO, Severity.WATCH):
            state.emit([(KEYS[0], severity)], then_drain=True)
            state.the_store_agrees_with_the_model()
            state.advance("1h", then_drain=False)
        state.drain(workers=1)  # 23:00: the digest meets the rise's cooldown
        state.the_store_agrees_with_the_model()
        [digest] = state.model.digests
        assert (digest.status, digest.due_at) == ("pending", STARTS[0][0] + timedelta(hours=5))
        state.advance("due", then_drain=True)
        state.the_store_agrees_with_the_model()
        assert digest.status == "notified"
    finally:
        state.teardown()


@MACHINES
def test_a_digest_held_by_quiet_hours_whose_end_the_clocks_skip(
    machine: type[DispatcherMachine],
) -> None:
    state = machine()
    try:
        # Berlin, 21:00 on the night clocks jump from 02:00 to 03:00; quiet until 02:30.
        state.choose_policy_and_people(
            start=STARTS[0], cooldown=timedelta(hours=3), escalate=False, hold_critical=False,
            digests=True, windows=[(clock_time(22 * 60), clock_time(150), HOME), None],
            rows=[Preference(("in_app", "email"), Severity.INFO), None, None, None],
        )  # fmt: skip
        state.emit([(KEYS[0], Severity.INFO)], then_drain=True)  # 21:00, sent at once
        state.advance("1h", then_drain=False)
        state.emit([(KEYS[0], Severity.WATCH)], then_drain=True)  # 22:00, held for the digest
        state.advance("due", then_drain=True)  # 00:00: the digest, its email held
        state.the_store_agrees_with_the_model()
        [digest] = state.model.digests
        email = state.model.deliveries[(digest.ident, "email")]
        assert (email.due, email.first_attempt) == (STARTS[0][0] + timedelta(hours=5), None)
        state.advance("due", then_drain=True)  # 03:00 summer time, 01:00 UTC
        state.the_store_agrees_with_the_model()
        assert email.first_attempt == email.due
    finally:
        state.teardown()


@MACHINES
def test_the_last_of_two_notifications_in_one_batch_is_the_keys_last(
    machine: type[DispatcherMachine],
) -> None:
    state = machine()
    try:
        state.choose_policy_and_people(
            start=STARTS[0], cooldown=timedelta(hours=24), escalate=True, hold_critical=False,
            digests=False, windows=[None, None], rows=[None] * len(KEYS),
        )  # fmt: skip
        # One batch notifies info and, rising above it at the same instant, critical.
        state.emit([(KEYS[0], Severity.INFO), (KEYS[0], Severity.CRITICAL)], then_drain=True)
        state.the_store_agrees_with_the_model()
        state.advance("1h", then_drain=False)
        state.emit([(KEYS[0], Severity.WATCH)], then_drain=True)  # below critical: skipped
        state.the_store_agrees_with_the_model()
    finally:
        state.teardown()

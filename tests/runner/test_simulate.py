"""What-if replays against history a real dispatcher made: unchanged inputs reproduce
the real counts exactly, a longer cooldown never sends more, and the CLI refuses bad
input with exit status 2 and the name of what is wrong."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AsyncExitStack
from datetime import UTC, datetime, time, timedelta
from functools import partial
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.adapters.conftest import STORE_FACTORIES, StoreSettings
from tidings.adapters.memory import MemoryStore
from tidings.adapters.sqlite import SqliteStore
from tidings.core import (
    GLOBAL_KIND,
    Channel,
    Event,
    Policy,
    Preference,
    Severity,
    decide_with,
)
from tidings.core.digest import HeldEvent
from tidings.core.ports import History, Store
from tidings.core.quiet_hours import QuietHours
from tidings.core.records import DecidedEvent
from tidings.runner.cli import main
from tidings.runner.dispatch import Dispatcher, DispatchOptions
from tidings.runner.dispatch.senders import default_senders
from tidings.runner.replay import Counts, Replay, Replayer, progress_line, replay
from tidings.testing import FakeClock

# Relative to the real clock, so the CLI's default --since 30d covers the history.
START = datetime.now(UTC).replace(microsecond=0) - timedelta(days=10)

PREFERENCES = {
    ("ana", "overload"): Preference(("in_app", "email"), Severity.WATCH),
    ("ana", "chatter"): Preference((), Severity.INFO),  # silent
    ("bo", GLOBAL_KIND): Preference(("email", "webhook"), Severity.CRITICAL),
    ("cy", "security"): Preference(("in_app",), Severity.CRITICAL),
}
"""dee has no rows: the policy defaults apply. bo's global row keeps the policy's
minimum severity (info), not its own."""

# (hours after START, user, kind, severity): cooldowns hit within 24 h and lapse after.
HISTORY = [
    (0, "ana", "overload", "watch"),
    (0, "ana", "overload", "info"),  # below ana's minimum
    (0, "ana", "chatter", "critical"),  # silent kind
    (0, "bo", "digest", "info"),
    (0, "cy", "security", "watch"),  # below cy's minimum
    (0, "cy", "security", "critical"),
    (0, "dee", "overload", "watch"),
    (0, "dee", "overload", "watch"),  # same moment: cooldown
    (2, "ana", "overload", "critical"),
    (2, "bo", "digest", "info"),
    (2, "dee", "overload", "info"),
    (23, "bo", "digest", "watch"),
    (25, "ana", "overload", "watch"),
    (25, "bo", "digest", "info"),
    (25, "dee", "overload", "watch"),
    (26, "dee", "overload", "critical"),
    (50, "cy", "security", "critical"),
    (50, "ana", "chatter", "info"),
]


def make_event(number: int, user: str, kind: str, severity: str) -> Event:
    return Event(
        event_id=f"e{number}",
        user_id=user,
        kind=kind,
        severity=Severity(severity),
        title=f"{kind} for {user}",
        body="b",
    )


def by_hour(history: Sequence[tuple[int, str, str, str]]) -> dict[int, list[Event]]:
    batches: dict[int, list[Event]] = {}
    for number, (hour, user, kind, severity) in enumerate(history):
        batches.setdefault(hour, []).append(make_event(number, user, kind, severity))
    return dict(sorted(batches.items()))


def dispatch_history(path: Path) -> None:
    """Run the real dispatcher over HISTORY, one run per hour that has events."""
    clock = FakeClock(START)
    store = SqliteStore(str(path), clock=clock)

    async def scenario() -> None:
        await store.migrate()
        for (user, kind), preference in PREFERENCES.items():
            await store.set_preference(user, kind, preference)
        for hour, events in by_hour(HISTORY).items():
            clock.set(START + timedelta(hours=hour))
            await store.enqueue(events)
            dispatcher = Dispatcher(
                store,
                default_senders(),
                worker_id="w",
                options=DispatchOptions(workers=2, poll_interval=0.01),
                clock=clock,
            )
            await dispatcher.run(until_idle=True)
        await store.close()

    asyncio.run(scenario())


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("simulate") / "tidings.db"
    dispatch_history(path)
    return path


END = START + timedelta(hours=60)
"""Where replays of HISTORY end: ten hours after its last events."""


def replay_sqlite(
    path: Path,
    since: datetime,
    policy: Policy = Policy(),  # noqa: B008 - frozen value
    progress: Callable[[int], None] | None = None,
) -> Replay:
    """Replay with the stored preferences until END, four events a page."""
    store = SqliteStore(str(path), clock=FakeClock(START))

    async def scenario() -> Replay:
        try:
            preferences = await store.all_preferences()
            return await replay(
                store,
                preferences=preferences,
                policy=policy,
                since=since,
                until=END,
                progress=progress,
                page_size=4,
            )
        finally:
            await store.close()

    return asyncio.run(scenario())


def assert_reproduces(found: Replay) -> None:
    for counts in [found.totals, *found.per_kind.values(), *found.per_user.values()]:
        assert counts.would_send == counts.sent
        assert counts.delta == 0


@pytest.mark.parametrize("hours_in", [0, 1, 24])
def test_unchanged_inputs_reproduce_the_real_counts(database: Path, hours_in: int) -> None:
    """From any starting point: notifications before it seed the replay's cooldowns."""
    found = replay_sqlite(database, START + timedelta(hours=hours_in))

    assert_reproduces(found)
    assert found.totals.events == sum(1 for hour, *_ in HISTORY if hour >= hours_in)
    if hours_in == 0:
        assert found.totals.sent == 8
        assert set(found.per_kind) == {"overload", "chatter", "digest", "security"}
        assert found.would_skip_by_reason == {
            "cooldown": 6,
            "no_channels": 2,
            "severity_below_minimum": 2,
        }


def test_a_one_hour_cooldown_sends_what_the_day_long_one_held_back(database: Path) -> None:
    found = replay_sqlite(database, START, policy=Policy(cooldown=timedelta(hours=1)))

    # overload: ana's 2 h-later critical; dee's 2 h-later info and 1 h-later critical.
    assert (found.per_kind["overload"].sent, found.per_kind["overload"].would_send) == (4, 7)
    # digest: bo at 0, 2, 23 and 25 h, all more than an hour apart.
    assert (found.per_kind["digest"].sent, found.per_kind["digest"].would_send) == (2, 4)
    # Same moment is still within any cooldown; the other skips do not depend on it.
    assert found.would_skip_by_reason == {
        "cooldown": 1,
        "no_channels": 2,
        "severity_below_minimum": 2,
    }


def test_progress_hears_the_running_count_per_page(database: Path) -> None:
    heard: list[int] = []
    replay_sqlite(database, START, progress=heard.append)
    assert heard == [4, 8, 12, 16, 18]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_progress_line_is_drawn_on_a_terminal_only() -> None:
    assert progress_line(io.StringIO()) is None
    terminal = Terminal()
    show = progress_line(terminal)
    assert show is not None
    show(120000)
    assert terminal.getvalue() == "\rreplayed 120,000 events"


# -- the property: against many small histories ------------------------------------------

USERS = ("u1", "u2")
KINDS = ("k1", "k2")

preference_rows = st.dictionaries(
    st.tuples(st.sampled_from(USERS), st.sampled_from((*KINDS, GLOBAL_KIND))),
    st.builds(
        Preference,
        st.lists(st.sampled_from(("in_app", "email", "pager")), max_size=2).map(tuple),
        st.sampled_from(Severity),
    ),
    max_size=3,
)
histories = st.lists(
    st.tuples(
        st.integers(0, 120),
        st.sampled_from(USERS),
        st.sampled_from(KINDS),
        st.sampled_from([severity.value for severity in Severity]),
    ),
    min_size=1,
    max_size=25,
)


def record_history(
    preferences: dict[tuple[str, str], Preference], history: Sequence[tuple[int, str, str, str]]
) -> MemoryStore:
    """Decide and record HISTORY-like events hour by hour, as the dispatcher does."""
    clock = FakeClock(START)
    store = MemoryStore(clock=clock)
    decide = partial(decide_with, policy=Policy())

    async def scenario() -> None:
        for (user, kind), preference in preferences.items():
            await store.set_preference(user, kind, preference)
        for hour, events in by_hour(history).items():
            clock.set(START + timedelta(hours=hour))
            await store.enqueue(events)
            await store.decide_claimable("w", len(events), decide)

    asyncio.run(scenario())
    return store


def replay_memory(store: History, policy: Policy, since: datetime) -> Replay:
    async def scenario() -> Replay:
        preferences = await store.all_preferences()
        return await replay(
            store, preferences=preferences, policy=policy, since=since, until=END, page_size=3
        )

    return asyncio.run(scenario())


def rows(found: Replay) -> list[tuple[str, int, int]]:
    everything = [("total", found.totals)]
    everything += [(f"kind {kind}", counts) for kind, counts in found.per_kind.items()]
    everything += [(f"user {user}", counts) for user, counts in found.per_user.items()]
    return [(name, counts.sent, counts.would_send) for name, counts in everything]


@settings(max_examples=20, deadline=None)
@given(
    preferences=preference_rows,
    history=histories,
    since_hours=st.integers(0, 60),
    longer=st.integers(0, 72 * 60),
    shorter=st.integers(1, 24 * 60 - 1),
)
def test_a_longer_cooldown_never_sends_more_and_a_shorter_never_less(
    preferences: dict[tuple[str, str], Preference],
    history: list[tuple[int, str, str, str]],
    since_hours: int,
    longer: int,
    shorter: int,
) -> None:
    store = record_history(preferences, history)
    since = START + timedelta(hours=since_hours)
    day = Policy().cooldown

    def replayed(cooldown: timedelta) -> list[tuple[str, int, int]]:
        return rows(replay_memory(store, Policy(cooldown=cooldown), since))

    assert all(sent == would for _, sent, would in replayed(day))
    assert all(would <= sent for _, sent, would in replayed(day + timedelta(minutes=longer)))
    assert all(would >= sent for _, sent, would in replayed(timedelta(minutes=shorter)))


# -- the three rules: escalation past the cooldown, digests, quiet hours --------------------

RULES = Policy(escalate_past_cooldown=True, digest_after_cooldown=True)

RULES_PREFERENCES = {
    ("eve", "deploy"): Preference(("in_app", "email"), Severity.INFO),
    ("eve", "noise"): Preference(("in_app",), Severity.INFO, digest=False),
    ("fay", GLOBAL_KIND): Preference(("in_app", "webhook"), Severity.INFO),
    ("gus", "deploy"): Preference(("in_app",), Severity.WATCH),
}
"""hal has no rows: in-app, digests as the policy says. eve's noise never digests."""

RULES_HISTORY = [
    # eve deploy: two escalations, a digest of what they held back at 29 h (their
    # cooldown's end), escalations over that digest (critical over its watch) and over
    # the digest of 54 h (watch over its info), then one held past the end: pending.
    (0, "eve", "deploy", "info"),
    (2, "eve", "deploy", "watch"),
    (3, "eve", "deploy", "watch"),
    (4, "eve", "deploy", "info"),
    (5, "eve", "deploy", "critical"),
    (6, "eve", "deploy", "info"),
    (30, "eve", "deploy", "critical"),
    (40, "eve", "deploy", "info"),
    (60, "eve", "deploy", "watch"),
    (61, "eve", "deploy", "info"),
    # eve noise: cooldown skips, never held.
    (0, "eve", "noise", "info"),
    (1, "eve", "noise", "info"),
    (30, "eve", "noise", "info"),
    # gus deploy: the digest due at 24 h meets the escalation's cooldown and waits to 34 h.
    (0, "gus", "deploy", "watch"),
    (1, "gus", "deploy", "watch"),
    (2, "gus", "deploy", "info"),  # below gus's minimum: not held
    (10, "gus", "deploy", "critical"),
    # fay, quiet from START to six hours after, every day: webhooks held at 0, 25 (the
    # digest) and 27 h; not the critical one.
    (0, "fay", "alert", "watch"),
    (1, "fay", "alert", "critical"),
    (2, "fay", "alert", "info"),
    (8, "fay", "alert", "info"),
    (27, "fay", "alert", "watch"),
    # hal: a digest a day, the last one due at the very end.
    (0, "hal", "ping", "info"),
    (6, "hal", "ping", "info"),
    (12, "hal", "ping", "info"),
    (18, "hal", "ping", "info"),
    (30, "hal", "ping", "info"),
    (66, "hal", "ping", "info"),
]
RULES_HOURS = 72
"""The store decides every hour up to this one, so digests are decided when they are
due, as a running runner decides them (at its first sweep after)."""


def quiet_window(first_hour: int, last_hour: int) -> QuietHours:
    """Quiet hours in UTC holding the events at START + first_hour .. last_hour - 1."""

    def minute(hours: int) -> time:
        return (START + timedelta(hours=hours)).time().replace(second=0, microsecond=0)

    return QuietHours(starts=minute(first_hour), ends=minute(last_hour), zone=ZoneInfo("UTC"))


async def record_rules(
    store: Store,
    clock: FakeClock,
    policy: Policy,
    preferences: Mapping[tuple[str, str], Preference],
    quiet: Mapping[str, QuietHours],
    history: Sequence[tuple[int, str, str, str]],
    hours: int,
) -> None:
    """Decide ``history`` hour by hour as a runner does (claim-and-decide, then the due
    digests' sweep), every hour up to ``hours``; deliveries stay in the outbox."""
    decide = partial(decide_with, policy=policy)
    batches = by_hour(history)
    for (user, kind), preference in preferences.items():
        await store.set_preference(user, kind, preference)
    for user, window in quiet.items():
        await store.set_quiet_hours(user, window)
    for hour in range(hours + 1):
        clock.set(START + timedelta(hours=hour))
        if hour in batches:
            await store.enqueue(batches[hour])
            await store.decide_claimable("w", len(batches[hour]), decide)
        await store.decide_due_digests("w", 100, decide)


async def held_deliveries(store: Store, since: datetime) -> dict[str, int]:
    """Per user, the recorded deliveries that quiet hours held (due after their
    notification) of the notifications recorded at or after ``since``."""
    created = {}
    for delivery in await store.deliveries(limit=100_000):
        if delivery.user_id not in created:
            inbox = await store.inbox(delivery.user_id, limit=100_000)
            created[delivery.user_id] = {n.id: n.created_at for n in inbox}
    held: dict[str, int] = {}
    for delivery in await store.deliveries(limit=100_000):
        at = created[delivery.user_id][delivery.notification_id]
        due = delivery.next_attempt_at
        if at >= since and due is not None and due > at:
            held[delivery.user_id] = held.get(delivery.user_id, 0) + 1
    return held


def assert_reproduces_everything(found: Replay) -> None:
    for counts in [found.totals, *found.per_kind.values(), *found.per_user.values()]:
        assert counts.would_send == counts.sent
        assert counts.digests_would_send == counts.digests_sent
        assert counts.delta == 0


@pytest.fixture(params=list(STORE_FACTORIES))
def recorded_rules(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[Store, asyncio.Runner]]:
    """RULES_HISTORY recorded under RULES by each store, and the loop that owns it."""
    clock = FakeClock(START)
    postgres_url = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    settings = StoreSettings(
        clock=clock, lease=timedelta(seconds=30), directory=tmp_path, postgres_url=postgres_url
    )
    with asyncio.Runner() as loop:
        stack = AsyncExitStack()
        store = loop.run(stack.enter_async_context(STORE_FACTORIES[request.param](settings)))
        stack.push_async_callback(store.close)
        try:
            loop.run(store.migrate())
            quiet = {"fay": quiet_window(0, 6)}
            loop.run(
                record_rules(
                    store, clock, RULES, RULES_PREFERENCES, quiet, RULES_HISTORY, RULES_HOURS
                )
            )
            yield store, loop
        finally:
            loop.run(stack.aclose())


def test_a_replay_under_the_recording_rules_reproduces_them_on_every_store(
    recorded_rules: tuple[Store, asyncio.Runner],
) -> None:
    """Escalations, digests (one waiting for an escalation's cooldown, one due at the
    very end, one pending after it) and quiet hours' holds, replayed from several
    starting points: a digest pending at the start is carried in."""
    store, loop = recorded_rules
    for hours_in in (0, 1, 7, 26, 50):
        since = START + timedelta(hours=hours_in)

        async def replayed(since: datetime = since) -> tuple[Replay, dict[str, int]]:
            preferences = await store.all_preferences()
            found = await replay(
                store,
                preferences=preferences,
                policy=RULES,
                since=since,
                until=START + timedelta(hours=RULES_HOURS),
                page_size=5,
            )
            return found, await held_deliveries(store, since)

        found, held = loop.run(replayed())
        assert_reproduces_everything(found)
        assert {user: c.held for user, c in found.per_user.items() if c.held} == held, hours_in
        assert found.totals.events == sum(1 for hour, *_ in RULES_HISTORY if hour >= hours_in)
        if hours_in == 0:
            assert found.totals.sent == 13
            assert found.totals.digests_sent == 7
            assert found.totals.digests_pending == 1
            assert found.totals.held == 3
            assert found.per_user["eve"].digests_pending == 1
            assert {user: c.digests_sent for user, c in found.per_user.items()} == {
                "eve": 2,
                "fay": 1,
                "gus": 1,
                "hal": 3,
            }


def test_a_replay_with_the_rules_off_shows_what_they_added(
    recorded_rules: tuple[Store, asyncio.Runner],
) -> None:
    store, loop = recorded_rules

    async def replayed(policy: Policy) -> Replay:
        return await replay(
            store,
            preferences=await store.all_preferences(),
            policy=policy,
            since=START,
            until=START + timedelta(hours=RULES_HOURS),
        )

    found = loop.run(replayed(Policy()))
    # Without escalation eve's deploys at 2 and 5 h, fay's critical at 1 h and gus's at
    # 10 h are cooldown skips; without digests the cooldowns they started do not hold
    # back hal's 30 and 66 h. Without digests nothing is held back to send later.
    assert [(c.sent, c.would_send) for c in found.per_user.values()] == [
        (7, 5),
        (3, 2),
        (2, 1),
        (1, 3),
    ]
    assert (found.totals.digests_sent, found.totals.digests_would_send) == (7, 0)
    assert found.totals.digests_pending == 0
    # fay's watches at 0 and 27 h are still held (the quiet hours are hers, not a rule's).
    assert found.per_user["fay"].held == 2
    assert found.totals.delta == 11 - 20


def test_escalation_on_sends_more_where_severities_rise(database: Path) -> None:
    """HISTORY was recorded without escalation."""
    found = replay_sqlite(database, START, policy=Policy(escalate_past_cooldown=True))

    # dee's critical at 26 h rises above the watch at 25 h.
    assert (found.per_user["dee"].sent, found.per_user["dee"].would_send) == (2, 3)
    # ana's critical at 2 h rises above the watch at 0 h, and its cooldown then holds
    # back the watch at 25 h that went out; bo's watch at 23 h, likewise his info at 25 h.
    assert found.per_user["ana"].would_send == found.per_user["ana"].sent == 2
    assert found.per_user["bo"].would_send == found.per_user["bo"].sent == 2
    assert (found.totals.sent, found.totals.would_send, found.totals.delta) == (8, 9, 1)
    assert found.totals.digests_would_send == 0


def test_digests_on_add_a_digest_per_key_after_each_cooldown(database: Path) -> None:
    found = replay_sqlite(database, START, policy=Policy(digest_after_cooldown=True))

    # ana, bo and dee: a digest at 24 h of what the first cooldown held, which starts the
    # next cooldown (so the event at 25 h is held too), and a digest of that at 48 h.
    for user in ("ana", "bo", "dee"):
        counts = found.per_user[user]
        assert (counts.sent, counts.would_send, counts.digests_would_send) == (2, 1, 2), user
    assert found.per_user["cy"].digests_would_send == 0  # no cooldown skip
    assert found.totals.digests_sent == 0  # recorded without digests
    assert found.totals.delta == 5 + 6 - 8
    # Held for the digest, they still count as cooldown skips.
    assert found.would_skip_by_reason["cooldown"] == 9


def test_a_digest_due_after_the_end_is_pending(database: Path) -> None:
    store = SqliteStore(str(database), clock=FakeClock(START))

    async def replayed() -> Replay:
        try:
            return await replay(
                store,
                preferences=await store.all_preferences(),
                policy=Policy(digest_after_cooldown=True),
                since=START,
                until=START + timedelta(hours=30),
            )
        finally:
            await store.close()

    found = asyncio.run(replayed())
    # The digests of 48 h are not due by 30 h.
    assert found.totals.digests_would_send == 3
    assert found.totals.digests_pending == 3


def test_both_rules_on_make_a_digest_wait_for_an_escalations_cooldown(database: Path) -> None:
    found = replay_sqlite(database, START, policy=RULES)

    # dee: the digest of 48 h meets the cooldown of the critical escalated at 26 h and
    # goes out at 50 h instead; ana's critical at 2 h escalates, so only one digest.
    dee, ana = found.per_user["dee"], found.per_user["ana"]
    assert (dee.would_send, dee.digests_would_send) == (2, 2)
    assert (ana.would_send, ana.digests_would_send) == (2, 1)
    assert found.totals.digests_pending == 0


def test_a_replay_that_starts_with_a_digest_pending_carries_it_in() -> None:
    """Pure: what history left before ``since`` (the last notification and the held
    events) is the replay's start."""
    event = make_event(0, "u", "k", "watch")
    since = START + timedelta(hours=12)
    replayer = Replayer(
        {},
        RULES,
        since=since,
        last_sent={("u", "k"): (START, Severity.INFO)},
        held={
            ("u", "k"): [HeldEvent(event_id="e", severity=Severity.WATCH, title="t", held_at=START)]
        },
        digests_sent={("u", "k"): 1},
    )
    replayer.take(
        DecidedEvent(
            position=(START + timedelta(hours=30), 1),
            event=event,
            decided_at=START + timedelta(hours=30),
            notified=False,
        )
    )
    found = replayer.result(START + timedelta(hours=30))
    # The carried digest goes out at 24 h; the watch at 30 h meets its cooldown.
    assert found.totals == Counts(
        events=1, sent=0, would_send=0, digests_sent=1, digests_would_send=1, digests_pending=1
    )


def test_a_carried_digest_that_the_replays_preferences_refuse_is_a_digest_skip() -> None:
    held = HeldEvent(event_id="e", severity=Severity.WATCH, title="", held_at=START)
    replayer = Replayer(
        {("u", "k"): Preference((), Severity.INFO)},  # silenced in the what-if
        RULES,
        since=START + timedelta(hours=1),
        last_sent={("u", "k"): (START, Severity.INFO)},
        held={("u", "k"): [held]},
    )
    found = replayer.result(START + timedelta(days=2))
    assert found.digests_would_skip_by_reason == {"no_channels": 1}
    assert (found.totals.digests_would_send, found.totals.digests_pending) == (0, 0)


def test_quiet_hours_count_the_deliveries_they_would_hold(
    database: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Today's quiet hours over history: bo's email and webhook would wait."""
    copy = tmp_path / "tidings.db"
    copy.write_bytes(database.read_bytes())
    window = quiet_window(0, 1)
    status = main([
        "--database", f"sqlite:///{copy}", "prefs", "quiet-hours", "bo",
        "--from", window.starts.strftime("%H:%M"), "--to", window.ends.strftime("%H:%M"),
        "--timezone", "UTC",
    ])  # fmt: skip
    assert status == 0
    capsys.readouterr()
    status, out, _ = simulate(copy, capsys, "--json")

    assert status == 0
    document = json.loads(out)
    # bo's info at 0 h, both channels; his 25 h one is outside the window.
    assert document["per_user"]["bo"]["held"] == 2
    assert document["totals"]["held"] == 2
    assert document["per_kind"]["digest"]["held"] == 2


rule_policies = st.builds(
    Policy,
    default_channels=st.sampled_from(((Channel.IN_APP,), (Channel.IN_APP, Channel.EMAIL))),
    escalate_past_cooldown=st.booleans(),
    quiet_hours_hold_critical=st.booleans(),
    digest_after_cooldown=st.booleans(),
)
rule_preferences = st.dictionaries(
    st.tuples(st.sampled_from(USERS), st.sampled_from((*KINDS, GLOBAL_KIND))),
    st.builds(
        Preference,
        st.lists(st.sampled_from(("in_app", "email", "webhook")), max_size=2).map(tuple),
        st.sampled_from(Severity),
        st.sampled_from((None, True, False)),
    ),
    max_size=3,
).map(
    lambda rows: {
        key: Preference(row.channels, row.min_severity) if key[1] == GLOBAL_KIND else row
        for key, row in rows.items()
    }
)


@settings(max_examples=25, deadline=None)
@given(
    policy=rule_policies,
    preferences=rule_preferences,
    history=histories,
    quiet_from=st.integers(0, 23),
    since_hours=st.integers(0, 100),
)
def test_replaying_under_the_recording_rules_reproduces_any_history(
    policy: Policy,
    preferences: dict[tuple[str, str], Preference],
    history: list[tuple[int, str, str, str]],
    quiet_from: int,
    since_hours: int,
) -> None:
    """Escalation, digests and u1's quiet hours, each on or off, over any history:
    the replay's events, digests and held deliveries are the recorded ones."""
    clock = FakeClock(START)
    store = MemoryStore(clock=clock)
    quiet = {"u1": quiet_window(quiet_from, quiet_from + 10)}
    hours = 130
    since = START + timedelta(hours=since_hours)

    async def scenario() -> tuple[Replay, dict[str, int]]:
        await record_rules(store, clock, policy, preferences, quiet, history, hours)
        found = await replay(
            store,
            preferences=await store.all_preferences(),
            policy=policy,
            since=since,
            until=START + timedelta(hours=hours),
            page_size=4,
        )
        return found, await held_deliveries(store, since)

    found, held = asyncio.run(scenario())
    assert_reproduces_everything(found)
    assert {user: c.held for user, c in found.per_user.items() if c.held} == held


# -- the command line ---------------------------------------------------------------------


def simulate(
    database: Path, capsys: pytest.CaptureFixture[str], *argv: str
) -> tuple[int, str, str]:
    status = main(["--database", f"sqlite:///{database}", "simulate", *argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_json_output_holds_the_whole_replay(
    database: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = simulate(database, capsys, "--json")

    assert status == 0
    assert err == ""  # not a terminal: no progress line
    document = json.loads(out)
    assert set(document) == {
        "since",
        "until",
        "totals",
        "per_kind",
        "per_user",
        "would_skip_by_reason",
        "digests_would_skip_by_reason",
    }
    assert document["totals"] == {
        "events": 18,
        "sent": 8,
        "would_send": 8,
        "digests_sent": 0,
        "digests_would_send": 0,
        "digests_pending": 0,
        "held": 0,
        "delta": 0,
    }
    assert set(document["per_user"]) == {"ana", "bo", "cy", "dee"}
    assert document["per_kind"]["digest"]["events"] == 4
    assert document["per_kind"]["digest"]["sent"] == document["per_kind"]["digest"]["would_send"]
    assert document["digests_would_skip_by_reason"] == {}


def test_a_prefs_file_silences_a_kind_and_null_removes_a_row(
    database: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    prefs = tmp_path / "prefs.json"
    prefs.write_text(
        json.dumps(
            {
                "ana": {"overload": {"channels": []}, "chatter": None},
                "dee": {"overload": {"channels": ["in_app"], "min_severity": "critical"}},
            }
        )
    )
    since = START.isoformat()
    status, out, _ = simulate(database, capsys, "--json", "--since", since, "--prefs", str(prefs))

    assert status == 0
    per_kind = json.loads(out)["per_kind"]
    # ana's overload is silent; of dee's, only the one critical event is enough.
    assert per_kind["overload"]["would_send"] == 1
    # Without its silent row, ana's chatter gets the defaults: in-app, 50 h apart.
    assert (per_kind["chatter"]["sent"], per_kind["chatter"]["would_send"]) == (0, 2)
    assert per_kind["chatter"]["delta"] == 2


def test_silencing_every_row_of_a_kind_sends_nothing_for_it(
    database: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    prefs = tmp_path / "prefs.json"
    prefs.write_text(json.dumps({"bo": {"digest": {"channels": [], "min_severity": "info"}}}))
    status, out, _ = simulate(database, capsys, "--json", "--prefs", str(prefs))
    assert status == 0
    assert json.loads(out)["per_kind"]["digest"]["would_send"] == 0


def test_a_policy_file_changes_the_cooldown_and_the_table_shows_it(
    database: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text("cooldown_seconds = 3600\n")
    status, out, _ = simulate(database, capsys, "--policy", str(policy), "--top", "1")

    assert status == 0
    lines = out.splitlines()
    assert lines[0].split() == [
        "kind", "events", "sent", "would", "send", "digests", "would", "digest", "held", "change",
    ]  # fmt: skip
    assert ["overload", "9", "4", "7", "0", "0", "0", "+3"] in [line.split() for line in lines]
    assert "total: 18 events, 8 sent, 13 would send; digests: 0 sent, 0 would send (+5)" in lines
    assert "digests pending at the end: 0" in lines
    assert "held by quiet hours: 0 email and webhook deliveries would wait" in lines
    assert "would skip: cooldown 1, no_channels 2, severity_below_minimum 2" in lines
    # bo and dee gain two each, ana one: the tie goes by name.
    assert "1 of 3 changed user(s), largest change first:" in lines
    assert lines[-1].split() == ["bo", "4", "2", "4", "0", "0", "0", "+2"]


def test_a_policy_file_turns_the_rules_on_and_the_table_shows_digests(
    database: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text("escalate_past_cooldown = true\ndigest_after_cooldown = true\n")
    status, out, _ = simulate(database, capsys, "--policy", str(policy))

    assert status == 0
    lines = out.splitlines()
    # overload: ana's and dee's escalations make up for what the digests' cooldowns hold
    # back; ana's one digest at 26 h, dee's two at 24 and 50 h.
    assert ["overload", "9", "4", "4", "0", "3", "0", "+3"] in [line.split() for line in lines]
    assert "total: 18 events, 8 sent, 8 would send; digests: 0 sent, 4 would send (+4)" in lines


def test_a_prefs_file_turns_digests_on_for_one_kind(
    database: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    prefs = tmp_path / "prefs.json"
    row = {"channels": ["in_app", "email"], "min_severity": "watch", "digest": True}
    prefs.write_text(json.dumps({"ana": {"overload": row}}))
    status, out, _ = simulate(database, capsys, "--json", "--prefs", str(prefs))

    assert status == 0
    document = json.loads(out)
    # ana's critical at 2 h goes out at 24 h as a digest, her watch at 25 h at 48 h.
    assert document["per_user"]["ana"]["digests_would_send"] == 2
    assert document["totals"]["digests_would_send"] == 2
    # Digests off for the kind under a policy that has them on for all.
    policy = tmp_path / "policy.toml"
    policy.write_text("digest_after_cooldown = true\n")
    row["digest"] = False
    prefs.write_text(json.dumps({"ana": {"overload": row}}))
    status, out, _ = simulate(
        database, capsys, "--json", "--prefs", str(prefs), "--policy", str(policy)
    )
    assert status == 0
    document = json.loads(out)
    assert document["per_user"]["ana"]["digests_would_send"] == 0
    assert document["per_user"]["bo"]["digests_would_send"] == 2


@pytest.mark.parametrize(
    ("content", "named"),
    [
        ('{"ana": {"overload": {"channels": ["in_app"], "min_severity": "loud"}}}',
         "user 'ana', kind 'overload', min_severity: must be info, watch or critical"),
        ('{"ana": {"overload": {"channels": ["emial"]}}}',
         "user 'ana', kind 'overload', channels: unknown emial"),
        ('{"ana": {"overload": {"channels": "email"}}}',
         "user 'ana', kind 'overload', channels: must be a list"),
        ('{"ana": {"overload": {"channels": [], "cooldown": 5}}}',
         "user 'ana', kind 'overload': unknown field(s) cooldown"),
        ('{"ana": {"overload": {"channels": [], "digest": "yes"}}}',
         "user 'ana', kind 'overload', digest: must be true, false or null, got 'yes'"),
        ('{"ana": {"_global": {"channels": [], "digest": true}}}',
         "user 'ana', kind '_global', digest: only a per-kind row turns digests on or off"),
        ('{"ana": ["overload"]}', "user 'ana': must be a non-empty id"),
        ("[1]", "must be a JSON object of users"),
        ("{oops", "not valid JSON"),
    ],
)  # fmt: skip
def test_a_bad_prefs_file_exits_2_naming_the_field(
    database: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path, content: str, named: str
) -> None:
    prefs = tmp_path / "prefs.json"
    prefs.write_text(content)
    status, out, err = simulate(database, capsys, "--prefs", str(prefs))
    assert (status, out) == (2, "")
    assert named in err


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--since", "yesterday"], "--since must be a duration like 30d"),
        (["--since", "30w"], "--since must be a duration like 30d"),
        (["--prefs", "missing.json"], "prefs file missing.json: No such file"),
    ],
)
def test_bad_arguments_exit_2(
    database: Path, capsys: pytest.CaptureFixture[str], argv: list[str], named: str
) -> None:
    status, out, err = simulate(database, capsys, *argv)
    assert (status, out) == (2, "")
    assert named in err


def test_a_bad_policy_file_exits_2_naming_the_key(
    database: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text("cooldown_seconds = -5\n")
    status, _, err = simulate(database, capsys, "--policy", str(policy))
    assert status == 2
    assert "cooldown_seconds must be above 0" in err
    policy.write_text("workers = 3\n")
    status, _, err = simulate(database, capsys, "--policy", str(policy))
    assert status == 2
    assert "unknown setting(s): workers" in err

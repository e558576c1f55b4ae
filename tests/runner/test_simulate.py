"""What-if replays against history a real dispatcher made: unchanged inputs reproduce
the real counts exactly, a longer cooldown never sends more, and the CLI refuses bad
input with exit status 2 and the name of what is wrong."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tidings.adapters.memory import MemoryStore
from tidings.adapters.sqlite import SqliteStore
from tidings.core import GLOBAL_KIND, Event, Policy, Preference, Severity, decide_with
from tidings.core.ports import History
from tidings.runner.cli import main
from tidings.runner.dispatch import Dispatcher, DispatchOptions
from tidings.runner.dispatch.senders import default_senders
from tidings.runner.replay import Replay, progress_line, replay
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


def replay_sqlite(
    path: Path,
    since: datetime,
    policy: Policy = Policy(),  # noqa: B008 - frozen value
    progress: Callable[[int], None] | None = None,
) -> Replay:
    """Replay with the stored preferences, four events a page."""
    store = SqliteStore(str(path), clock=FakeClock(START))

    async def scenario() -> Replay:
        try:
            preferences = await store.all_preferences()
            return await replay(
                store,
                preferences=preferences,
                policy=policy,
                since=since,
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
        return await replay(store, preferences=preferences, policy=policy, since=since, page_size=3)

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
    assert set(document) == {"since", "totals", "per_kind", "per_user", "would_skip_by_reason"}
    assert document["totals"] == {"events": 18, "sent": 8, "would_send": 8, "delta": 0}
    assert set(document["per_user"]) == {"ana", "bo", "cy", "dee"}
    assert document["per_kind"]["digest"] == {"events": 4, "sent": 2, "would_send": 2, "delta": 0}


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
    assert per_kind["chatter"] == {"events": 2, "sent": 0, "would_send": 2, "delta": 2}


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
    assert lines[0].split() == ["kind", "events", "sent", "would", "send", "change"]
    assert ["overload", "9", "4", "7", "+3"] in [line.split() for line in lines]
    assert "total: 18 events, 8 sent, 13 would send (+5)" in lines
    assert "would skip: cooldown 1, no_channels 2, severity_below_minimum 2" in lines
    # bo and dee gain two each, ana one: the tie goes by name.
    assert "1 of 3 changed user(s), largest change first:" in lines
    assert lines[-1].split() == ["bo", "4", "2", "4", "+2"]


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

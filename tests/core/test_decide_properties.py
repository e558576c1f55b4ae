"""Properties of ``core.decide``: every rule of README.md "The rules", and their order.

The central property compares ``decide`` with a small reference model written straight
from the design (instants in UTC, severities by their position in ``Severity``); the
other tests pin each rule, each precedence and each boundary on its own, so that a
failure names the rule that broke.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from returns.result import Failure, Result, Success

from tests.core.outcomes import in_utc, shown
from tidings.core import (
    Channel,
    DecisionInputs,
    Event,
    Plan,
    Policy,
    Preference,
    PreferenceSource,
    Severity,
    Skip,
    SkipReason,
    decide,
    decide_with,
)
from tidings.testing import (
    aware_datetimes,
    channel_names,
    cooldowns,
    events,
    policies,
    preferences,
    severities,
    zones,
)

KNOWN_NAMES = ("in_app", "email", "webhook")
SEVERITY_ORDER = (Severity.INFO, Severity.WATCH, Severity.CRITICAL)
ONE_US = timedelta(microseconds=1)

# ---------------------------------------------------------------------------- strategies

optional_preferences = st.one_of(st.none(), preferences())
# Instants in UTC between 2000 and 2100, to the microsecond, for arithmetic on instants.
instants = aware_datetimes().map(lambda moment: moment.astimezone(UTC))


@st.composite
def elapsed_since_last(draw: st.DrawFn, cooldown: timedelta) -> timedelta:
    """``now - last_sent_at``: often right at the cooldown's edges, sometimes negative."""
    return draw(
        st.one_of(
            st.sampled_from([cooldown, cooldown - ONE_US, cooldown + ONE_US, timedelta(0)]),
            st.timedeltas(min_value=timedelta(days=-3), max_value=timedelta(days=40)),
        )
    )


@st.composite
def last_and_now(draw: st.DrawFn, cooldown: timedelta) -> tuple[datetime | None, datetime]:
    now = draw(aware_datetimes())
    if draw(st.booleans()):
        return None, now
    last = now.astimezone(UTC) - draw(elapsed_since_last(cooldown))
    # Often in now's zone, where subtracting wall clocks would go wrong across a change.
    return last.astimezone(draw(st.one_of(st.just(now.tzinfo), zones()))), now


# ------------------------------------------------------------------------------- helpers


def outcome_of(result: Result[Plan, Skip]) -> Plan | Skip:
    if isinstance(result, Success):
        plan: Plan = result.unwrap()
        return plan
    skip: Skip = result.failure()
    return skip


def rank(severity: Severity) -> int:
    return SEVERITY_ORDER.index(severity)


def unique(items: list[str]) -> tuple[str, ...]:
    seen: list[str] = []
    for item in items:
        if item not in seen:
            seen.append(item)
    return tuple(seen)


def split_names(names: tuple[str, ...]) -> tuple[tuple[Channel, ...], tuple[str, ...]]:
    known = tuple(Channel(name) for name in unique([n for n in names if n in KNOWN_NAMES]))
    return known, unique([n for n in names if n not in KNOWN_NAMES])


def model(
    event: Event,
    *,
    kind_preference: Preference | None,
    global_preference: Preference | None,
    last_sent_at: datetime | None,
    now: datetime,
    policy: Policy,
) -> Plan | Skip:
    """The rules as README.md states them, computed on UTC instants."""
    if kind_preference is not None:
        channels, ignored = split_names(kind_preference.channels)
        minimum, source = kind_preference.min_severity, PreferenceSource.KIND
    elif global_preference is not None:
        channels, ignored = split_names(global_preference.channels)
        minimum, source = policy.default_min_severity, PreferenceSource.GLOBAL
    else:
        channels, ignored = policy.default_channels, ()
        minimum, source = policy.default_min_severity, PreferenceSource.DEFAULT
    now_utc = now.astimezone(UTC)

    def skip(reason: SkipReason, ends: datetime | None = None) -> Skip:
        # Only a cooldown skip compared against the last notification, so only it says when.
        return Skip(
            kind=event.kind,
            severity=event.severity,
            reason=reason,
            source=source,
            min_severity=minimum,
            ignored_channels=ignored,
            last_sent_at=last_sent_at if reason is SkipReason.COOLDOWN else None,
            cooldown_ends_at=ends,
        )

    if rank(event.severity) < rank(minimum):
        return skip(SkipReason.SEVERITY_BELOW_MINIMUM)
    if not channels:
        return skip(SkipReason.NO_CHANNELS)
    if last_sent_at is not None and now_utc - last_sent_at.astimezone(UTC) < policy.cooldown:
        # When it ends, as a clock in the zone last_sent_at was given in shows it.
        ends = last_sent_at.astimezone(UTC) + policy.cooldown
        return skip(SkipReason.COOLDOWN, ends.astimezone(last_sent_at.tzinfo))
    return Plan(
        kind=event.kind,
        severity=event.severity,
        channels=channels,
        source=source,
        min_severity=minimum,
        ignored_channels=ignored,
    )


def at_least(minimum: Severity) -> st.SearchStrategy[Severity]:
    return st.sampled_from([s for s in SEVERITY_ORDER if rank(s) >= rank(minimum)])


def event_with(severity: Severity, kind: str = "burnout_overload") -> Event:
    return Event(event_id="e1", user_id="u42", kind=kind, severity=severity, title="t", body="b")


NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)

# ---------------------------------------------------------------- the model, all at once


@given(
    event=events(),
    kind_preference=optional_preferences,
    global_preference=optional_preferences,
    policy_and_times=policies().flatmap(
        lambda policy: st.tuples(st.just(policy), last_and_now(policy.cooldown))
    ),
)
def test_decide_matches_the_rules_of_the_design(
    event: Event,
    kind_preference: Preference | None,
    global_preference: Preference | None,
    policy_and_times: tuple[Policy, tuple[datetime | None, datetime]],
) -> None:
    policy, (last, now) = policy_and_times
    result = decide(
        event,
        kind_preference=kind_preference,
        global_preference=global_preference,
        last_sent_at=last,
        now=now,
        policy=policy,
    )
    expected = model(
        event,
        kind_preference=kind_preference,
        global_preference=global_preference,
        last_sent_at=last,
        now=now,
        policy=policy,
    )
    assert shown(outcome_of(result)) == shown(expected)
    assert isinstance(result, Success) == isinstance(expected, Plan)


# ------------------------------------------------------------- rule 1: the preference


@given(
    kind_preference=preferences(),
    global_preference=optional_preferences,
    policy=policies(),
    severity=severities(),
)
def test_per_kind_row_wins_with_its_own_minimum(
    kind_preference: Preference,
    global_preference: Preference | None,
    policy: Policy,
    severity: Severity,
) -> None:
    outcome = outcome_of(
        decide(
            event_with(severity),
            kind_preference=kind_preference,
            global_preference=global_preference,
            last_sent_at=None,
            now=NOW,
            policy=policy,
        )
    )
    known, ignored = split_names(kind_preference.channels)
    assert outcome.source is PreferenceSource.KIND
    assert outcome.min_severity is kind_preference.min_severity
    assert outcome.ignored_channels == ignored
    if isinstance(outcome, Plan):
        assert outcome.channels == known


@given(global_preference=preferences(), policy=policies(), severity=severities())
def test_global_row_gives_channels_but_the_policy_gives_the_minimum(
    global_preference: Preference, policy: Policy, severity: Severity
) -> None:
    outcome = outcome_of(
        decide(
            event_with(severity),
            kind_preference=None,
            global_preference=global_preference,
            last_sent_at=None,
            now=NOW,
            policy=policy,
        )
    )
    known, ignored = split_names(global_preference.channels)
    assert outcome.source is PreferenceSource.GLOBAL
    assert outcome.min_severity is policy.default_min_severity
    assert outcome.ignored_channels == ignored
    if isinstance(outcome, Plan):
        assert outcome.channels == known


def test_global_rows_minimum_is_ignored() -> None:
    # The global row asks for critical only; the policy default (info) applies instead.
    result = decide(
        event_with(Severity.INFO),
        kind_preference=None,
        global_preference=Preference(("email",), Severity.CRITICAL),
        last_sent_at=None,
        now=NOW,
    )
    assert result == Success(
        Plan(
            kind="burnout_overload",
            severity=Severity.INFO,
            channels=(Channel.EMAIL,),
            source=PreferenceSource.GLOBAL,
            min_severity=Severity.INFO,
        )
    )


@given(policy=policies(), severity=severities())
def test_without_rows_the_policy_defaults_apply(policy: Policy, severity: Severity) -> None:
    outcome = outcome_of(
        decide(
            event_with(severity),
            kind_preference=None,
            global_preference=None,
            last_sent_at=None,
            now=NOW,
            policy=policy,
        )
    )
    assert outcome.source is PreferenceSource.DEFAULT
    assert outcome.min_severity is policy.default_min_severity
    assert outcome.ignored_channels == ()
    if isinstance(outcome, Plan):
        assert outcome.channels == policy.default_channels


def test_default_policy_is_the_references() -> None:
    policy = Policy()
    assert policy.default_channels == (Channel.IN_APP,)
    assert policy.default_min_severity is Severity.INFO
    assert policy.cooldown == timedelta(hours=24)
    result = decide(
        event_with(Severity.INFO),
        kind_preference=None,
        global_preference=None,
        last_sent_at=NOW - timedelta(hours=24),
        now=NOW,
    )
    assert result == Success(
        Plan(
            kind="burnout_overload",
            severity=Severity.INFO,
            channels=(Channel.IN_APP,),
            source=PreferenceSource.DEFAULT,
            min_severity=Severity.INFO,
        )
    )


# ------------------------------------------------------- channel names: known, ordered


@given(names=channel_names(), min_severity=severities())
def test_channels_are_known_names_in_first_occurrence_order_without_repeats(
    names: tuple[str, ...], min_severity: Severity
) -> None:
    outcome = outcome_of(
        decide(
            event_with(Severity.CRITICAL),
            kind_preference=Preference(names, min_severity),
            global_preference=None,
            last_sent_at=None,
            now=NOW,
        )
    )
    expected_known = tuple(Channel(n) for n in unique([n for n in names if n in KNOWN_NAMES]))
    expected_ignored = unique([n for n in names if n not in KNOWN_NAMES])
    assert outcome.ignored_channels == expected_ignored
    assert not set(outcome.ignored_channels) & set(KNOWN_NAMES)
    if expected_known:
        assert isinstance(outcome, Plan)
        assert outcome.channels == expected_known
        assert len(set(outcome.channels)) == len(outcome.channels)
    else:
        assert isinstance(outcome, Skip)
        assert outcome.reason is SkipReason.NO_CHANNELS


def test_channel_order_and_unknown_names_concrete() -> None:
    result = decide(
        event_with(Severity.WATCH),
        kind_preference=Preference(
            ("webhook", "sms", "email", "webhook", "Email", "sms", "in_app"), Severity.INFO
        ),
        global_preference=Preference(("in_app",), Severity.INFO),
        last_sent_at=None,
        now=NOW,
    )
    assert result == Success(
        Plan(
            kind="burnout_overload",
            severity=Severity.WATCH,
            channels=(Channel.WEBHOOK, Channel.EMAIL, Channel.IN_APP),
            source=PreferenceSource.KIND,
            min_severity=Severity.INFO,
            ignored_channels=("sms", "Email"),
        )
    )


# ------------------------------------------------- rule 2: severity below the minimum


@given(
    data=st.data(),
    names=channel_names(),
    policy=policies(),
    elapsed=st.timedeltas(min_value=timedelta(days=-2), max_value=timedelta(days=2)),
    layer=st.sampled_from(["kind", "global", "default"]),
)
def test_severity_below_minimum_wins_over_no_channels_and_cooldown(
    data: st.DataObject, names: tuple[str, ...], policy: Policy, elapsed: timedelta, layer: str
) -> None:
    minimum = data.draw(st.sampled_from([Severity.WATCH, Severity.CRITICAL]))
    severity = data.draw(st.sampled_from([s for s in SEVERITY_ORDER if rank(s) < rank(minimum)]))
    policy_minimum = minimum if layer != "kind" else policy.default_min_severity
    policy = Policy(
        default_channels=policy.default_channels,
        default_min_severity=policy_minimum,
        cooldown=policy.cooldown,
    )
    kind_row = Preference(names, minimum) if layer == "kind" else None
    global_row = Preference(names, Severity.INFO) if layer == "global" else None
    last = NOW - elapsed
    result = decide(
        event_with(severity),
        kind_preference=kind_row,
        global_preference=global_row,
        last_sent_at=last,
        now=NOW,
        policy=policy,
    )
    assert isinstance(result, Failure)
    skip = result.failure()
    assert skip.reason is SkipReason.SEVERITY_BELOW_MINIMUM
    assert skip.min_severity is minimum
    assert skip.severity is severity
    assert skip.source is PreferenceSource(layer)
    assert skip.last_sent_at is None  # the cooldown was never compared
    assert skip.cooldown_ends_at is None


def test_severity_below_minimum_concrete() -> None:
    result = decide(
        event_with(Severity.INFO),
        kind_preference=Preference((), Severity.WATCH),
        global_preference=None,
        last_sent_at=NOW,
        now=NOW,
    )
    assert result == Failure(
        Skip(
            kind="burnout_overload",
            severity=Severity.INFO,
            reason=SkipReason.SEVERITY_BELOW_MINIMUM,
            source=PreferenceSource.KIND,
            min_severity=Severity.WATCH,
        )
    )


# ------------------------------------------------------------- rule 3: no channels


@given(
    data=st.data(),
    unknown=st.lists(st.text(max_size=8).filter(lambda n: n not in KNOWN_NAMES), max_size=4),
    global_preference=optional_preferences,
    policy=policies(),
    elapsed=st.timedeltas(min_value=timedelta(days=-2), max_value=timedelta(days=2)),
)
def test_per_kind_row_without_known_channels_is_silent_even_in_cooldown(
    data: st.DataObject,
    unknown: list[str],
    global_preference: Preference | None,
    policy: Policy,
    elapsed: timedelta,
) -> None:
    minimum = data.draw(severities())
    severity = data.draw(at_least(minimum))
    last = NOW - elapsed
    result = decide(
        event_with(severity),
        kind_preference=Preference(tuple(unknown), minimum),
        global_preference=global_preference,
        last_sent_at=last,
        now=NOW,
        policy=policy,
    )
    assert isinstance(result, Failure)
    skip = result.failure()
    assert skip.reason is SkipReason.NO_CHANNELS
    assert skip.source is PreferenceSource.KIND
    assert skip.ignored_channels == unique(unknown)
    assert skip.cooldown_ends_at is None
    assert skip.last_sent_at is None  # the cooldown was never compared


def test_empty_per_kind_row_silences_even_with_a_global_row() -> None:
    result = decide(
        event_with(Severity.CRITICAL),
        kind_preference=Preference((), Severity.INFO),
        global_preference=Preference(("email", "in_app"), Severity.INFO),
        last_sent_at=NOW - timedelta(minutes=5),
        now=NOW,
    )
    assert result == Failure(
        Skip(
            kind="burnout_overload",
            severity=Severity.CRITICAL,
            reason=SkipReason.NO_CHANNELS,
            source=PreferenceSource.KIND,
            min_severity=Severity.INFO,
        )
    )


def test_empty_policy_default_channels_skip_no_channels() -> None:
    result = decide(
        event_with(Severity.WATCH),
        kind_preference=None,
        global_preference=None,
        last_sent_at=None,
        now=NOW,
        policy=Policy(default_channels=()),
    )
    assert isinstance(result, Failure)
    assert result.failure().reason is SkipReason.NO_CHANNELS
    assert result.failure().source is PreferenceSource.DEFAULT


def test_global_row_with_only_unknown_names_skips_no_channels() -> None:
    result = decide(
        event_with(Severity.WATCH),
        kind_preference=None,
        global_preference=Preference(("sms", "pager", "sms"), Severity.INFO),
        last_sent_at=None,
        now=NOW,
    )
    assert result == Failure(
        Skip(
            kind="burnout_overload",
            severity=Severity.WATCH,
            reason=SkipReason.NO_CHANNELS,
            source=PreferenceSource.GLOBAL,
            min_severity=Severity.INFO,
            ignored_channels=("sms", "pager"),
        )
    )


# ------------------------------------------------------------------ rule 4: cooldown


@given(
    cooldown=st.timedeltas(min_value=ONE_US, max_value=timedelta(days=30)),
    data=st.data(),
    now=instants,
)
def test_inside_the_cooldown_skips_and_says_when_it_ends(
    cooldown: timedelta, data: st.DataObject, now: datetime
) -> None:
    elapsed = data.draw(st.timedeltas(min_value=timedelta(0), max_value=cooldown - ONE_US))
    last = now - elapsed
    result = decide(
        event_with(Severity.WATCH),
        kind_preference=None,
        global_preference=None,
        last_sent_at=last,
        now=now,
        policy=Policy(cooldown=cooldown),
    )
    assert result == Failure(
        Skip(
            kind="burnout_overload",
            severity=Severity.WATCH,
            reason=SkipReason.COOLDOWN,
            source=PreferenceSource.DEFAULT,
            min_severity=Severity.INFO,
            last_sent_at=last,
            cooldown_ends_at=last + cooldown,
        )
    )
    assert result.failure().cooldown_ends_at == last + cooldown


@given(cooldown=cooldowns(), last=instants, zone=zones())
def test_cooldown_boundaries_to_the_microsecond(
    cooldown: timedelta, last: datetime, zone: tzinfo
) -> None:
    policy = Policy(default_channels=(Channel.EMAIL,), cooldown=cooldown)

    def at(now: datetime) -> Result[Plan, Skip]:
        return decide(
            event_with(Severity.INFO),
            kind_preference=None,
            global_preference=None,
            last_sent_at=last,
            now=now.astimezone(zone),
            policy=policy,
        )

    end = last + cooldown
    assert at(end) == Success(
        Plan(
            kind="burnout_overload",
            severity=Severity.INFO,
            channels=(Channel.EMAIL,),
            source=PreferenceSource.DEFAULT,
            min_severity=Severity.INFO,
        )
    )
    assert isinstance(at(end + ONE_US), Success)
    just_before = at(end - ONE_US)
    assert isinstance(just_before, Failure)
    assert just_before.failure().reason is SkipReason.COOLDOWN
    assert just_before.failure().cooldown_ends_at == end


@given(
    ahead=st.timedeltas(min_value=ONE_US, max_value=timedelta(days=400)),
    cooldown=cooldowns(),
    now=instants,
)
def test_last_sent_in_the_future_skips(
    ahead: timedelta, cooldown: timedelta, now: datetime
) -> None:
    last = now + ahead
    result = decide(
        event_with(Severity.CRITICAL),
        kind_preference=Preference(("webhook",), Severity.INFO),
        global_preference=None,
        last_sent_at=last,
        now=now,
        policy=Policy(cooldown=cooldown),
    )
    assert isinstance(result, Failure)
    assert result.failure().reason is SkipReason.COOLDOWN
    assert result.failure().cooldown_ends_at == last + cooldown
    assert result.failure().last_sent_at == last


def test_cooldown_is_exact_not_whole_hours() -> None:
    # 23 h 59 min 59.999999 s after the last one: still inside a 24 h cooldown.
    last = NOW - timedelta(hours=24) + ONE_US
    result = decide(
        event_with(Severity.INFO),
        kind_preference=None,
        global_preference=None,
        last_sent_at=last,
        now=NOW,
    )
    assert result == Failure(
        Skip(
            kind="burnout_overload",
            severity=Severity.INFO,
            reason=SkipReason.COOLDOWN,
            source=PreferenceSource.DEFAULT,
            min_severity=Severity.INFO,
            last_sent_at=last,
            cooldown_ends_at=NOW + ONE_US,
        )
    )


# -------------------------------------------------------------------- rule 5: plan


@given(
    data=st.data(),
    names=channel_names().filter(lambda names: any(n in KNOWN_NAMES for n in names)),
    cooldown=cooldowns(),
    last=st.one_of(st.none(), st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=60))),
)
def test_plan_carries_channels_source_minimum_and_ignored(
    data: st.DataObject,
    names: tuple[str, ...],
    cooldown: timedelta,
    last: timedelta | None,
) -> None:
    minimum = data.draw(severities())
    severity = data.draw(at_least(minimum))
    last_sent_at = None if last is None else NOW - cooldown - last
    result = decide(
        event_with(severity, kind="deadline"),
        kind_preference=Preference(names, minimum),
        global_preference=None,
        last_sent_at=last_sent_at,
        now=NOW,
        policy=Policy(cooldown=cooldown),
    )
    known, ignored = split_names(names)
    assert result == Success(
        Plan(
            kind="deadline",
            severity=severity,
            channels=known,
            source=PreferenceSource.KIND,
            min_severity=minimum,
            ignored_channels=ignored,
        )
    )


# ------------------------------------------------------------------ naive datetimes


@given(moment=instants, aware=aware_datetimes())
def test_naive_now_or_last_sent_at_raises_value_error(moment: datetime, aware: datetime) -> None:
    naive = moment.replace(tzinfo=None)
    for last, now, name in ((aware, naive, "now"), (naive, aware, "last_sent_at")):
        try:
            decide(
                event_with(Severity.CRITICAL),
                kind_preference=None,
                global_preference=None,
                last_sent_at=last,
                now=now,
            )
        except ValueError as error:
            assert name in str(error)
        else:
            raise AssertionError(f"a naive {name} was accepted")


def test_naive_now_raises_even_without_last_sent_at_and_before_any_rule() -> None:
    # Severity below the minimum would skip; the naive time is still a programming error.
    naive_now = NOW.replace(tzinfo=None)
    try:
        decide(
            event_with(Severity.INFO),
            kind_preference=Preference((), Severity.CRITICAL),
            global_preference=None,
            last_sent_at=None,
            now=naive_now,
        )
    except ValueError as error:
        assert "timezone-aware" in str(error)
    else:
        raise AssertionError("a naive now was accepted")


# --------------------------------------------------- timezones: only the instant counts


@given(
    event=events(),
    kind_preference=optional_preferences,
    global_preference=optional_preferences,
    policy_and_times=policies().flatmap(
        lambda policy: st.tuples(st.just(policy), last_and_now(policy.cooldown))
    ),
    other_zones=st.tuples(zones(), zones(), zones(), zones()),
)
def test_result_depends_only_on_the_instant(
    event: Event,
    kind_preference: Preference | None,
    global_preference: Preference | None,
    policy_and_times: tuple[Policy, tuple[datetime | None, datetime]],
    other_zones: tuple[tzinfo, tzinfo, tzinfo, tzinfo],
) -> None:
    policy, (last, now) = policy_and_times
    last_utc = None if last is None else last.astimezone(UTC)
    now_utc = now.astimezone(UTC)
    now_a, last_zone_a, now_b, last_zone_b = other_zones
    results = [
        decide(
            event,
            kind_preference=kind_preference,
            global_preference=global_preference,
            last_sent_at=None if last_utc is None else last_utc.astimezone(last_zone),
            now=now_utc.astimezone(now_zone),
            policy=policy,
        )
        for now_zone, last_zone in ((UTC, UTC), (now_a, last_zone_a), (now_b, last_zone_b))
    ]
    outcomes = [outcome_of(result) for result in results]
    assert in_utc(outcomes[0]) == in_utc(outcomes[1]) == in_utc(outcomes[2])
    if isinstance(outcomes[0], Skip) and outcomes[0].reason is SkipReason.COOLDOWN:
        assert last_utc is not None
        for outcome in outcomes:
            assert isinstance(outcome, Skip)
            assert outcome.cooldown_ends_at is not None
            assert outcome.cooldown_ends_at.astimezone(UTC) == last_utc + policy.cooldown


def test_same_wall_clock_in_different_zones_is_a_different_instant() -> None:
    # 12:00 at +02:00 is 10:00 UTC; with a last send at 10:30 UTC it is in the future.
    plus_two = timezone(timedelta(hours=2))
    now = datetime(2024, 5, 1, 12, 0, tzinfo=plus_two)
    last = datetime(2024, 5, 1, 10, 30, tzinfo=UTC)
    result = decide(
        event_with(Severity.INFO),
        kind_preference=None,
        global_preference=None,
        last_sent_at=last,
        now=now,
        policy=Policy(cooldown=timedelta(minutes=10)),
    )
    assert isinstance(result, Failure)
    assert result.failure().reason is SkipReason.COOLDOWN
    assert result.failure().cooldown_ends_at == datetime(2024, 5, 1, 10, 40, tzinfo=UTC)


# ------------------------------------------------------------- purity, determinism


@given(
    event=events(),
    kind_preference=optional_preferences,
    global_preference=optional_preferences,
    policy_and_times=policies().flatmap(
        lambda policy: st.tuples(st.just(policy), last_and_now(policy.cooldown))
    ),
)
def test_same_inputs_same_result_and_decide_with_agrees(
    event: Event,
    kind_preference: Preference | None,
    global_preference: Preference | None,
    policy_and_times: tuple[Policy, tuple[datetime | None, datetime]],
) -> None:
    policy, (last, now) = policy_and_times

    def once() -> Result[Plan, Skip]:
        return decide(
            event,
            kind_preference=kind_preference,
            global_preference=global_preference,
            last_sent_at=last,
            now=now,
            policy=policy,
        )

    first, second = once(), once()
    assert first == second
    assert hash(outcome_of(first)) == hash(outcome_of(second))
    inputs = DecisionInputs(
        kind_preference=kind_preference, global_preference=global_preference, last_sent_at=last
    )
    assert decide_with(event, inputs, now, policy) == first


def test_policy_argument_defaults_to_policy() -> None:
    for severity in SEVERITY_ORDER:
        for elapsed in (timedelta(hours=1), timedelta(hours=24)):
            last = NOW - elapsed
            event = event_with(severity)
            with_default = decide(
                event, kind_preference=None, global_preference=None, last_sent_at=last, now=NOW
            )
            explicit = decide(
                event,
                kind_preference=None,
                global_preference=None,
                last_sent_at=last,
                now=NOW,
                policy=Policy(),
            )
            assert with_default == explicit
            assert isinstance(with_default, Success) == (elapsed == timedelta(hours=24))


# ------------------------------------------------ exact durations across DST changes


PARIS = ZoneInfo("Europe/Paris")


@pytest.mark.parametrize(
    ("last", "now", "expect_cooldown"),
    [
        # 23 h 30 min really elapse over the spring-forward night: still inside.
        (
            datetime(2024, 3, 30, 12, 0, tzinfo=PARIS),
            datetime(2024, 3, 31, 12, 30, tzinfo=PARIS),
            True,
        ),
        # 24 h 30 min really elapse over the fall-back night: outside.
        (
            datetime(2024, 10, 26, 12, 0, tzinfo=PARIS),
            datetime(2024, 10, 27, 11, 30, tzinfo=PARIS),
            False,
        ),
    ],
)
def test_cooldown_counts_real_time_across_daylight_saving_changes(
    last: datetime, now: datetime, expect_cooldown: bool
) -> None:
    last_sent = last
    result = decide(
        event_with(Severity.INFO),
        kind_preference=None,
        global_preference=None,
        last_sent_at=last_sent,
        now=now,
    )
    assert isinstance(result, Failure) is expect_cooldown
    if expect_cooldown:
        skip = result.failure()
        assert skip.cooldown_ends_at == last_sent.astimezone(UTC) + timedelta(hours=24)


def test_a_cooldown_ending_in_a_repeated_hour_is_shown_on_the_right_pass() -> None:
    # Berlin's clocks go back at 01:00 UTC on 27 October 2024: 02:00 to 03:00 happens
    # twice. The last send at 02:31 on the first pass (CEST); now is 02:20 on the second
    # pass (CET), 49 minutes later: the cooldown ends at 02:31 on the second pass.
    berlin = ZoneInfo("Europe/Berlin")
    last = datetime(2024, 10, 27, 0, 31, tzinfo=UTC).astimezone(berlin)
    now = datetime(2024, 10, 27, 1, 20, tzinfo=UTC).astimezone(berlin)
    assert (last.hour, last.minute, last.fold, now.hour, now.fold) == (2, 31, 0, 2, 1)
    result = decide(
        event_with(Severity.INFO),
        kind_preference=None,
        global_preference=None,
        last_sent_at=last,
        now=now,
        policy=Policy(cooldown=timedelta(hours=1)),
    )
    assert isinstance(result, Failure)
    ends = result.failure().cooldown_ends_at
    assert ends is not None
    assert (ends.tzinfo, ends.hour, ends.minute, ends.fold) == (berlin, 2, 31, 1)
    assert ends.astimezone(UTC) == datetime(2024, 10, 27, 1, 31, tzinfo=UTC)


def test_policy_default_channels_are_deduplicated() -> None:
    policy = Policy(default_channels=(Channel.EMAIL, Channel.IN_APP, Channel.EMAIL))
    assert policy.default_channels == (Channel.EMAIL, Channel.IN_APP)

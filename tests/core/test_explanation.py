"""``core.explain`` sentences, the outcome codec's round trip, and ``crossed_upward``.

The outcomes explained here come from ``decide`` itself, so the sentences are checked
against what a store would really record.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st
from returns.result import Result, Success

from tests.core.outcomes import shown
from tidings.core import (
    Channel,
    Event,
    Plan,
    Policy,
    Preference,
    PreferenceSource,
    Severity,
    Skip,
    SkipReason,
    crossed_upward,
    decide,
    explain,
    outcome_from_mapping,
    outcome_to_mapping,
)
from tidings.core.codec import outcome_to_json
from tidings.testing import aware_datetimes, severities

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
KIND = "burnout_overload"


def outcome(
    severity: Severity,
    *,
    kind_preference: Preference | None = None,
    global_preference: Preference | None = None,
    last_sent_at: datetime | None = None,
    now: datetime = NOW,
    policy: Policy | None = None,
    kind: str = KIND,
) -> Plan | Skip:
    result: Result[Plan, Skip] = decide(
        Event(event_id="e1", user_id="u42", kind=kind, severity=severity, title="t", body="b"),
        kind_preference=kind_preference,
        global_preference=global_preference,
        last_sent_at=last_sent_at,
        now=now,
        policy=policy or Policy(),
    )
    if isinstance(result, Success):
        plan: Plan = result.unwrap()
        return plan
    skip: Skip = result.failure()
    return skip


# ------------------------------------------------------------------------------ plans


def test_plan_from_the_per_kind_row() -> None:
    decided = outcome(
        Severity.CRITICAL,
        kind_preference=Preference(("email", "in_app"), Severity.WATCH),
    )
    assert explain(decided) == (
        "notified via email, in_app: severity critical meets the minimum watch, "
        "channels from the per-kind preference for burnout_overload"
    )


def test_plan_from_the_global_row_with_ignored_channels() -> None:
    decided = outcome(
        Severity.WATCH,
        global_preference=Preference(("webhook", "sms", "pager", "sms"), Severity.CRITICAL),
    )
    assert explain(decided) == (
        "notified via webhook: severity watch meets the minimum info, "
        "channels from the global preference (ignored unknown channels: sms, pager)"
    )


def test_plan_from_the_default_policy() -> None:
    assert explain(outcome(Severity.INFO)) == (
        "notified via in_app: severity info meets the minimum info, "
        "channels from the default policy"
    )
    policy = Policy(
        default_channels=(Channel.WEBHOOK, Channel.EMAIL), default_min_severity=Severity.WATCH
    )
    assert explain(outcome(Severity.WATCH, policy=policy)) == (
        "notified via webhook, email: severity watch meets the minimum watch, "
        "channels from the default policy"
    )


# ------------------------------------------------------------ severity below minimum


def test_severity_below_minimum_from_the_per_kind_row() -> None:
    decided = outcome(Severity.INFO, kind_preference=Preference(("email",), Severity.WATCH))
    assert explain(decided) == (
        "skipped: severity info is below the minimum watch set by the per-kind preference "
        "for burnout_overload"
    )


def test_severity_below_minimum_with_a_global_row_names_the_policy() -> None:
    decided = outcome(
        Severity.WATCH,
        global_preference=Preference(("email",), Severity.INFO),
        policy=Policy(default_min_severity=Severity.CRITICAL),
    )
    assert explain(decided) == (
        "skipped: severity watch is below the minimum critical set by the default policy "
        "(the global preference sets channels only)"
    )


def test_severity_below_minimum_from_the_default_policy() -> None:
    decided = outcome(Severity.INFO, policy=Policy(default_min_severity=Severity.WATCH))
    assert explain(decided) == (
        "skipped: severity info is below the minimum watch set by the default policy"
    )


# -------------------------------------------------------------------------- no channels


def test_no_channels_from_the_per_kind_row() -> None:
    decided = outcome(Severity.CRITICAL, kind_preference=Preference((), Severity.INFO))
    assert explain(decided) == (
        "skipped: the per-kind preference for burnout_overload enables no channels"
    )
    decided = outcome(
        Severity.CRITICAL,
        kind_preference=Preference(("sms",), Severity.INFO),
        kind="deadline",
    )
    assert explain(decided) == (
        "skipped: the per-kind preference for deadline enables no channels "
        "(ignored unknown channels: sms)"
    )


def test_no_channels_from_the_global_row() -> None:
    decided = outcome(Severity.WATCH, global_preference=Preference(("fax",), Severity.INFO))
    assert explain(decided) == (
        "skipped: the global preference enables no channels (ignored unknown channels: fax)"
    )


def test_no_channels_from_the_default_policy() -> None:
    decided = outcome(Severity.WATCH, policy=Policy(default_channels=()))
    assert explain(decided) == "skipped: the default policy enables no channels"


# ----------------------------------------------------------------------------- cooldown


def test_cooldown_says_when_it_ends() -> None:
    for kind_preference, global_preference in (
        (Preference(("email",), Severity.INFO), None),
        (None, Preference(("email",), Severity.INFO)),
        (None, None),
    ):
        decided = outcome(
            Severity.WATCH,
            kind_preference=kind_preference,
            global_preference=global_preference,
            last_sent_at=NOW - timedelta(hours=3, minutes=30),
        )
        assert explain(decided) == (
            "skipped: inside the cooldown for burnout_overload; "
            "last notified at 2024-05-01T08:30:00+00:00, "
            "cooldown ends at 2024-05-02T08:30:00+00:00"
        )


def test_cooldown_keeps_the_offset_it_was_given() -> None:
    plus_five_thirty = timezone(timedelta(hours=5, minutes=30))
    last = datetime(2024, 5, 1, 9, 15, 0, 250, tzinfo=plus_five_thirty)
    decided = outcome(
        Severity.INFO,
        last_sent_at=last,
        now=last + timedelta(minutes=30),
        policy=Policy(cooldown=timedelta(minutes=90)),
    )
    assert explain(decided) == (
        "skipped: inside the cooldown for burnout_overload; "
        "last notified at 2024-05-01T09:15:00.000250+05:30, "
        "cooldown ends at 2024-05-01T10:45:00.000250+05:30"
    )


# -------------------------------------------------------------------- codec round trip

sources = st.sampled_from(PreferenceSource)
texts = st.text(max_size=20)
ignored_names = st.lists(texts, max_size=4, unique=True).map(tuple)
plans = st.builds(
    Plan,
    kind=texts,
    severity=severities(),
    channels=st.lists(st.sampled_from(Channel), unique=True).map(tuple),
    source=sources,
    min_severity=severities(),
    ignored_channels=ignored_names,
)
skips = st.builds(
    Skip,
    kind=texts,
    severity=severities(),
    reason=st.sampled_from(SkipReason),
    source=sources,
    min_severity=severities(),
    ignored_channels=ignored_names,
    last_sent_at=st.one_of(st.none(), aware_datetimes()),
    cooldown_ends_at=st.one_of(st.none(), aware_datetimes()),
)


@given(original=st.one_of(plans, skips))
def test_outcome_mapping_round_trips_through_json(original: Plan | Skip) -> None:
    mapping = outcome_to_mapping(original)
    rebuilt = outcome_from_mapping(json.loads(json.dumps(mapping)))
    assert shown(rebuilt) == shown(original)  # the zone's name is not kept, its offset is
    assert type(rebuilt) is type(original)
    assert explain(rebuilt) == explain(original)
    if isinstance(original, Skip):
        assert isinstance(rebuilt, Skip)
        for before, after in (
            (original.last_sent_at, rebuilt.last_sent_at),
            (original.cooldown_ends_at, rebuilt.cooldown_ends_at),
        ):
            if before is None:
                assert after is None
            else:
                assert after is not None
                assert after.utcoffset() == before.utcoffset()


def test_outcome_mapping_shape() -> None:
    plan = outcome(
        Severity.CRITICAL, kind_preference=Preference(("webhook", "sms"), Severity.WATCH)
    )
    assert outcome_to_mapping(plan) == {
        "decision": "plan",
        "kind": KIND,
        "severity": "critical",
        "source": "kind",
        "min_severity": "watch",
        "ignored_channels": ["sms"],
        "channels": ["webhook"],
    }
    skip = outcome(Severity.INFO, last_sent_at=NOW - timedelta(hours=1))
    assert outcome_to_mapping(skip) == {
        "decision": "skip",
        "kind": KIND,
        "severity": "info",
        "source": "default",
        "min_severity": "info",
        "ignored_channels": [],
        "reason": "cooldown",
        "last_sent_at": "2024-05-01T11:00:00+00:00",
        "cooldown_ends_at": "2024-05-02T11:00:00+00:00",
    }


# ---------------------------------------------------------------------- crossed_upward


@given(prior=st.integers(), current=st.integers(), threshold=st.integers())
def test_crossed_upward_is_prior_below_and_current_at_or_above(
    prior: int, current: int, threshold: int
) -> None:
    crossed = crossed_upward(prior, current, threshold)
    assert crossed == (prior < threshold and current >= threshold)
    if crossed:
        # A steady reading above the threshold is not a new crossing.
        assert not crossed_upward(current, current, threshold)
        assert not crossed_upward(current, current + 1, threshold)


def test_crossed_upward_examples() -> None:
    assert crossed_upward(49, 50, 50)
    assert crossed_upward(0, 100, 50)
    assert not crossed_upward(50, 60, 50)
    assert not crossed_upward(49, 49, 50)
    assert not crossed_upward(60, 40, 50)
    assert crossed_upward(Severity.INFO, Severity.CRITICAL, Severity.WATCH)
    assert not crossed_upward(Severity.WATCH, Severity.CRITICAL, Severity.WATCH)


@given(outcome=st.one_of(plans, skips))
def test_outcome_to_json_is_json_dumps_of_the_mapping(outcome: Plan | Skip) -> None:
    assert outcome_to_json(outcome) == json.dumps(outcome_to_mapping(outcome))

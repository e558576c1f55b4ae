"""Properties of the rules issue #13 adds to ``core.decide``: escalation past the
cooldown, quiet hours, and holding cooldown skips for a digest (README, "The rules").

Each rule is off in ``Policy()`` and with no quiet hours given, so the reference's
behaviour (``test_decide_properties``) is unchanged; here each is switched on and
compared with a statement of the rule written from the README.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import attrs
from hypothesis import given
from hypothesis import strategies as st
from returns.result import Failure, Success

from tidings.core import (
    Channel,
    Event,
    Plan,
    Policy,
    Preference,
    Severity,
    Skip,
    SkipReason,
    decide,
)
from tidings.core.codec import outcome_from_mapping, outcome_to_json, outcome_to_mapping
from tidings.core.decision import HELD_CHANNELS, outcome_of
from tidings.core.digest import LISTED, HeldEvent, digest_event
from tidings.core.explanation import explain
from tidings.core.quiet_hours import QuietHours, held_until
from tidings.testing import aware_datetimes, events, policies, preferences, severities

BERLIN = ZoneInfo("Europe/Berlin")
NIGHT = QuietHours(starts=time(22, 0), ends=time(7, 0), zone=BERLIN)
instants = aware_datetimes().map(lambda moment: moment.astimezone(UTC))
windows = st.builds(
    lambda starts, length, zone: QuietHours(
        starts=time(starts // 60, starts % 60),
        ends=time(((starts + length) % 1440) // 60, (starts + length) % 1440 % 60),
        zone=ZoneInfo(zone),
    ),
    st.integers(0, 1439),
    st.integers(1, 1439),
    st.sampled_from(["Europe/Berlin", "America/New_York", "Asia/Kolkata", "UTC"]),
)


@given(events(), st.one_of(st.none(), preferences()), severities(), severities(), policies(),
       instants, st.integers(0, 10**6))  # fmt: skip
def test_inside_the_cooldown_a_rise_in_severity_is_notified_when_escalation_is_on(
    event: Event,
    preference: Preference | None,
    last_severity: Severity,
    severity: Severity,
    policy: Policy,
    now: datetime,
    seconds_ago: int,
) -> None:
    event = attrs.evolve(event, severity=severity)
    policy = attrs.evolve(policy, escalate_past_cooldown=True, digest_after_cooldown=False)
    last = now - min(timedelta(seconds=seconds_ago), policy.cooldown - timedelta(microseconds=1))
    plain = outcome_of(decide(event, kind_preference=preference, global_preference=None,
                              last_sent_at=None, now=now, policy=policy))  # fmt: skip
    outcome = outcome_of(decide(event, kind_preference=preference, global_preference=None,
                                last_sent_at=last, now=now, policy=policy,
                                last_severity=last_severity))  # fmt: skip
    if isinstance(plain, Skip):  # the minimum and the channels still come first
        assert outcome == plain
    elif severity > last_severity:
        assert isinstance(outcome, Plan)
        assert (outcome.escalated_over, outcome.last_sent_at) == (last_severity, last)
        assert outcome.channels == plain.channels
        assert "rises above the" in explain(outcome)
    else:
        assert isinstance(outcome, Skip)
        assert outcome.reason is SkipReason.COOLDOWN
        assert outcome.last_severity is last_severity
        assert "does not rise above" in explain(outcome)


@given(events(), severities(), instants)
def test_escalation_off_skips_every_severity_inside_the_cooldown(
    event: Event, last_severity: Severity, now: datetime
) -> None:
    outcome = decide(event, kind_preference=None, global_preference=None,
                     last_sent_at=now, now=now, last_severity=last_severity)  # fmt: skip
    assert isinstance(outcome, Failure)
    assert outcome.failure().last_severity is None


@given(events(), windows, instants, policies())
def test_quiet_hours_hold_email_and_webhook_until_the_window_ends(
    event: Event, window: QuietHours, now: datetime, policy: Policy
) -> None:
    preference = Preference(("in_app", "email", "webhook"), Severity.INFO)
    outcome = outcome_of(decide(event, kind_preference=preference, global_preference=None,
                                last_sent_at=None, now=now, policy=policy,
                                quiet_hours=window))  # fmt: skip
    assert isinstance(outcome, Plan)
    until = held_until(window, now)
    exempt = event.severity is Severity.CRITICAL and not policy.quiet_hours_hold_critical
    if until is None or exempt:
        assert outcome.hold is None
    else:
        assert outcome.hold is not None
        assert outcome.hold.until == until
        assert outcome.hold.until >= now
        assert outcome.hold.text.endswith(f"{window.zone_name} (quiet hours)")
        assert "(quiet hours)" in explain(outcome)


@given(events(), instants)
def test_quiet_hours_never_hold_the_inbox(event: Event, now: datetime) -> None:
    preference = Preference(("in_app",), Severity.INFO)
    outcome = outcome_of(decide(event, kind_preference=preference, global_preference=None,
                                last_sent_at=None, now=now, quiet_hours=NIGHT,
                                policy=Policy(quiet_hours_hold_critical=True)))  # fmt: skip
    assert isinstance(outcome, Plan)
    assert outcome.hold is None
    assert HELD_CHANNELS.isdisjoint(outcome.channels)


def test_a_hold_reads_in_the_users_zone() -> None:
    event = attrs.evolve(_event(), severity=Severity.WATCH)
    now = datetime(2026, 12, 3, 23, 30, tzinfo=UTC)  # 00:30 in Berlin
    preference = Preference(("in_app", "email"), Severity.INFO)
    outcome = outcome_of(decide(event, kind_preference=preference,
                                global_preference=None, last_sent_at=None, now=now,
                                quiet_hours=NIGHT))  # fmt: skip
    assert isinstance(outcome, Plan)
    assert outcome.hold is not None
    assert outcome.hold.until == datetime(2026, 12, 4, 6, 0, tzinfo=UTC)
    assert explain(outcome).endswith("; email held until 07:00 Europe/Berlin (quiet hours)")


@given(events(), st.one_of(st.none(), preferences()), policies(), instants)
def test_a_cooldown_skip_is_held_for_the_digest_as_the_preference_or_policy_says(
    event: Event, preference: Preference | None, policy: Policy, now: datetime
) -> None:
    outcome = outcome_of(decide(event, kind_preference=preference, global_preference=None,
                                last_sent_at=now, now=now, policy=policy))  # fmt: skip
    if isinstance(outcome, Skip) and outcome.reason is SkipReason.COOLDOWN:
        asked = preference.digest if preference and preference.digest is not None else None
        wanted = policy.digest_after_cooldown if asked is None else asked
        assert outcome.held_for_digest is wanted
    else:
        assert not (isinstance(outcome, Skip) and outcome.held_for_digest)


@given(events(), st.booleans(), st.booleans(), instants)
def test_the_preferences_digest_switch_wins_over_the_policy(
    event: Event, asked: bool, policy_on: bool, now: datetime
) -> None:
    preference = Preference(("in_app",), Severity.INFO, digest=asked)
    outcome = decide(event, kind_preference=preference, global_preference=None,
                     last_sent_at=now, now=now,
                     policy=Policy(digest_after_cooldown=policy_on))  # fmt: skip
    assert isinstance(outcome, Failure)
    assert outcome.failure().held_for_digest is asked
    assert ("held for the digest" in explain(outcome.failure())) is asked


@given(events(), severities(), windows, instants, st.booleans())
def test_recorded_outcomes_round_trip_with_the_new_fields(
    event: Event, last_severity: Severity, window: QuietHours, now: datetime, digest: bool
) -> None:
    policy = Policy(escalate_past_cooldown=True, digest_after_cooldown=digest,
                    quiet_hours_hold_critical=True)  # fmt: skip
    preference = Preference(("email",), Severity.INFO)
    for last in (None, now):
        result = decide(event, kind_preference=preference, global_preference=None,
                        last_sent_at=last, now=now, policy=policy,
                        last_severity=last_severity, quiet_hours=window)  # fmt: skip
        outcome = outcome_of(result)
        assert outcome_from_mapping(json.loads(outcome_to_json(outcome))) == outcome
        assert json.loads(outcome_to_json(outcome)) == outcome_to_mapping(outcome)
        assert isinstance(result, Success | Failure)


def _event() -> Event:
    return Event(event_id="e1", user_id="u42", kind="deploy_failed", severity=Severity.INFO,
                 title="deploy failed", body="")  # fmt: skip


def test_a_digest_lists_twenty_then_counts_and_takes_the_highest_severity() -> None:
    at = datetime(2026, 12, 3, 9, 12, tzinfo=UTC)
    held = [
        HeldEvent(event_id=f"e{n}", severity=Severity.CRITICAL if n == 7 else Severity.INFO,
                  title=f"load {n}", held_at=at + timedelta(minutes=n))
        for n in range(25)
    ]  # fmt: skip
    digest = digest_event("digest-1", "u42", "burnout_overload", held)
    assert digest.title == "25 more burnout_overload events"
    assert digest.severity is Severity.CRITICAL
    lines = digest.body.split("\n")
    assert len(lines) == LISTED + 1
    assert lines[0] == "2026-12-03 09:12 UTC  info  load 0"
    assert lines[-1] == "and 5 more"
    assert json.loads(digest.payload_json or "")["event_ids"] == [f"e{n}" for n in range(25)]
    one = digest_event("digest-2", "u42", "k", held[:1])
    assert one.title == "1 more k event"
    assert Channel.IN_APP not in HELD_CHANNELS

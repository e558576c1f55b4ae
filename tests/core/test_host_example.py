"""A host application's property test of the decision, exactly as README.md shows it."""

from datetime import datetime

from hypothesis import given

from tidings import Channel, Event, Policy, Preference, Severity, SkipReason, decide
from tidings.testing import aware_datetimes, events, policies, preferences


@given(
    events(severity=Severity.CRITICAL),
    preferences(including=[Channel.EMAIL]),
    aware_datetimes(),
    aware_datetimes(),
    policies(),
)
def test_critical_events_go_by_email_unless_in_cooldown(
    event: Event, row: Preference, last_sent_at: datetime, now: datetime, policy: Policy
) -> None:
    decision = decide(
        event,
        kind_preference=row,
        global_preference=None,
        last_sent_at=last_sent_at,
        now=now,
        policy=policy,
    )
    plan = decision.value_or(None)
    if plan is None:
        assert decision.failure().reason is SkipReason.COOLDOWN
    else:
        assert Channel.EMAIL in plan.channels

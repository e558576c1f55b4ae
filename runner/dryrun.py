"""``tidings explain --user U --kind K --severity S``: what would happen now, recording nothing.

Answers "would this user hear about it?" before an event is sent, against the current
preferences, history and policy, through the same ``core.decide`` the runner uses.
"""

from __future__ import annotations

import attrs
from returns.result import Failure, Result, Success

from core import Event, Policy, Severity, decide_with, explain, outcome_of
from core.decision import DecisionInputs, Plan, Skip
from core.ports import Store
from core.validation import FieldError, InvalidEvent


@attrs.frozen(kw_only=True)
class DryRun:
    outcome: Plan | Skip
    inputs: DecisionInputs
    explanation: str


async def dry_run(
    store: Store, policy: Policy, user_id: str, kind: str, severity: str
) -> Result[DryRun, InvalidEvent]:
    """Decide for a hypothetical event of ``kind`` and ``severity`` to ``user_id``."""
    try:
        level = Severity(severity)
    except ValueError:
        error = FieldError("severity", f"must be one of info, watch, critical, got {severity!r}")
        return Failure(InvalidEvent((error,)))
    inputs, now = await store.decision_inputs(user_id, kind)
    event = Event(
        event_id="dry-run", user_id=user_id, kind=kind, severity=level, title="-", body=""
    )
    outcome = outcome_of(decide_with(event, inputs, now, policy))
    return Success(DryRun(outcome=outcome, inputs=inputs, explanation=explain(outcome)))

"""Comparing decisions whose times may lie in any zone, for the tests of tests/core.

``==`` on aware datetimes compares wall clocks when both share a zone and is false across
zones for a time in a repeated hour (PEP 495), so two outcomes naming the same instants
may compare unequal, or two naming different ones equal. These helpers compare the
instants and, where it matters, the offsets they are shown with.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import attrs

from tidings.core import Plan, Skip


def in_utc(outcome: Plan | Skip) -> Plan | Skip:
    """The outcome with its times in UTC."""
    if isinstance(outcome, Plan):
        return outcome

    def utc(moment: datetime | None) -> datetime | None:
        return None if moment is None else moment.astimezone(UTC)

    return attrs.evolve(
        outcome,
        last_sent_at=utc(outcome.last_sent_at),
        cooldown_ends_at=utc(outcome.cooldown_ends_at),
    )


def shown(outcome: Plan | Skip) -> tuple[Plan | Skip, tuple[timedelta | None, ...]]:
    """The outcome's instants and the UTC offsets its times are shown with."""
    times = () if isinstance(outcome, Plan) else (outcome.last_sent_at, outcome.cooldown_ends_at)
    offsets = tuple(None if moment is None else moment.utcoffset() for moment in times)
    return in_utc(outcome), offsets

"""What the dispatch loop reports as it works: to the run's summary, logs and metrics.

The loop calls one ``DispatchObserver`` at each step; observers only watch, so a slow or
failing one is a bug in it, never a reason to lose work. Each observer is its own
module (summary here, logs, metrics), and ``Observers`` fans out to several.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Protocol

import attrs

from tidings.core import Skip
from tidings.core.records import ChannelOutcome, DeliveryJob, RecordedEvent
from tidings.core.validation import InvalidEvent
from tidings.core.values import Channel


class DispatchObserver(Protocol):
    def accepted(self, count: int) -> None:
        """``count`` claimed events passed validation and were decided."""

    def rejected(self, event_id: str, error: InvalidEvent) -> None: ...

    def decided(self, batch: Sequence[RecordedEvent], seconds: float) -> None:
        """A batch of decisions recorded, in order, in ``seconds`` (load, decide,
        record): observed a batch at a time, as they are made."""

    def attempted(
        self, job: DeliveryJob, outcome: ChannelOutcome, status: str, seconds: float
    ) -> None:
        """One send settled as ``status`` (or ``claim_lost``) after ``seconds``."""


@attrs.frozen(kw_only=True)
class DispatchSummary:
    """What one run did, for the CLI's summary and for tests."""

    notified: int
    skipped: Mapping[str, int]
    rejected: int
    deliveries: Mapping[str, int]


@attrs.define
class Tally:
    """Counts for the run's summary."""

    notified: int = 0
    skipped: Counter[str] = attrs.Factory(Counter)
    rejected_count: int = 0
    deliveries: Counter[str] = attrs.Factory(Counter)

    def accepted(self, count: int) -> None:
        return None

    def rejected(self, event_id: str, error: InvalidEvent) -> None:
        self.rejected_count += 1

    def decided(self, batch: Sequence[RecordedEvent], seconds: float) -> None:
        for recorded in batch:
            outcome = recorded.outcome
            if isinstance(outcome, Skip):
                self.skipped[outcome.reason.value] += 1
                continue
            self.notified += 1
            if Channel.IN_APP in outcome.channels:
                self.deliveries["in_app:delivered"] += 1

    def attempted(
        self, job: DeliveryJob, outcome: ChannelOutcome, status: str, seconds: float
    ) -> None:
        self.deliveries[f"{job.channel.value}:{status}"] += 1

    def summary(self) -> DispatchSummary:
        return DispatchSummary(
            notified=self.notified,
            skipped=dict(self.skipped),
            rejected=self.rejected_count,
            deliveries=dict(self.deliveries),
        )


@attrs.frozen
class Observers:
    """Several observers as one."""

    members: Sequence[DispatchObserver]

    def accepted(self, count: int) -> None:
        for member in self.members:
            member.accepted(count)

    def rejected(self, event_id: str, error: InvalidEvent) -> None:
        for member in self.members:
            member.rejected(event_id, error)

    def decided(self, batch: Sequence[RecordedEvent], seconds: float) -> None:
        for member in self.members:
            member.decided(batch, seconds)

    def attempted(
        self, job: DeliveryJob, outcome: ChannelOutcome, status: str, seconds: float
    ) -> None:
        for member in self.members:
            member.attempted(job, outcome, status, seconds)

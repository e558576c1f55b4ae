"""Prometheus metrics for the dispatch loop, as one more ``DispatchObserver``.

Each observer owns its ``CollectorRegistry`` instead of the process-wide default, so
tests and several dispatchers in one process never collide on metric names. Labels
only ever hold bounded vocabularies (channel, outcome, skip reason): never user or
event ids, addresses or URLs, which would explode the series count and leak data.

Two latencies say how late people hear of things: an event's, from its arrival to its
decision (both times as the store recorded them, so a runner's clock does not skew
it), and a delivery's, from its decision (the notification's creation) to its first
successful send, on the observer's clock. The backlog gauges are the store's, read at
each scrape (``backlog``).
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Sequence
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Histogram

from tidings.core import Skip
from tidings.core.decision import HELD_CHANNELS, Plan, SkipReason
from tidings.core.digest import DIGEST_PREFIX
from tidings.core.records import ChannelOutcome, DeliveryJob, DeliveryStatus, RecordedEvent
from tidings.core.validation import InvalidEvent
from tidings.core.values import Channel
from tidings.runner.clock import system_clock

_OUTCOMES = (*(s.value for s in DeliveryStatus if s is not DeliveryStatus.PENDING), "claim_lost")
"""Every status a send settles as, and ``claim_lost`` when another worker took it over."""

_DELIVERY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
"""Prometheus' default buckets stop at 10 s; a send may take up to its 60 s timeout."""

_LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 43200.0, 86400.0,
)  # fmt: skip
"""From a millisecond (a decision right after arrival) to a day: a backlog, a retry
schedule (``core.retry``: about 18 hours in all) or a night of quiet hours."""

_SENT_CHANNELS: tuple[Channel, ...] = tuple(c for c in Channel if c is not Channel.IN_APP)
"""In-app delivery is the notification row itself: never sent, no delivery latency."""


class MetricsObserver:
    """Counts what the loop does into ``registry``, which the health server exposes.

    Every label combination starts at zero, so a rate over a series that has not moved
    yet reads 0 instead of "no data".
    """

    def __init__(self, clock: Callable[[], datetime] = system_clock) -> None:
        self._clock = clock
        self.registry = CollectorRegistry()
        self._accepted = Counter(
            "tidings_events_accepted",
            "Claimed events that passed validation and were decided.",
            registry=self.registry,
        )
        self._notified = Counter(
            "tidings_events_notified",
            "Events whose decision recorded a notification.",
            registry=self.registry,
        )
        self._skipped = Counter(
            "tidings_events_skipped",
            "Events decided without a notification, by skip reason.",
            ["reason"],
            registry=self.registry,
        )
        self._digests = Counter(
            "tidings_digests",
            "Digests of what a cooldown held back, by outcome (notified or skipped).",
            ["outcome"],
            registry=self.registry,
        )
        self._held = Counter(
            "tidings_deliveries_held",
            "Email and webhook deliveries scheduled for the end of the user's quiet hours.",
            ["channel"],
            registry=self.registry,
        )
        self._rejected = Counter(
            "tidings_events_rejected",
            "Claimed events that failed validation.",
            registry=self.registry,
        )
        self._deliveries = Counter(
            "tidings_deliveries",
            "Deliveries settled, by channel and outcome (in-app counts when recorded).",
            ["channel", "outcome"],
            registry=self.registry,
        )
        self._attempts = Counter(
            "tidings_delivery_attempts",
            "Sends attempted, by channel.",
            ["channel"],
            registry=self.registry,
        )
        self._decision_seconds = Histogram(
            "tidings_decision_seconds",
            "Load-decide-record time of the batch each decision was part of.",
            registry=self.registry,
        )
        self._delivery_seconds = Histogram(
            "tidings_delivery_seconds",
            "Time of one send, by channel.",
            ["channel"],
            buckets=_DELIVERY_BUCKETS,
            registry=self.registry,
        )
        self._event_latency = Histogram(
            "tidings_event_latency_seconds",
            "Time from an event's arrival (stored) to its decision being recorded.",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._delivery_latency = Histogram(
            "tidings_delivery_latency_seconds",
            "Time from a decision (its notification's creation) to the first successful"
            " send, by channel: retries and quiet-hours holds included.",
            ["channel"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        for reason in SkipReason:
            self._skipped.labels(reason=reason.value)
        for channel in _SENT_CHANNELS:
            self._delivery_latency.labels(channel=channel.value)
        for channel in Channel:
            self._attempts.labels(channel=channel.value)
            self._delivery_seconds.labels(channel=channel.value)
            for outcome in _OUTCOMES:
                self._deliveries.labels(channel=channel.value, outcome=outcome)

    def accepted(self, count: int) -> None:
        self._accepted.inc(count)

    def rejected(self, event_id: str, error: InvalidEvent) -> None:
        self._rejected.inc()

    def decided(self, batch: Sequence[RecordedEvent], seconds: float) -> None:
        skipped: collections.Counter[str] = collections.Counter()
        in_app = digests = 0
        for recorded in batch:
            self._decision_seconds.observe(seconds)
            if recorded.enqueued_at is not None and recorded.decided_at is not None:
                # A digest was never enqueued: it has no arrival, and no latency here.
                waited = (recorded.decided_at - recorded.enqueued_at).total_seconds()
                self._event_latency.observe(max(waited, 0.0))
            outcome = recorded.outcome
            if recorded.event_id.startswith(DIGEST_PREFIX):
                # A digest is not an event: counted apart, its deliveries alike.
                self._digests.labels(outcome=_outcome_label(outcome)).inc()
                digests += 1
            elif isinstance(outcome, Skip):
                skipped[outcome.reason.value] += 1
            if isinstance(outcome, Skip):
                continue
            if Channel.IN_APP in outcome.channels:
                in_app += 1
            if outcome.hold is not None:
                for channel in HELD_CHANNELS.intersection(outcome.channels):
                    self._held.labels(channel=channel.value).inc()
        for reason, count in skipped.items():
            self._skipped.labels(reason=reason).inc(count)
        self._notified.inc(len(batch) - digests - skipped.total())
        # In-app delivery is the notification row itself: delivered when recorded,
        # never sent, so it has no attempt and no send time.
        self._deliveries.labels(
            channel=Channel.IN_APP.value, outcome=DeliveryStatus.DELIVERED.value
        ).inc(in_app)

    def attempted(
        self, job: DeliveryJob, outcome: ChannelOutcome, status: str, seconds: float
    ) -> None:
        channel = job.channel.value
        self._attempts.labels(channel=channel).inc()
        self._deliveries.labels(channel=channel, outcome=status).inc()
        self._delivery_seconds.labels(channel=channel).observe(seconds)
        if status == DeliveryStatus.DELIVERED.value:
            # Settled delivered, so the first success: nothing sends a delivered one again.
            since = (self._clock() - job.notification.created_at).total_seconds()
            self._delivery_latency.labels(channel=channel).observe(max(since, 0.0))


def _outcome_label(outcome: Plan | Skip) -> str:
    return "skipped" if isinstance(outcome, Skip) else "notified"

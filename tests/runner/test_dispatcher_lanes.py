"""Lanes: each lane claims and decides on its own, so one lane's flood never holds back
another lane's events."""

from __future__ import annotations

import asyncio
import time
import zlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from tidings.adapters.memory import MemoryStore
from tidings.core import Channel, Event, Severity
from tidings.core.ports import DecideFn
from tidings.core.records import DecidedClaim, RecordedEvent
from tidings.runner.dispatch import Dispatcher, DispatchOptions
from tidings.runner.dispatch.senders import default_senders
from tidings.runner.telemetry.observers import Tally

NOW = datetime(2026, 1, 1, tzinfo=UTC)


class SlowClaims(MemoryStore):
    """Every claim takes 5 ms, as a round trip to a database would."""

    async def decide_claimable(
        self,
        worker_id: str,
        limit: int,
        decide: DecideFn,
        *,
        lane: int = 0,
        lanes: int = 1,
        take: Mapping[Channel, int] | None = None,
    ) -> DecidedClaim:
        await asyncio.sleep(0.005)
        return await super().decide_claimable(
            worker_id, limit, decide, lane=lane, lanes=lanes, take=take
        )


class DecisionTimes(Tally):
    """When each event was decided."""

    def __init__(self) -> None:
        super().__init__()
        self.at: dict[str, float] = {}

    def decided(self, batch: Sequence[RecordedEvent], seconds: float) -> None:
        for recorded in batch:
            self.at[recorded.event_id] = time.monotonic()


def user_in_lane(lane: int, lanes: int) -> str:
    """A user whose key (user, "flood") falls in ``lane``: the memory store splits keys
    by CRC-32 of user and kind."""
    return next(
        f"user{n}" for n in range(1000) if zlib.crc32(f"user{n}\x1fflood".encode()) % lanes == lane
    )


def event(event_id: str, user_id: str) -> Event:
    return Event(
        event_id=event_id, user_id=user_id, kind="flood", severity=Severity.WATCH,
        title="T", body="B",
    )  # fmt: skip


def test_a_flooded_lane_never_holds_back_another_lanes_new_event() -> None:
    store = SlowClaims(clock=lambda: NOW)
    flooding, calm = user_in_lane(0, 2), user_in_lane(1, 2)
    times = DecisionTimes()

    async def scenario() -> float:
        # 200 one-event batches of 5 ms each: a second of work in lane 0.
        await store.enqueue([event(f"flood{n}", flooding) for n in range(200)])
        dispatcher = Dispatcher(
            store,
            default_senders(),
            worker_id="w",
            options=DispatchOptions(workers=2, batch_size=1, poll_interval=0.02),
            clock=lambda: NOW,
            observers=[times],
        )
        running = asyncio.create_task(dispatcher.run(until_idle=True))
        await asyncio.sleep(0.2)  # lane 1 has found nothing and waits
        arrived = time.monotonic()
        await store.enqueue([event("calm", calm)])
        await running
        return arrived

    arrived = asyncio.run(scenario())
    assert times.at["calm"] - arrived < 0.3
    assert times.at["calm"] < times.at["flood199"]

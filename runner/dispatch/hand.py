"""The deliveries a runner holds claimed: how many of each channel, and until when each
claim is surely still its own.

A claim lasts a lease from the moment the store grants or renews it, on the store's
clock. The runner cannot read that clock, but it knows when it asked: the store's
moment came after, so the claim lasts at least until the asking moment plus the lease
on the runner's own monotonic clock (``secured_until``). Only a claim the store
confirms moves it: the one granted by a claim, or a renewal that names the delivery
as still held. A renewal that leaves a delivery out means the claim is lost (taken
over, or settled or handed back meanwhile): this runner never sends it again.

The rules that keep a send inside its claim (``core.records.DEFAULT_LEASE`` is 10 s;
claims are renewed every third of the lease):

- a send starts only if its claim is secured for at least half a lease more, so a
  claim that missed a renewal (a slow or unreachable store) waits for the next one
  before it is sent, instead of racing the lease;
- a send in flight is cut a tenth of a lease before its claim would lapse, unless a
  renewal moves that cut later first (each successful renewal does); a cut send is no
  delivery attempt: it waits for the next renewal and starts again, or is handed back.

With a lease of 10 s a renewal every 3.3 s keeps each claim secured for 6.7 s or more,
well above the 5 s a send needs to start; a store that stops answering stops new sends
within 1.7 s and cuts the last ones 1 s before any other runner may take them over.

The hand is bounded: at most ``per_channel`` deliveries of each channel, counting
those reserved for a claim in progress, so a runner takes no more from the outbox than
it can send soon and leaves the rest to runners with room.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Set

import attrs

from tidings.core.records import DeliveryJob
from tidings.core.values import Channel

SENT_CHANNELS = (Channel.EMAIL, Channel.WEBHOOK)
"""The channels delivered by a sender (in-app is delivered when recorded)."""


@attrs.define
class Claim:
    """One delivery in hand: its job, how long its claim is secured, and its send."""

    job: DeliveryJob
    secured_until: float
    started: bool = False
    """A send is in flight (or its outcome is being settled)."""
    lost: bool = False
    give_up_at: float = math.inf
    """When the send in flight times out on its own (the send timeout)."""
    cut: asyncio.Timeout | None = None
    """The send in flight's deadline: the earlier of ``give_up_at`` and the claim's cut."""


class Hand:
    """The claims one runner holds. Times are the event loop's clock (monotonic)."""

    def __init__(self, *, per_channel: int, lease: float) -> None:
        self._per_channel = per_channel
        self._lease = lease
        self._claims: dict[str, Claim] = {}
        self._held: Counter[Channel] = Counter()
        self._reserved: Counter[Channel] = Counter()
        self._renewal = asyncio.Event()
        self._wanted: set[Channel] = set()
        self.room_freed = asyncio.Event()
        """Set when half a hand of a channel with deliveries left in the outbox is free."""

    def __len__(self) -> int:
        return len(self._claims)

    def room(self, channel: Channel) -> int:
        """How many more deliveries of ``channel`` the runner may claim now."""
        return max(0, self._per_channel - self._held[channel] - self._reserved[channel])

    def reserve(
        self, share: int, channels: Iterable[Channel] = SENT_CHANNELS
    ) -> dict[Channel, int]:
        """Room set aside for one claim in progress: up to a ``share``-th of a full hand
        of each of ``channels`` (lanes claiming side by side split the hand between
        them). Give it back with ``unreserve`` once the claim is held (or failed)."""
        reserved = {
            channel: min(self.room(channel), math.ceil(self._per_channel / share))
            for channel in channels
        }
        self._reserved.update(reserved)
        return reserved

    def unreserve(self, reserved: Mapping[Channel, int]) -> None:
        self._reserved.subtract(reserved)

    def take(self, jobs: Iterable[DeliveryJob], asked_at: float) -> list[DeliveryJob]:
        """Hold the claims the store granted to a call made at ``asked_at``; returns the
        jobs new to the hand (one claimed again after its lease ran out is held once)."""
        new = []
        for job in jobs:
            claim = self._claims.get(job.delivery_id)
            if claim is None:
                self._claims[job.delivery_id] = Claim(job, asked_at + self._lease)
                self._held[job.channel] += 1
                new.append(job)
            else:
                claim.lost = False
                self._secure(claim, asked_at)
        return new

    def claim(self, delivery_id: str) -> Claim:
        return self._claims[delivery_id]

    def ids(self) -> list[str]:
        return list(self._claims)

    def unstarted(self) -> list[str]:
        """The deliveries held whose send has not started: what a stopping runner hands back."""
        return [key for key, claim in self._claims.items() if not claim.started]

    def want(self, channel: Channel, more: bool) -> None:
        """Whether deliveries of ``channel`` are known to wait in the outbox: as half a
        hand of it frees, ``room_freed`` is set."""
        if more:
            self._wanted.add(channel)
        else:
            self._wanted.discard(channel)

    def drop(self, delivery_ids: Iterable[str]) -> None:
        """Forget deliveries: settled, handed back or lost."""
        for delivery_id in delivery_ids:
            claim = self._claims.pop(delivery_id, None)
            if claim is not None:
                channel = claim.job.channel
                self._held[channel] -= 1
                if channel in self._wanted and self._held[channel] * 2 <= self._per_channel:
                    self.room_freed.set()

    def renewed(self, asked_at: float, asked: Collection[str], kept: Set[str]) -> None:
        """A renewal asked at ``asked_at`` for ``asked`` confirmed ``kept``: those are
        secured a lease from then, the others are lost. Wakes whoever waits for it."""
        for delivery_id in asked:
            claim = self._claims.get(delivery_id)
            if claim is None:
                continue
            if delivery_id in kept:
                self._secure(claim, asked_at)
            else:
                claim.lost = True
                _move(claim.cut, -math.inf)
        self._renewal.set()
        self._renewal = asyncio.Event()

    async def next_renewal(self) -> None:
        """Return after the next successful renewal."""
        await self._renewal.wait()

    def sendable(self, claim: Claim, now: float) -> bool:
        """Whether a send may start: the claim is its own and secured for half a lease more."""
        return not claim.lost and claim.secured_until - now >= self._lease / 2

    def cut_at(self, claim: Claim) -> float:
        """When a send in flight must end: its own timeout, or a tenth of a lease before
        its claim could lapse, whichever comes first."""
        return min(claim.give_up_at, claim.secured_until - self._lease / 10)

    def _secure(self, claim: Claim, asked_at: float) -> None:
        claim.secured_until = max(claim.secured_until, asked_at + self._lease)
        _move(claim.cut, self.cut_at(claim))


def _move(cut: asyncio.Timeout | None, when: float) -> None:
    """Move a send's deadline, unless it has none or has already passed."""
    if cut is not None and not cut.expired():
        cut.reschedule(when)

"""The hand: how many deliveries a runner may claim, and when a claim may be sent on.

Times are plain numbers (the event loop's clock in a run), so each rule is checked at
its edges: a send starts only on a claim secured for half a lease more, is cut a tenth
of a lease before the claim could lapse, and a claim a renewal leaves out is lost.
"""

from __future__ import annotations

from datetime import UTC, datetime

from tidings.core import Channel, Severity
from tidings.core.records import DeliveryJob, Notification
from tidings.runner.dispatch.hand import Hand

LEASE = 10.0
NOTIFICATION = Notification(
    id="n1", event_id="e1", user_id="ana", kind="overload", severity=Severity.WATCH,
    title="T", body="B", payload_json=None, created_at=datetime(2026, 1, 1, tzinfo=UTC),
    read_at=None, dispatched_via=(),
)  # fmt: skip


def job(delivery_id: str, channel: Channel = Channel.EMAIL) -> DeliveryJob:
    return DeliveryJob(
        delivery_id=delivery_id, channel=channel, attempts=0, notification=NOTIFICATION
    )


def test_room_is_per_channel_and_reservations_count() -> None:
    hand = Hand(per_channel=4, lease=LEASE)

    reserved = hand.reserve(3)  # three lanes share a hand: ceil(4 / 3) each
    assert reserved == {Channel.EMAIL: 2, Channel.WEBHOOK: 2}
    assert hand.room(Channel.EMAIL) == 2
    assert hand.reserve(1, (Channel.EMAIL,)) == {Channel.EMAIL: 2}
    assert hand.room(Channel.EMAIL) == 0
    hand.unreserve(reserved)

    assert hand.take([job("a"), job("b"), job("w", Channel.WEBHOOK)], asked_at=0.0) == [
        job("a"),
        job("b"),
        job("w", Channel.WEBHOOK),
    ]
    assert (hand.room(Channel.EMAIL), hand.room(Channel.WEBHOOK)) == (0, 3)
    hand.drop(["a", "w", "unknown"])
    assert (hand.room(Channel.EMAIL), hand.room(Channel.WEBHOOK)) == (1, 4)
    assert hand.ids() == ["b"]


def test_a_delivery_claimed_again_is_held_once() -> None:
    hand = Hand(per_channel=4, lease=LEASE)
    hand.take([job("a")], asked_at=0.0)

    assert hand.take([job("a")], asked_at=8.0) == []
    assert len(hand) == 1
    assert hand.claim("a").secured_until == 18.0


def test_a_send_starts_only_on_a_claim_secured_for_half_a_lease() -> None:
    hand = Hand(per_channel=4, lease=LEASE)
    hand.take([job("a")], asked_at=100.0)
    claim = hand.claim("a")

    assert hand.sendable(claim, now=105.0)
    assert not hand.sendable(claim, now=105.1)  # a renewal is late: wait for the next

    hand.renewed(asked_at=104.0, asked=["a"], kept={"a"})
    assert claim.secured_until == 114.0
    assert hand.sendable(claim, now=109.0)
    hand.renewed(asked_at=103.0, asked=["a"], kept={"a"})  # an older answer moves nothing
    assert claim.secured_until == 114.0


def test_a_send_is_cut_a_tenth_of_a_lease_before_its_claim_could_lapse() -> None:
    hand = Hand(per_channel=4, lease=LEASE)
    hand.take([job("a")], asked_at=0.0)
    claim = hand.claim("a")

    claim.give_up_at = 60.0  # a send timeout longer than the lease
    assert hand.cut_at(claim) == 9.0
    hand.renewed(asked_at=3.0, asked=["a"], kept={"a"})
    assert hand.cut_at(claim) == 12.0
    claim.give_up_at = 5.0
    assert hand.cut_at(claim) == 5.0


def test_a_claim_a_renewal_leaves_out_is_lost_for_good() -> None:
    hand = Hand(per_channel=4, lease=LEASE)
    hand.take([job("a"), job("b")], asked_at=0.0)

    hand.renewed(asked_at=2.0, asked=["a", "b"], kept={"a"})

    assert hand.claim("b").lost
    assert not hand.sendable(hand.claim("b"), now=2.0)
    assert hand.sendable(hand.claim("a"), now=2.0)
    assert sorted(hand.unstarted()) == ["a", "b"]
    hand.claim("a").started = True
    assert hand.unstarted() == ["b"]


def test_room_freed_is_signalled_only_for_channels_left_in_the_outbox() -> None:
    hand = Hand(per_channel=4, lease=LEASE)
    hand.take([job(f"e{n}") for n in range(4)], asked_at=0.0)
    hand.take([job(f"w{n}", Channel.WEBHOOK) for n in range(4)], asked_at=0.0)
    hand.want(Channel.EMAIL, more=True)

    hand.drop(["w0", "w1", "w2"])
    assert not hand.room_freed.is_set()
    hand.drop(["e0"])
    assert not hand.room_freed.is_set()  # a quarter of the hand
    hand.drop(["e1"])
    assert hand.room_freed.is_set()  # half of it

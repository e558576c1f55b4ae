"""The webhook sender against a real HTTP receiver on 127.0.0.1.

The receiver verifies every request with the independent ``standardwebhooks``
package, so a signature that only agrees with our own code would fail. It answers
according to the path (``/ok``, ``/gone``, ...). Nothing here sends traffic anywhere
but the loopback interface: other addresses are only ever refused before connecting.
Every test also checks, on teardown, that the secret and the signatures reached no
log record and no outcome.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address

import attrs
import httpx
import pytest
import trustme

from tests.webhook_receiver import SECRET, Receiver
from tidings.adapters.channels.addresses import AddressGuard, IPAddress, parse_allowed_networks
from tidings.adapters.channels.webhook import WebhookSender, parse_retry_after
from tidings.adapters.memory import MemoryStore
from tidings.core.records import (
    ChannelFailed,
    ChannelOutcome,
    ChannelSkipped,
    Delivered,
    DeliveryJob,
    Notification,
    Recipient,
    RecipientChange,
)
from tidings.core.values import Channel, Severity

USER = "u42"
LOOPBACK = parse_allowed_networks("127.0.0.0/8")


def now() -> datetime:
    """Real time: the receiver's verification rejects timestamps five minutes off."""
    return datetime.now(UTC)


def job(delivery_id: str = "d-1", attempts: int = 0) -> DeliveryJob:
    notification = Notification(
        id="n-1",
        event_id="e-1",
        user_id=USER,
        kind="overload",
        severity=Severity.WATCH,
        title="Load high",
        body="Load crossed 0.9 — über the threshold",
        payload_json='{"load": 0.93, "tags": ["a"]}',
        created_at=datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
        read_at=None,
        dispatched_via=(),
    )
    return DeliveryJob(
        delivery_id=delivery_id,
        channel=Channel.WEBHOOK,
        attempts=attempts,
        notification=notification,
    )


@attrs.frozen
class FakeDns(AddressGuard):
    """The guard with a resolver that answers every name with ``answers``, and notes
    the names asked, so tests can use names without real DNS."""

    answers: tuple[str, ...] = ("127.0.0.1",)
    delay: float = 0.0
    asked: list[str] = attrs.Factory(list)

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        self.asked.append(host)
        await asyncio.sleep(self.delay)
        return [ip_address(answer) for answer in self.answers]


# -- the harness -------------------------------------------------------------------

Send = Callable[[DeliveryJob], Awaitable[ChannelOutcome]]


@attrs.define
class Harness:
    """A receiver, a store holding the recipient, and every outcome the tests saw."""

    receiver: Receiver
    store: MemoryStore = attrs.Factory(lambda: MemoryStore(clock=now))
    outcomes: list[ChannelOutcome] = attrs.Factory(list)
    trust: ssl.SSLContext | None = None
    """The client's trust store, for an HTTPS receiver; the sender gets its client."""

    async def point_at(self, url: str | None, secret: str | None = SECRET) -> None:
        await self.store.update_recipient(
            RecipientChange(user_id=USER, webhook_url=url, webhook_secret=secret)
        )

    @asynccontextmanager
    async def sender(
        self, guard: AddressGuard | None = None, total_timeout: float = 3.0
    ) -> AsyncIterator[Send]:
        client = None
        if self.trust is not None:
            client = httpx.AsyncClient(
                verify=self.trust,
                trust_env=False,
                limits=httpx.Limits(max_keepalive_connections=0),
            )
        webhook = WebhookSender(
            self.store,
            guard or AddressGuard(LOOPBACK),
            clock=now,
            connect_timeout=1.0,
            total_timeout=total_timeout,
            client=client,
        )

        async def send(delivery: DeliveryJob) -> ChannelOutcome:
            outcome = await webhook.send(delivery)
            self.outcomes.append(outcome)
            return outcome

        try:
            yield send
        finally:
            await webhook.aclose()
            if client is not None:
                await client.aclose()

    async def send_to(self, url: str, guard: AddressGuard | None = None) -> ChannelOutcome:
        await self.point_at(url)
        async with self.sender(guard) as send:
            return await send(job())


@contextmanager
def checked(harness: Harness, caplog: pytest.LogCaptureFixture) -> Iterator[Harness]:
    """Run the receiver; afterwards, check no secret or signature was said anywhere."""
    caplog.set_level(logging.DEBUG)
    receiver = harness.receiver
    receiver.start()
    try:
        yield harness
    finally:
        receiver.stop()
    signatures = [r.headers.get("webhook-signature", "") for r in receiver.received]
    secrets = [SECRET, SECRET.removeprefix("whsec_")]
    secrets += [part for s in signatures for part in (s, s.removeprefix("v1,")) if part]
    records = caplog.get_records("call")  # caplog.records would be the teardown's
    assert sum(record.name == "tidings.webhook" for record in records) >= len(harness.outcomes)
    said = [record.getMessage() for record in records]
    said += [o.error for o in harness.outcomes if isinstance(o, ChannelFailed)]
    said += [o.reason for o in harness.outcomes if isinstance(o, ChannelSkipped)]
    leaks = [secret for secret in secrets for text in said if secret in text]
    assert not leaks, "a secret or signature reached a log line or an outcome"


@pytest.fixture
def harness(caplog: pytest.LogCaptureFixture) -> Iterator[Harness]:
    with checked(Harness(Receiver()), caplog) as ready:
        yield ready


@pytest.fixture
def tls_harness(caplog: pytest.LogCaptureFixture) -> Iterator[Harness]:
    """An HTTPS receiver whose certificate names ``hooks.example`` only."""
    authority = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("hooks.example").configure_cert(server)
    trust = ssl.create_default_context()
    authority.configure_trust(trust)
    with checked(Harness(Receiver(tls=server), trust=trust), caplog) as ready:
        yield ready


def failed(outcome: ChannelOutcome) -> ChannelFailed:
    assert isinstance(outcome, ChannelFailed), outcome
    return outcome


# -- delivery ----------------------------------------------------------------------


def test_a_delivery_verifies_with_standard_webhooks_and_keeps_its_id_on_retry(
    harness: Harness,
) -> None:
    async def scenario() -> list[ChannelOutcome]:
        await harness.point_at(harness.receiver.url("/ok"))
        async with harness.sender() as send:
            return [await send(job("d-7")), await send(job("d-7", attempts=1))]

    assert asyncio.run(scenario()) == [Delivered(), Delivered()]
    first, retry = harness.receiver.received
    assert first.verified == {
        "type": "overload",
        "id": "n-1",
        "event_id": "e-1",
        "user_id": USER,
        "kind": "overload",
        "severity": "watch",
        "title": "Load high",
        "body": "Load crossed 0.9 — über the threshold",
        "created_at": "2024-05-01T12:00:00+00:00",
        "payload": {"load": 0.93, "tags": ["a"]},
    }
    assert retry.verified == first.verified
    assert first.headers["webhook-id"] == retry.headers["webhook-id"] == "d-7"
    assert first.headers["content-type"] == "application/json"
    assert b'"payload":{"load": 0.93, "tags": ["a"]}' in first.body  # as stored


def test_a_name_is_resolved_once_and_the_checked_address_is_connected_to(
    harness: Harness,
) -> None:
    dns = FakeDns(LOOPBACK, answers=("127.0.0.2", "127.0.0.1"))  # nobody listens on .2

    outcome = asyncio.run(harness.send_to(harness.receiver.url("/ok", host="hooks.example"), dns))

    assert outcome == Delivered()
    assert dns.asked == ["hooks.example"]
    (request,) = harness.receiver.received
    assert request.headers["host"] == f"hooks.example:{harness.receiver.port}"
    assert request.verified is not None


def test_https_verifies_the_certificate_for_the_name_not_the_address(
    tls_harness: Harness,
) -> None:
    receiver = tls_harness.receiver
    named_url = receiver.url("/ok", host="hooks.example")
    named = asyncio.run(tls_harness.send_to(named_url, FakeDns(LOOPBACK)))

    assert named == Delivered()
    (request,) = receiver.received
    assert request.verified is not None

    other_url = receiver.url("/ok", host="other.example")
    other = asyncio.run(tls_harness.send_to(other_url, FakeDns(LOOPBACK)))

    assert failed(other).retryable
    assert "certificate" in failed(other).error
    assert len(receiver.received) == 1


# -- answers -----------------------------------------------------------------------


def test_410_disables_the_endpoint_and_later_sends_are_skipped(harness: Harness) -> None:
    async def scenario() -> tuple[ChannelOutcome, Recipient | None, ChannelOutcome]:
        await harness.point_at(harness.receiver.url("/gone"))
        async with harness.sender() as send:
            gone = await send(job("d-1"))
            recipient = await harness.store.recipient(USER)
            later = await send(job("d-2"))
        return gone, recipient, later

    gone, recipient, later = asyncio.run(scenario())

    assert not failed(gone).retryable
    assert recipient is not None
    assert recipient.webhook_disabled is not None
    assert recipient.webhook_disabled.startswith("410 Gone at ")
    assert later == ChannelSkipped(f"webhook disabled: {recipient.webhook_disabled}")
    assert harness.receiver.paths() == ["/gone"]


def test_429_is_retried_after_what_the_receiver_asks(harness: Harness) -> None:
    outcome = failed(asyncio.run(harness.send_to(harness.receiver.url("/busy"))))

    assert outcome.retryable
    assert outcome.retry_after == timedelta(seconds=7)


def test_500_is_retried(harness: Harness) -> None:
    outcome = failed(asyncio.run(harness.send_to(harness.receiver.url("/broken"))))

    assert outcome.retryable
    assert outcome.retry_after is None


def test_a_slow_receiver_times_out_and_is_retried(harness: Harness) -> None:
    async def scenario() -> ChannelOutcome:
        await harness.point_at(harness.receiver.url("/slow"))
        async with harness.sender(total_timeout=0.3) as send:
            return await send(job())

    started = time.monotonic()
    outcome = failed(asyncio.run(scenario()))

    assert time.monotonic() - started < 2
    assert outcome.retryable
    assert "timed out" in outcome.error


def test_a_slow_resolver_counts_against_the_total_timeout(harness: Harness) -> None:
    async def scenario() -> ChannelOutcome:
        await harness.point_at(harness.receiver.url("/ok", host="hooks.example"))
        async with harness.sender(FakeDns(LOOPBACK, delay=5), total_timeout=0.3) as send:
            return await send(job())

    started = time.monotonic()
    outcome = failed(asyncio.run(scenario()))

    assert time.monotonic() - started < 2
    assert outcome.retryable
    assert harness.receiver.received == []


def test_a_redirect_is_not_followed(harness: Harness) -> None:
    outcome = failed(asyncio.run(harness.send_to(harness.receiver.url("/redirect"))))

    assert not outcome.retryable
    assert "redirect not followed (3xx)" in outcome.error
    assert harness.receiver.paths() == ["/redirect"]


def test_a_dropped_connection_is_retried(harness: Harness) -> None:
    outcome = failed(asyncio.run(harness.send_to(harness.receiver.url("/drop"))))

    assert outcome.retryable
    assert harness.receiver.paths() == ["/drop"]


# -- SSRF --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "localhost", "[::ffff:127.0.0.1]"], ids=["ip", "name", "mapped"]
)
def test_loopback_is_refused_without_a_request_unless_allow_listed(
    harness: Harness, host: str
) -> None:
    refused = failed(
        asyncio.run(harness.send_to(harness.receiver.url("/ok", host=host), AddressGuard()))
    )

    assert not refused.retryable
    assert refused.error.startswith("destination refused: ")
    assert "loopback" in refused.error
    assert harness.receiver.received == []

    allowed = asyncio.run(harness.send_to(harness.receiver.url("/ok"), AddressGuard(LOOPBACK)))

    assert allowed == Delivered()
    (request,) = harness.receiver.received
    assert request.verified is not None


def test_one_refused_address_refuses_the_destination(harness: Harness) -> None:
    # The allowed address comes first: were the rule broken, the receiver would hear.
    dns = FakeDns(LOOPBACK, answers=("127.0.0.1", "10.0.0.1"))
    url = harness.receiver.url("/ok", host="hooks.example")

    outcome = failed(asyncio.run(harness.send_to(url, dns)))

    assert not outcome.retryable
    assert outcome.error == "destination refused: 10.0.0.1 is private"
    assert harness.receiver.received == []


# -- recipients and secrets ----------------------------------------------------------


def test_without_a_url_the_channel_is_skipped(harness: Harness) -> None:
    async def scenario() -> list[ChannelOutcome]:
        async with harness.sender() as send:
            nobody = await send(job())
            await harness.point_at(None)
            return [nobody, await send(job())]

    assert asyncio.run(scenario()) == [ChannelSkipped("no webhook url")] * 2


@pytest.mark.parametrize(
    "secret",
    [None, "plain-secret-value", "whsec_not*base64!", "whsec_"],
    ids=["missing", "no-prefix", "not-base64", "empty"],
)
def test_a_bad_secret_fails_for_good_without_echoing_it(
    harness: Harness, secret: str | None
) -> None:
    async def scenario() -> tuple[ChannelOutcome, Recipient | None]:
        await harness.point_at(harness.receiver.url("/ok"), secret=secret)
        async with harness.sender() as send:
            return await send(job()), await harness.store.recipient(USER)

    outcome, recipient = asyncio.run(scenario())

    assert not failed(outcome).retryable
    hidden = (secret or "").removeprefix("whsec_")
    assert not hidden or hidden not in failed(outcome).error
    assert not hidden or hidden not in repr(recipient)
    assert harness.receiver.received == []


def test_reprs_do_not_show_the_secret(harness: Harness) -> None:
    async def scenario() -> tuple[str, str]:
        await harness.point_at(harness.receiver.url("/ok"))
        webhook = WebhookSender(harness.store, AddressGuard(LOOPBACK), clock=now)
        await webhook.send(job())
        await webhook.aclose()
        return repr(webhook), repr(await harness.store.recipient(USER))

    for text in asyncio.run(scenario()):
        assert SECRET.removeprefix("whsec_") not in text


# -- Retry-After ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "wait"),
    [
        ("7", timedelta(seconds=7)),
        ("Wed, 21 Oct 2015 07:28:00 GMT", timedelta(seconds=60)),
        ("Wed, 21 Oct 2015 07:00:00 GMT", timedelta(0)),
        ("99999999999999999999", timedelta(days=1)),
        ("soon", None),
        (None, None),
    ],
)
def test_retry_after_is_read_relative_to_the_clock(
    header: str | None, wait: timedelta | None
) -> None:
    clock = datetime(2015, 10, 21, 7, 27, tzinfo=UTC)

    assert parse_retry_after(header, clock) == wait

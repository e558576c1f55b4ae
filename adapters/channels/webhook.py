"""The webhook channel: a signed JSON POST to each recipient's own endpoint.

Signed per Standard Webhooks v1 so receivers can verify with any of its libraries;
``webhook-id`` is the delivery id, stable across retries, so an at-least-once
delivery can be deduplicated. The URL comes from whoever edits recipients, so the
destination passes the SSRF guard first, and the request goes to the very address
that was checked (with the original Host header and TLS name), never to a name
resolved again later. Every expected failure comes back as a ``ChannelFailed`` that
says whether retrying can help; the secret and the signature appear in none of them.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import email.utils
import hashlib
import hmac
import ipaddress
import json
import logging
import ssl
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import attrs
import httpx

from tidings.adapters.channels.addresses import AddressGuard, IPAddress
from tidings.core.contacts import WEBHOOK_SECRET_PREFIX, webhook_signing_key
from tidings.core.ports import WebhookDirectory
from tidings.core.records import (
    ChannelFailed,
    ChannelOutcome,
    ChannelSkipped,
    Delivered,
    DeliveryJob,
    Notification,
)

log = logging.getLogger("tidings.webhook")

MAX_RETRY_AFTER = timedelta(days=1)
"""The longest ``Retry-After`` honoured, so a receiver cannot park deliveries forever."""

_DEFAULT_PORTS = {"http": 80, "https": 443}


def webhook_body(notification: Notification) -> bytes:
    """The JSON document sent (and signed), compact.

    The payload is spliced in as the stored JSON text (validation proved it is a JSON
    object) rather than re-encoded, so the receiver gets the producer's exact bytes.
    """
    head = {
        "type": notification.kind,
        "id": notification.id,
        "event_id": notification.event_id,
        "user_id": notification.user_id,
        "kind": notification.kind,
        "severity": notification.severity.value,
        "title": notification.title,
        "body": notification.body,
        "created_at": notification.created_at.isoformat(),
    }
    text = json.dumps(head, ensure_ascii=False, separators=(",", ":"))
    payload = notification.payload_json if notification.payload_json is not None else "null"
    return f'{text[:-1]},"payload":{payload}}}'.encode()


def sign(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """The Standard Webhooks v1 signature of exactly ``body``."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def parse_retry_after(value: str | None, now: datetime) -> timedelta | None:
    """A ``Retry-After`` header (delta-seconds or an HTTP-date) as a wait from ``now``,
    clamped to [0, MAX_RETRY_AFTER]; None when absent or unreadable."""
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        seconds = float(min(int(text), int(MAX_RETRY_AFTER.total_seconds())))
    else:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:  # "-0000": UTC by RFC 5322
            when = when.replace(tzinfo=UTC)
        seconds = (when - now).total_seconds()
    return min(max(timedelta(seconds=seconds), timedelta(0)), MAX_RETRY_AFTER)


def _outcome(status: int, retry_after: timedelta | None) -> ChannelOutcome:
    """What an answer other than 410 means: 2xx delivered; 429 and 5xx worth retrying."""
    if 200 <= status < 300:
        return Delivered()
    if 300 <= status < 400:
        return _refused(f"redirect not followed (3xx): HTTP {status}")
    if status == 429 or status >= 500:
        return _retry(f"HTTP {status}", retry_after)
    return _refused(f"HTTP {status}")


def _refused(error: str) -> ChannelFailed:
    return ChannelFailed(error=error, retryable=False)


def _retry(error: str, retry_after: timedelta | None = None) -> ChannelFailed:
    return ChannelFailed(error=error, retryable=True, retry_after=retry_after)


@attrs.frozen
class _Destination:
    """A webhook URL whose addresses passed the guard, in the order to try them."""

    url: httpx.URL
    host: str
    addresses: tuple[IPAddress, ...]

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.url.port is None else f"{host}:{self.url.port}"

    def url_for(self, address: IPAddress) -> httpx.URL:
        return self.url.copy_with(host=str(address))

    @property
    def extensions(self) -> dict[str, object]:
        """For https, verify the certificate against the name, not the address."""
        return {"sni_hostname": self.host} if self.url.scheme == "https" else {}


class WebhookSender:
    """Sends webhook deliveries. ``clock`` stamps signatures and reads Retry-After dates.

    Without ``client``, the sender makes its own and closes it in ``aclose``: it
    ignores proxy settings in the environment (a proxy would connect elsewhere than
    the checked address) and keeps no idle connections (a TLS connection verified for
    one name must not carry a request for another name on the same address), and it
    verifies certificates with ``tls_context`` when given (the runner's, which adds a
    private CA to the default ones: see ``runner/dispatch/senders.py``). A supplied client
    should be configured the same way, trust included.
    """

    def __init__(
        self,
        directory: WebhookDirectory,
        guard: AddressGuard,
        *,
        clock: Callable[[], datetime],
        connect_timeout: float = 5,
        total_timeout: float = 15,
        client: httpx.AsyncClient | None = None,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self._directory = directory
        self._guard = guard
        self._clock = clock
        self._total_timeout = total_timeout
        self._timeout = httpx.Timeout(total_timeout, connect=connect_timeout)
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(
            timeout=self._timeout,
            follow_redirects=False,
            trust_env=False,
            verify=True if tls_context is None else tls_context,
            limits=httpx.Limits(max_keepalive_connections=0),
        )

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def send(self, job: DeliveryJob) -> ChannelOutcome:
        outcome = await self._attempt(job)
        log.debug("webhook delivery %s: %s", job.delivery_id, outcome)
        return outcome

    async def _attempt(self, job: DeliveryJob) -> ChannelOutcome:
        recipient = await self._directory.recipient(job.notification.user_id)
        if recipient is None or not recipient.webhook_url:
            return ChannelSkipped("no webhook url")
        if recipient.webhook_disabled is not None:
            return ChannelSkipped(f"webhook disabled: {recipient.webhook_disabled}")
        if not recipient.webhook_secret:
            return _refused("webhook secret missing")
        key = webhook_signing_key(recipient.webhook_secret)
        if key is None:
            return _refused(f"webhook secret is not {WEBHOOK_SECRET_PREFIX} followed by base64")
        return await self._deliver(job, recipient.webhook_url, key)

    async def _deliver(self, job: DeliveryJob, url: str, key: bytes) -> ChannelOutcome:
        try:
            async with asyncio.timeout(self._total_timeout):
                answer = await self._reach(job, url, key)
        except TimeoutError:
            return _retry(f"timed out ({self._total_timeout:g} s total)")
        if isinstance(answer, ChannelFailed):
            return answer
        status, retry_after = answer
        if status == 410:
            reason = f"410 Gone at {self._clock().isoformat()}"
            await self._directory.disable_webhook(job.notification.user_id, url, reason)
            return _refused(f"{reason}; webhook disabled")
        return _outcome(status, retry_after)

    async def _reach(
        self, job: DeliveryJob, url: str, key: bytes
    ) -> tuple[int, timedelta | None] | ChannelFailed:
        """Check the destination, then POST: all that the total timeout bounds, so a
        slow resolver cannot hold a send either."""
        destination = await self._destination(url)
        if isinstance(destination, ChannelFailed):
            return destination
        return await self._post(destination, job.delivery_id, key, webhook_body(job.notification))

    async def _destination(self, raw_url: str) -> _Destination | ChannelFailed:
        """Parse the URL and check every address it leads to, before any connection."""
        try:
            url = httpx.URL(raw_url)
        except httpx.InvalidURL:
            return _refused("webhook url is not a valid URL")
        if url.scheme not in _DEFAULT_PORTS or not url.raw_host:
            return _refused("webhook url is not an http(s) URL with a host")
        host = url.raw_host.decode("ascii")
        try:
            addresses = [ipaddress.ip_address(host)]
        except ValueError:
            try:
                addresses = await self._guard.resolve(host, url.port or _DEFAULT_PORTS[url.scheme])
            except UnicodeError:
                return _refused(f"webhook url host {host!r} is not a valid name")
            except OSError as error:
                return _retry(f"cannot resolve {host}: {error}")
        refusals = [reason for address in addresses if (reason := self._guard.refusal(address))]
        if not addresses:
            refusals.append(f"{host} has no address")
        if refusals:
            return _refused(f"destination refused: {'; '.join(refusals)}")
        return _Destination(url=url, host=host, addresses=tuple(addresses))

    async def _post(
        self, destination: _Destination, delivery_id: str, key: bytes, body: bytes
    ) -> tuple[int, timedelta | None] | ChannelFailed:
        """Sign and POST ``body``: the status and Retry-After, or why there is none."""
        now = self._clock()
        timestamp = int(now.timestamp())
        headers = {
            "host": destination.host_header,
            "content-type": "application/json",
            "user-agent": "tidings-webhook",
            "webhook-id": delivery_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(key, delivery_id, timestamp, body),
        }
        try:
            status, retry_after = await self._exchange(destination, headers, body)
        except httpx.TimeoutException as error:
            return _retry(f"timed out ({type(error).__name__})")
        except httpx.ConnectError as error:
            return _retry(f"connection to {destination.host} failed: {error}")
        except (httpx.NetworkError, httpx.RemoteProtocolError) as error:
            return _retry(f"connection dropped ({type(error).__name__})")
        return status, parse_retry_after(retry_after, now)

    async def _exchange(
        self, destination: _Destination, headers: dict[str, str], body: bytes
    ) -> tuple[int, str | None]:
        """POST to each checked address until one connects: the status and Retry-After.

        The response body is never read: only its status matters, and a hostile
        receiver could make it endless.
        """
        *others, last = destination.addresses
        for address in others:
            with contextlib.suppress(httpx.ConnectError):
                return await self._request(destination, address, headers, body)
        return await self._request(destination, last, headers, body)

    async def _request(
        self, destination: _Destination, address: IPAddress, headers: dict[str, str], body: bytes
    ) -> tuple[int, str | None]:
        async with self._client.stream(
            "POST",
            destination.url_for(address),
            content=body,
            headers=headers,
            follow_redirects=False,
            timeout=self._timeout,
            extensions=destination.extensions,
        ) as response:
            return response.status_code, response.headers.get("retry-after")

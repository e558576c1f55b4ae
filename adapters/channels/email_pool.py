"""A small pool of SMTP connections to the relay, each carrying many messages.

Opening a connection costs the greeting, EHLO, a TLS handshake (implicit, or STARTTLS
and EHLO again) and AUTH: more round trips and far more CPU than one message. The pool
pays that once per connection. At most ``pool_size`` connections are open; a send
waits for a free one. A connection is reused with RSET first, which also shows that
the session is still alive (a relay that dropped it or answers 421 gets a new
connection, and the message goes over that one: nothing of it had been sent). It is
closed after ``max_messages_per_connection`` messages, after ``idle_seconds`` unused
(on a timer, and checked again before reuse), after any failure that leaves the
session in doubt (a lost connection, a timeout, a 421, a cancelled send), and when
the sender closes.

Failures stay per message: a reply to one message (a 5xx to its RCPT, a 4xx to its
DATA) fails that message alone and the connection carries the next one; a broken
connection fails only the message in flight on it. TLS and AUTH run once per
connection and as configured: the TLS mode (STARTTLS required, never skipped, when
asked for), the trust store the sender was given, AUTH only with a username (and a
config that would send it in plain text is refused before any sender sees it).

Every open connection is either idle here or held by a send (or a closing task)
that owns one of the ``pool_size`` slots, which is what bounds them.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Coroutine
from email.message import EmailMessage
from typing import Any

import aiosmtplib

from tidings.adapters.channels.smtp_config import SmtpConfig

QUIT_SECONDS = 5.0
"""The longest a connection being closed waits for the relay's answer to QUIT."""
CLOSE_SECONDS = 1.0
"""The longest it then waits for the socket to be closed (TLS closes both ways)."""
CLOSE_POLL_SECONDS = 0.005


class _Connection:
    """One open session with the relay: its client, how many messages it carried,
    since when it is idle (the loop's clock) and the timer that closes it then."""

    __slots__ = ("client", "idle_since", "messages", "timer")

    def __init__(self, client: aiosmtplib.SMTP) -> None:
        self.client = client
        self.messages = 0
        self.idle_since = 0.0
        self.timer: asyncio.TimerHandle | None = None

    def stop_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


class SmtpPool:
    """Connections to the relay of ``config``; ``send`` submits one message."""

    def __init__(self, config: SmtpConfig, *, tls_context: ssl.SSLContext | None) -> None:
        self._config = config
        self._tls_context = tls_context
        self._slots = asyncio.Semaphore(config.pool_size)
        self._idle: list[_Connection] = []  # the most recently used last
        self._expiring: set[asyncio.Task[None]] = set()  # idle timers that went off
        self._closing: set[asyncio.Task[None]] = set()  # QUITs holding a slot
        self._closed = False

    async def send(self, message: EmailMessage, *, sender: str, recipient: str) -> None:
        """Submit ``message`` from ``sender`` to ``recipient`` over a pooled connection.

        Raises what aiosmtplib raises (a reply, a lost connection, a timeout), for this
        message only: the connection goes back to the pool when its session is sound,
        and is closed when not.
        """
        await self._slots.acquire()
        connection: _Connection | None = None
        try:
            connection = await self._usable()
            connection.messages += 1
            await connection.client.send_message(message, sender=sender, recipients=[recipient])
        except BaseException as error:
            self._give_back(connection, sound=_session_sound(error, connection))
            raise
        self._give_back(connection, sound=True)

    async def aclose(self) -> None:
        """Close the idle connections (QUIT, then the socket) and wait for those being
        closed. A send still in flight closes its connection when it ends."""
        self._closed = True
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.stop_timer()
        for expiring in self._expiring:
            expiring.cancel()  # what they would close is in ``idle``, or already closed
        await asyncio.gather(
            *(_quit(connection) for connection in idle),
            *self._expiring,
            *self._closing,
            return_exceptions=True,
        )

    async def _usable(self) -> _Connection:
        """The most recently used idle connection, once an RSET shows it alive;
        otherwise a new one. At most one RSET fails per send (a relay that stopped
        answering costs one timeout, not one per idle connection). Called holding a
        slot."""
        loop = asyncio.get_running_loop()
        while self._idle:
            connection = self._idle.pop()
            connection.stop_timer()
            if not connection.client.is_connected:
                connection.client.close()  # the relay closed it while idle
                continue
            if loop.time() - connection.idle_since >= self._config.idle_seconds:
                await _quit(connection)  # its timer has not run yet: the loop was busy
                continue
            try:
                await connection.client.rset()
            except (aiosmtplib.SMTPException, OSError):
                connection.client.close()  # gone, or no longer willing: a new one
                break
            except BaseException:
                connection.client.close()
                raise
            return connection
        return await self._open()

    async def _open(self) -> _Connection:
        """A new session: connected, TLS as configured, AUTH when a username is set.
        aiosmtplib closes the socket itself when any of that fails or is cancelled."""
        config = self._config
        client = aiosmtplib.SMTP(
            hostname=config.host,
            port=config.port,
            username=config.username,
            password=config.password if config.username else None,
            use_tls=config.tls_mode == "implicit",
            start_tls=config.tls_mode == "starttls",
            tls_context=None if config.tls_mode == "none" else self._tls_context,
            timeout=config.timeout_seconds,
        )
        await client.connect()
        return _Connection(client)

    def _give_back(self, connection: _Connection | None, *, sound: bool) -> None:
        """Return ``connection`` and its slot without waiting (so a cancelled send can
        too): to the idle list, or closed. A connection that is still fine but done
        (its message count reached, the pool closed) QUITs in a task that keeps the slot
        until the socket is closed."""
        if connection is None or not connection.client.is_connected or not sound:
            if connection is not None:
                connection.client.close()
            self._slots.release()
            return
        if self._closed or connection.messages >= self._config.max_messages_per_connection:
            _track(self._closing, self._quit_then_release(connection))
            return
        loop = asyncio.get_running_loop()
        connection.idle_since = loop.time()
        connection.timer = loop.call_later(self._config.idle_seconds, self._expire, connection)
        self._idle.append(connection)
        self._slots.release()

    def _expire(self, connection: _Connection) -> None:
        """The idle timer: close ``connection`` if it is still idle once a slot is free."""
        connection.timer = None
        if connection in self._idle:
            _track(self._expiring, self._close_if_idle(connection))

    async def _close_if_idle(self, connection: _Connection) -> None:
        async with self._slots:
            if connection in self._idle:  # not taken by a send meanwhile
                self._idle.remove(connection)
                await _quit(connection)

    async def _quit_then_release(self, connection: _Connection) -> None:
        try:
            await _quit(connection)
        finally:
            self._slots.release()


def _track(tasks: set[asyncio.Task[None]], work: Coroutine[Any, Any, None]) -> None:
    """Run ``work`` in a task held in ``tasks`` until it ends (``aclose`` awaits them)."""
    task = asyncio.get_running_loop().create_task(work)
    tasks.add(task)
    task.add_done_callback(tasks.discard)


async def _quit(connection: _Connection) -> None:
    """Say QUIT if the session is still open, close the socket whatever happens, and
    wait (briefly) until it is closed: over TLS that takes a close_notify each way,
    which a loop about to stop would never finish, leaving the socket open."""
    client = connection.client
    protocol = client.protocol
    try:
        if client.is_connected:
            with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                await client.quit(timeout=QUIT_SECONDS)
    finally:
        client.close()
    # aiosmtplib has no wait for the close; its protocol drops the transport once the
    # connection is lost.
    for _ in range(int(CLOSE_SECONDS / CLOSE_POLL_SECONDS)):
        if protocol is None or protocol.transport is None:
            return
        await asyncio.sleep(CLOSE_POLL_SECONDS)


def _session_sound(error: BaseException, connection: _Connection | None) -> bool:
    """Whether the session survives ``error``: only a reply refusing this message
    (aiosmtplib has reset the envelope after it). A 421 reply closed the connection
    already; anything else (a lost connection, a timeout, a cancelled send) leaves the
    session in an unknown state."""
    if connection is None or not connection.client.is_connected:
        return False
    return isinstance(error, aiosmtplib.SMTPResponseException | aiosmtplib.SMTPRecipientsRefused)

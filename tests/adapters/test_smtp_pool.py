"""The email sender's connection pool against a real SMTP server: aiosmtpd on 127.0.0.1.

The server counts what a client cannot fake: connections opened and open at once (its
protocol's connection_made and connection_lost), and per connection (the client's
port) each message, RSET, STARTTLS, AUTH and QUIT. It can answer MAIL or RSET with a
421, refuse a recipient, drop the connection in the middle of a message, drop idle
connections itself, or take its time over DATA. Each scenario runs in one event loop
with a fresh sender, closed at the end as the runner closes it.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult

from tests.adapters.conftest import START
from tests.smtp_server import HOST, Mailbox, free_port
from tidings.adapters.channels.email import EmailSender
from tidings.adapters.channels.smtp_config import SmtpConfig, smtp_config_from_environment
from tidings.adapters.memory import MemoryStore
from tidings.core import Channel, Severity
from tidings.core.records import (
    ChannelFailed,
    ChannelOutcome,
    Delivered,
    DeliveryJob,
    Notification,
    RecipientChange,
)
from tidings.testing import FakeClock

FROM = "alerts@tidings.example"
USERNAME = "mailer"
PASSWORD = "pa55-Wörd-s3cret"
REFUSED = "nobody@example.test"
DROPPED = "drop@example.test"


class Tally:
    """What the server saw, written from its own thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: set[int] = set()
        self.opened = 0
        self.peak = 0

    def connected(self, connection: int) -> None:
        with self._lock:
            self._open.add(connection)
            self.opened += 1
            self.peak = max(self.peak, len(self._open))

    def lost(self, connection: int) -> None:
        with self._lock:
            self._open.discard(connection)

    @property
    def open(self) -> int:
        with self._lock:
            return len(self._open)

    def forget(self) -> None:
        """Start counting afresh (once the controller's own start-up probe is gone)."""
        assert eventually(lambda: self.open == 0)
        with self._lock:
            self.opened = self.peak = 0


class CountingSMTP(SMTP):
    """aiosmtpd's protocol, telling ``tally`` when a connection opens and closes (a
    STARTTLS calls connection_made again, with the TLS transport: not a new one)."""

    def __init__(self, handler: Any, *, tally: Tally, **parameters: Any) -> None:
        super().__init__(handler, **parameters)
        self._tally = tally

    def connection_made(self, transport: Any) -> None:
        upgrade = getattr(self, "_original_transport", None) is not None
        super().connection_made(transport)
        if not upgrade:
            self._tally.connected(id(self))

    def connection_lost(self, error: Exception | None) -> None:
        super().connection_lost(error)
        self._tally.lost(id(self))


class CountingController(Controller):
    def __init__(self, handler: Any, tally: Tally, **parameters: Any) -> None:
        super().__init__(handler, **parameters)
        self._tally = tally

    def factory(self) -> CountingSMTP:
        return CountingSMTP(self.handler, tally=self._tally, **self.SMTP_kwargs)


class Relay(Mailbox):
    """A mailbox that notes the connection (the client's port) of each message, RSET,
    STARTTLS and QUIT, and when a DATA first started; answers MAIL and RSET from
    scripts (None: as usual); refuses ``REFUSED``; drops the connection on a message
    to ``DROPPED``; waits ``delay`` seconds before accepting a message."""

    def __init__(
        self,
        *,
        mail_replies: tuple[str | None, ...] = (),
        rset_replies: tuple[str | None, ...] = (),
        delay: float = 0.0,
    ) -> None:
        super().__init__()
        self._mail_replies = list(mail_replies)
        self._rset_replies = list(rset_replies)
        self._delay = delay
        self.messages: list[int] = []
        self.rsets: list[int] = []
        self.starttls: list[int] = []
        self.quits: list[int] = []
        self.data_started = threading.Event()

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        reply = self._mail_replies.pop(0) if self._mail_replies else None
        if reply is not None:
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address == REFUSED:
            return "550 5.1.1 no such user"
        return await super().handle_RCPT(server, session, envelope, address, options)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if DROPPED in envelope.rcpt_tos:
            server.transport.close()
            return "250 never heard"
        self.data_started.set()
        await asyncio.sleep(self._delay)
        self.messages.append(session.peer[1])
        return await super().handle_DATA(server, session, envelope)

    async def handle_RSET(self, server: Any, session: Any, envelope: Any) -> str:
        self.rsets.append(session.peer[1])
        reply = self._rset_replies.pop(0) if self._rset_replies else None
        return reply or "250 OK"

    def handle_STARTTLS(self, server: Any, session: Any, envelope: Any) -> bool:
        self.starttls.append(session.peer[1])
        return True

    async def handle_QUIT(self, server: Any, session: Any, envelope: Any) -> str:
        self.quits.append(session.peer[1])
        return "221 Bye"


class Credentials:
    """An aiosmtpd authenticator for one user and password; notes each AUTH."""

    def __init__(self) -> None:
        self.logins: list[int] = []

    def __call__(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> Any:
        self.logins.append(session.peer[1])
        valid = auth_data.login == USERNAME.encode() and auth_data.password == PASSWORD.encode()
        return AuthResult(success=valid, handled=False)


@attrs.frozen
class Server:
    port: int
    relay: Relay
    tally: Tally


StartRelay = Callable[..., Server]


@pytest.fixture
def start_relay() -> Iterator[StartRelay]:
    """Start counting aiosmtpd servers on free loopback ports; all stop after the test."""
    controllers: list[Any] = []

    def start(relay: Relay | None = None, **parameters: Any) -> Server:
        server = Server(free_port(), relay or Relay(), Tally())
        controller = CountingController(
            server.relay,
            server.tally,
            hostname=HOST,
            port=server.port,
            server_hostname="smtp.test",
            **parameters,
        )
        controller.start()  # which connects once, to see the server answer
        controllers.append(controller)
        server.tally.forget()
        return server

    yield start
    for controller in controllers:
        controller.stop()


def make_config(port: int, **changes: Any) -> SmtpConfig:
    config = SmtpConfig(host=HOST, port=port, tls_mode="none", from_address=FROM, timeout_seconds=5)
    return attrs.evolve(config, **changes)


Send = Callable[[str], Awaitable[ChannelOutcome]]


@asynccontextmanager
async def email_sender(
    config: SmtpConfig, tls_context: ssl.SSLContext | None = None
) -> AsyncIterator[Send]:
    """A sender whose ``send(address)`` delivers one notification to that address
    (a user of its own, a delivery id of its own); closed on the way out."""
    store = MemoryStore(clock=FakeClock(START))
    sender = EmailSender(config, store, clock=FakeClock(START), tls_context=tls_context)
    count = 0

    async def send(address: str) -> ChannelOutcome:
        nonlocal count
        count += 1
        user = f"user{count}"
        await store.update_recipient(RecipientChange(user_id=user, email=address))
        return await sender.send(job(user, f"{count:032x}"))

    try:
        yield send
    finally:
        await sender.aclose()


def job(user: str, delivery_id: str) -> DeliveryJob:
    notification = Notification(
        id=f"n-{delivery_id}",
        event_id=f"e-{delivery_id}",
        user_id=user,
        kind="overload",
        severity=Severity.WATCH,
        title="Overload",
        body="Hours crossed 60",
        payload_json=None,
        created_at=START,
        read_at=None,
        dispatched_via=(Channel.IN_APP,),
    )
    return DeliveryJob(
        delivery_id=delivery_id, channel=Channel.EMAIL, attempts=0, notification=notification
    )


def addresses(count: int) -> list[str]:
    return [f"u{n}@example.test" for n in range(count)]


def eventually(condition: Callable[[], bool], within: float = 2.0) -> bool:
    """Whether ``condition`` holds within ``within`` seconds (the server's thread
    notes a closed connection a moment after the client closed it)."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def sequentially(config: SmtpConfig, recipients: list[str], pause: float = 0.0) -> list[Any]:
    async def run() -> list[ChannelOutcome]:
        outcomes = []
        async with email_sender(config) as send:
            for address in recipients:
                outcomes.append(await send(address))
                await asyncio.sleep(pause)
        return outcomes

    return asyncio.run(run())


def concurrently(
    config: SmtpConfig, recipients: list[str], tls_context: ssl.SSLContext | None = None
) -> list[ChannelOutcome]:
    async def run() -> list[ChannelOutcome]:
        async with email_sender(config, tls_context) as send:
            return list(await asyncio.gather(*(send(address) for address in recipients)))

    return asyncio.run(run())


# -- reuse --------------------------------------------------------------------------


def test_many_messages_share_one_connection_with_rset_between(start_relay: StartRelay) -> None:
    server = start_relay()

    outcomes = sequentially(make_config(server.port), addresses(10))

    assert outcomes == [Delivered()] * 10
    assert server.tally.opened == 1
    [connection] = set(server.relay.messages)
    assert server.relay.messages == [connection] * 10
    assert server.relay.rsets == [connection] * 9  # before each message but the first
    received = server.relay.received
    assert [r.rcpt_tos for r in received] == [(address,) for address in addresses(10)]
    assert [r.message["Message-ID"] for r in received] == [
        f"<{n:032x}@tidings.example>" for n in range(1, 11)
    ]
    assert server.relay.quits == [connection]  # on closing the sender
    assert eventually(lambda: server.tally.open == 0)


def test_fifty_concurrent_sends_use_at_most_pool_size_connections(
    start_relay: StartRelay,
) -> None:
    server = start_relay(Relay(delay=0.02))

    outcomes = concurrently(make_config(server.port, pool_size=4), addresses(50))

    assert outcomes == [Delivered()] * 50
    assert (server.tally.opened, server.tally.peak) == (4, 4)
    assert len(server.relay.received) == 50
    assert eventually(lambda: server.tally.open == 0)


@pytest.mark.parametrize("tls_mode", ["starttls", "implicit"])
def test_tls_and_auth_happen_once_per_connection(
    start_relay: StartRelay,
    server_tls: ssl.SSLContext,
    client_tls: ssl.SSLContext,
    tls_mode: str,
) -> None:
    credentials = Credentials()
    tls = (
        {"tls_context": server_tls, "require_starttls": True, "auth_required": True}
        if tls_mode == "starttls"
        # aiosmtpd counts only STARTTLS as TLS for auth_require_tls (see
        # test_email_channel.py): on an implicit-TLS listener that flag must be off.
        else {"ssl_context": server_tls, "auth_require_tls": False}
    )
    server = start_relay(Relay(delay=0.02), authenticator=credentials, **tls)
    config = make_config(
        server.port, tls_mode=tls_mode, username=USERNAME, password=PASSWORD, pool_size=2
    )

    outcomes = concurrently(config, addresses(12), client_tls)

    assert outcomes == [Delivered()] * 12
    connections = set(server.relay.messages)
    assert len(connections) == server.tally.opened == 2
    assert sorted(credentials.logins) == sorted(connections)
    expected_starttls = sorted(connections) if tls_mode == "starttls" else []
    assert sorted(server.relay.starttls) == expected_starttls


# -- failures stay per message ------------------------------------------------------


def test_a_refused_recipient_fails_alone_on_a_shared_connection(start_relay: StartRelay) -> None:
    server = start_relay()
    recipients = ["a@example.test", REFUSED, "b@example.test", REFUSED, "c@example.test"]

    outcomes = concurrently(make_config(server.port, pool_size=1), recipients)

    refused = ChannelFailed(error="smtp 550 5.1.1 no such user", retryable=False)
    assert outcomes == [Delivered(), refused, Delivered(), refused, Delivered()]
    assert server.tally.opened == 1
    assert [r.rcpt_tos for r in server.relay.received] == [
        ("a@example.test",),
        ("b@example.test",),
        ("c@example.test",),
    ]


def test_a_connection_lost_mid_message_fails_only_that_message(start_relay: StartRelay) -> None:
    server = start_relay(Relay(delay=0.01))
    recipients = [*addresses(5), DROPPED, *addresses(5)]

    outcomes = concurrently(make_config(server.port, pool_size=2), recipients)

    dropped = outcomes.pop(5)
    assert isinstance(dropped, ChannelFailed)
    assert dropped.retryable
    assert dropped.error.startswith("smtp connection failed")
    assert outcomes == [Delivered()] * 10
    assert len(server.relay.received) == 10
    assert server.tally.opened == 3  # the dropped one was replaced
    assert server.tally.peak <= 2


def test_a_421_fails_that_message_and_the_next_gets_a_new_connection(
    start_relay: StartRelay,
) -> None:
    server = start_relay(Relay(mail_replies=(None, "421 4.7.0 too many messages, closing")))

    outcomes = sequentially(make_config(server.port), addresses(3))

    assert outcomes == [
        Delivered(),
        ChannelFailed(error="smtp 421 4.7.0 too many messages, closing", retryable=True),
        Delivered(),
    ]
    assert server.tally.opened == 2
    first, second = server.relay.messages
    assert first != second


def test_a_421_to_rset_reopens_and_the_message_still_goes(start_relay: StartRelay) -> None:
    server = start_relay(Relay(rset_replies=("421 4.4.2 idle too long",)))

    outcomes = sequentially(make_config(server.port), addresses(3))

    assert outcomes == [Delivered()] * 3
    assert server.tally.opened == 2
    first, second, third = server.relay.messages
    assert first != second == third


def test_a_send_tries_one_idle_connection_at_most(start_relay: StartRelay) -> None:
    server = start_relay(Relay(rset_replies=("421 4.3.2 shutting down",)))
    config = make_config(server.port, pool_size=2)

    async def run() -> list[ChannelOutcome]:
        async with email_sender(config) as send:
            both = await asyncio.gather(send("a@example.test"), send("b@example.test"))
            return [*both, await send("c@example.test")]

    assert asyncio.run(run()) == [Delivered()] * 3
    # The RSET of the connection used last failed; the other idle one was left for
    # later and a new connection carried the message.
    [probed] = server.relay.rsets
    assert server.tally.opened == 3
    assert server.relay.messages[2] not in server.relay.messages[:2]
    assert probed in server.relay.messages[:2]


def test_a_connection_the_server_dropped_while_idle_is_replaced(start_relay: StartRelay) -> None:
    server = start_relay(timeout=0.2)  # aiosmtpd closes a connection idle that long

    outcomes = sequentially(make_config(server.port), addresses(3), pause=0.5)

    assert outcomes == [Delivered()] * 3
    assert server.tally.opened == 3
    assert len(set(server.relay.messages)) == 3


def test_a_cancelled_send_gives_back_its_slot_and_drops_its_connection(
    start_relay: StartRelay,
) -> None:
    server = start_relay(Relay(delay=0.5))

    async def run() -> tuple[bool, ChannelOutcome]:
        async with email_sender(make_config(server.port, pool_size=1)) as send:
            slow = asyncio.ensure_future(send("a@example.test"))
            assert await asyncio.to_thread(server.relay.data_started.wait, 5)
            slow.cancel()  # in the middle of its DATA
            with pytest.raises(asyncio.CancelledError):
                await slow
            return slow.cancelled(), await send("b@example.test")

    cancelled, outcome = asyncio.run(run())

    assert cancelled
    assert outcome == Delivered()
    assert server.tally.opened == 2
    assert eventually(lambda: server.tally.open == 0)


# -- closing ------------------------------------------------------------------------


def test_an_idle_connection_is_closed_on_a_timer(start_relay: StartRelay) -> None:
    server = start_relay()
    config = make_config(server.port, idle_seconds=0.2)

    async def run() -> list[ChannelOutcome]:
        async with email_sender(config) as send:
            first = await send("a@example.test")
            await asyncio.sleep(0.5)
            assert len(server.relay.quits) == 1
            assert await asyncio.to_thread(eventually, lambda: server.tally.open == 0)
            return [first, await send("b@example.test")]

    assert asyncio.run(run()) == [Delivered()] * 2
    assert server.tally.opened == 2
    assert server.relay.rsets == []  # the idle one was closed, not reused
    assert len(server.relay.quits) == 2


def test_an_idle_connection_is_closed_before_reuse_when_its_timer_is_late(
    start_relay: StartRelay,
) -> None:
    server = start_relay()
    config = make_config(server.port, idle_seconds=0.2)

    async def run() -> list[ChannelOutcome]:
        async with email_sender(config) as send:
            first = await send("a@example.test")
            time.sleep(0.4)  # a busy loop: the idle timer cannot run
            return [first, await send("b@example.test")]

    assert asyncio.run(run()) == [Delivered()] * 2
    assert server.tally.opened == 2
    assert server.relay.rsets == []
    first, second = server.relay.messages
    assert server.relay.quits == [first, second]


def test_a_connection_carries_at_most_max_messages(start_relay: StartRelay) -> None:
    server = start_relay()

    outcomes = sequentially(make_config(server.port, max_messages_per_connection=3), addresses(7))

    assert outcomes == [Delivered()] * 7
    assert server.tally.opened == 3
    one, two, three = sorted(set(server.relay.messages), key=server.relay.messages.index)
    assert server.relay.messages == [one] * 3 + [two] * 3 + [three]
    assert server.relay.quits == [one, two, three]


def test_closing_the_sender_quits_every_connection(start_relay: StartRelay) -> None:
    server = start_relay(Relay(delay=0.05))

    outcomes = concurrently(make_config(server.port, pool_size=3), addresses(3))

    assert outcomes == [Delivered()] * 3
    assert server.tally.opened == 3
    assert sorted(server.relay.quits) == sorted(set(server.relay.messages))
    assert eventually(lambda: server.tally.open == 0)


def test_max_one_message_per_connection_is_the_old_behaviour(start_relay: StartRelay) -> None:
    server = start_relay()

    outcomes = sequentially(make_config(server.port, max_messages_per_connection=1), addresses(4))

    assert outcomes == [Delivered()] * 4
    assert server.tally.opened == 4
    assert server.relay.rsets == []
    assert len(server.relay.quits) == 4


# -- settings -----------------------------------------------------------------------

BASE_ENV = {"SMTP_HOST": "smtp.example", "SMTP_FROM_ADDRESS": FROM}


def test_pool_settings_default_and_read_from_the_environment() -> None:
    default = smtp_config_from_environment(BASE_ENV)
    assert default is not None
    assert (default.pool_size, default.max_messages_per_connection, default.idle_seconds) == (
        32,
        100,
        30.0,
    )
    env = {
        **BASE_ENV,
        "SMTP_POOL_SIZE": " 4 ",
        "SMTP_MAX_MESSAGES_PER_CONNECTION": "1",
        "SMTP_IDLE_SECONDS": "2.5",
    }
    config = smtp_config_from_environment(env)
    assert config is not None
    assert (config.pool_size, config.max_messages_per_connection, config.idle_seconds) == (
        4,
        1,
        2.5,
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SMTP_POOL_SIZE", "0"),
        ("SMTP_POOL_SIZE", "-1"),
        ("SMTP_POOL_SIZE", "eight"),
        ("SMTP_POOL_SIZE", "10001"),
        ("SMTP_POOL_SIZE", "٣"),  # an Arabic-Indic digit
        ("SMTP_MAX_MESSAGES_PER_CONNECTION", "0"),
        ("SMTP_MAX_MESSAGES_PER_CONNECTION", "1.5"),
        ("SMTP_IDLE_SECONDS", "0"),
        ("SMTP_IDLE_SECONDS", "-5"),
        ("SMTP_IDLE_SECONDS", "inf"),
        ("SMTP_IDLE_SECONDS", "nan"),
        ("SMTP_IDLE_SECONDS", "1e3"),
        ("SMTP_IDLE_SECONDS", "3601"),
        ("SMTP_IDLE_SECONDS", "30s"),
    ],
)
def test_bad_pool_settings_name_the_variable(variable: str, value: str) -> None:
    with pytest.raises(ValueError, match=f"^{variable}: "):
        smtp_config_from_environment({**BASE_ENV, variable: value})


def test_pool_settings_are_checked_in_code_too() -> None:
    for changes in ({"pool_size": 0}, {"max_messages_per_connection": 0}, {"idle_seconds": 0}):
        with pytest.raises(ValueError):
            make_config(free_port(), **changes)

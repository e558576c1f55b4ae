"""SMTP servers for tests: real aiosmtpd servers on free ports of 127.0.0.1, with a
handler that records every message and can answer with scripted replies."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy
from typing import Any

import attrs
from aiosmtpd.controller import Controller

HOST = "127.0.0.1"


@attrs.frozen
class Received:
    """One DATA the server was handed, accepted or not: parsed as a mail reader would
    (the email package's default policy), and the bytes as they came."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    message: EmailMessage
    content: bytes


class Mailbox:
    """An aiosmtpd handler that gives each scripted reply once, then accepts."""

    def __init__(self, *, rcpt_replies: tuple[str, ...] = (), data_replies: tuple[str, ...] = ()):
        self._rcpt_replies = list(rcpt_replies)
        self._data_replies = list(data_replies)
        self.received: list[Received] = []

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if self._rcpt_replies:
            return self._rcpt_replies.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = BytesParser(policy=default_policy).parsebytes(envelope.content)
        assert isinstance(parsed, EmailMessage)
        content = bytes(envelope.original_content)
        self.received.append(
            Received(envelope.mail_from, tuple(envelope.rcpt_tos), parsed, content)
        )
        return self._data_replies.pop(0) if self._data_replies else "250 Message accepted"


def free_port() -> int:
    """A loopback port nothing listens on (the OS just handed it out and took it back)."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
    return port


StartServer = Callable[..., int]


@contextmanager
def smtp_servers() -> Iterator[StartServer]:
    """Starts aiosmtpd servers on free loopback ports; all are stopped on the way out."""
    controllers: list[Any] = []

    def start(handler: Mailbox, **smtp_parameters: Any) -> int:
        port = free_port()
        controller = Controller(
            handler, hostname=HOST, port=port, server_hostname="smtp.test", **smtp_parameters
        )
        controller.start()
        controllers.append(controller)
        return port

    yield start
    for controller in controllers:
        controller.stop()

"""The email channel: SMTP through aiosmtplib, configured like the reference.

The reference reads SMTP settings from its environment and degrades gracefully when
they are missing: email is skipped with that reason and in-app delivery carries on.
tidings keeps that, and adds what an outbox needs: every failure comes back as a
value that says whether a retry can help (an SMTP 4xx reply or a lost connection
can, a 5xx reply cannot), and the message carries a Message-ID derived from the
delivery id so a retried delivery is recognisably the same email.

The password lives only in ``SmtpConfig`` (see ``smtp_config``; hidden from its
repr) and is scrubbed from every error text, since those end up in ``last_error``
and in log lines. It never crosses an unencrypted connection unless the config says
so: ``SmtpConfig`` refuses a username over ``tls_mode`` ``none`` without
``allow_plaintext_auth``. A recipient's address passes the same check as on the
command line (``email_address``), so one that slipped past it (a host's own
directory) fails for good here instead of reaching an SMTP command line.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from datetime import datetime

import aiosmtplib

from tidings.adapters.channels.email_address import checked_address
from tidings.adapters.channels.email_message import Letter, build_message
from tidings.adapters.channels.email_pool import SmtpPool
from tidings.adapters.channels.smtp_config import NOT_CONFIGURED, SmtpConfig
from tidings.core.ports import RecipientDirectory
from tidings.core.records import (
    ChannelFailed,
    ChannelOutcome,
    ChannelSkipped,
    Delivered,
    DeliveryJob,
)


class EmailSender:
    """Sends a delivery as one email to the recipient's address, over a pooled
    connection. Close it with ``aclose`` (the pool's connections QUIT).

    ``tls_context`` replaces the system trust store: the runner builds it from
    ``SmtpConfig.ca_file`` (see ``runner/dispatch/senders.py``), tests pass a private CA's.
    """

    def __init__(
        self,
        config: SmtpConfig | None,
        directory: RecipientDirectory,
        *,
        clock: Callable[[], datetime],
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self._config = config
        self._directory = directory
        self._clock = clock
        self._pool = None if config is None else SmtpPool(config, tls_context=tls_context)

    async def send(self, job: DeliveryJob) -> ChannelOutcome:
        config, pool = self._config, self._pool
        if config is None or pool is None:
            return ChannelSkipped(NOT_CONFIGURED)
        recipient = await self._directory.recipient(job.notification.user_id)
        if recipient is None or not recipient.email:
            return ChannelSkipped("no email address")
        to_address = checked_address(recipient.email)
        if to_address is None:
            return ChannelFailed(error="invalid email address", retryable=False)
        letter = Letter(
            delivery_id=job.delivery_id,
            from_address=config.from_address,
            from_name=config.from_name,
            to_address=to_address,
            title=job.notification.title,
            body=job.notification.body,
            sent_at=self._clock(),
            with_html=config.html,
        )
        try:
            await pool.send(build_message(letter), sender=config.from_address, recipient=to_address)
        except (aiosmtplib.SMTPException, OSError) as error:
            return _smtp_failure(error, secret=config.password)
        return Delivered()

    async def aclose(self) -> None:
        """Close the pool's connections; a send still in flight closes its own."""
        if self._pool is not None:
            await self._pool.aclose()


def _smtp_failure(
    error: aiosmtplib.SMTPException | OSError, *, secret: str | None
) -> ChannelFailed:
    """Classify a failed submission. A reply code decides when there is one (5xx is
    final, anything else may pass later); a broken connection, a timeout or a TLS
    failure is retried; a server lacking what the config asks for (STARTTLS, AUTH)
    is not. The text is one line, without the password."""
    if isinstance(error, aiosmtplib.SMTPRecipientsRefused) and error.recipients:
        error = error.recipients[0]
    if isinstance(error, aiosmtplib.SMTPResponseException):
        text = f"smtp {error.code} {error.message}"
        retryable = not 500 <= error.code <= 599
    elif isinstance(error, OSError):
        text = f"smtp connection failed: {error}"
        retryable = True
    else:
        text = f"smtp refused the session: {error}"
        retryable = False
    if secret:
        text = text.replace(secret, "[redacted]")
    return ChannelFailed(error=" ".join(text.split()), retryable=retryable)

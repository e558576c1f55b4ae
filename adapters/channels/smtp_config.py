"""SMTP settings, read from the reference's ``SMTP_*`` environment variables.

Apart from the sender so that a runner reads and checks its settings at start-up
without loading the SMTP library, which only a runner that sends email needs. What
would otherwise fail every send, or quietly weaken one, fails here instead, naming the
variable: a sender name that is not one line of text (also once a mail reader decodes
its ``=?...?=`` encoded words), an address the sender would refuse, a CA file that does
not load, a password that would cross the network in plain text, and connection-pool
limits that are not positive numbers.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Mapping
from typing import Literal

import attrs

from tidings.adapters.channels.email_address import address_problem

TlsMode = Literal["implicit", "starttls", "none"]
TLS_MODES: tuple[TlsMode, ...] = ("implicit", "starttls", "none")
STARTTLS_PORT = 587
"""The submission port: when ``SMTP_TLS_MODE`` is unset it means STARTTLS."""
POOL_SIZE = 32
"""Connections open to the relay at most (``SMTP_POOL_SIZE``). As many as the runner
sends at once per channel by default (``sends_per_channel``), so pooling never lowers
throughput against a slow relay (``bench/smtp_pool.py``); lower it for a relay that
caps concurrent connections."""
MAX_MESSAGES_PER_CONNECTION = 100
"""Messages one connection carries before it is closed and a new one opened
(``SMTP_MAX_MESSAGES_PER_CONNECTION``): the handshake is then 1% of the work, and no
connection lives long enough to meet a relay's own per-connection limit."""
IDLE_SECONDS = 30.0
"""How long an unused connection stays open (``SMTP_IDLE_SECONDS``): well under the
five minutes RFC 5321 lets a server wait for a command, so the relay rarely drops one
first, and short enough not to hold the relay's slots while nothing is sent."""
MAX_IDLE_SECONDS = 3600.0
NOT_CONFIGURED = "smtp not configured"
"""Why an email is skipped when ``SMTP_HOST`` is unset, as the reference degrades."""
PLAINTEXT_AUTH_REFUSED = (
    "SMTP_TLS_MODE: none with SMTP_USER set would send the password in plain text;"
    " use implicit or starttls, or set SMTP_ALLOW_PLAINTEXT_AUTH=1 for a relay on the"
    " same host"
)

_NOT_ONE_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
"""Controls (C0 including tab, DEL, C1), the Unicode line separators, and lone
surrogates (bytes that were not UTF-8): nothing a name on one line holds."""


@attrs.frozen(kw_only=True)
class SmtpConfig:
    """Where and how to submit mail. ``tls_mode`` ``none`` is for a local relay only,
    and refuses a ``username`` unless ``allow_plaintext_auth`` says the password may
    cross the connection unencrypted (a relay on the same host): the sender is then
    never handed a config that would. ``ca_file`` (PEM) is the only trust store for
    the server's certificate when set (a relay with a private CA). ``pool_size``,
    ``max_messages_per_connection`` and ``idle_seconds`` shape the sender's connection
    pool (``email_pool``).
    """

    host: str
    port: int
    tls_mode: TlsMode = attrs.field(validator=attrs.validators.in_(TLS_MODES))
    username: str | None = None
    password: str | None = attrs.field(default=None, repr=False)
    from_address: str
    from_name: str = ""
    timeout_seconds: float = 30.0
    html: bool = False
    allow_plaintext_auth: bool = False
    ca_file: str | None = None
    pool_size: int = attrs.field(default=POOL_SIZE, validator=attrs.validators.ge(1))
    max_messages_per_connection: int = attrs.field(
        default=MAX_MESSAGES_PER_CONNECTION, validator=attrs.validators.ge(1)
    )
    idle_seconds: float = attrs.field(
        default=IDLE_SECONDS,
        validator=[attrs.validators.gt(0.0), attrs.validators.le(MAX_IDLE_SECONDS)],
    )

    def __attrs_post_init__(self) -> None:
        plain = self.tls_mode == "none"
        if plain and self.username is not None and not self.allow_plaintext_auth:
            raise ValueError(PLAINTEXT_AUTH_REFUSED)


def smtp_config_from_environment(env: Mapping[str, str]) -> SmtpConfig | None:
    """The reference's ``SMTP_*`` variables as a config; None when SMTP_HOST is unset.

    Raises ValueError naming the variable when a value is present but unusable, so a
    typo stops the runner at start instead of silently skipping every email.
    """
    host = env.get("SMTP_HOST", "").strip()
    if not host:
        return None
    port = _port(env.get("SMTP_PORT", "").strip())
    username = env.get("SMTP_USER", "").strip() or None
    password = env.get("SMTP_PASSWORD") or None
    if username is not None and password is None:
        raise ValueError("SMTP_PASSWORD: required when SMTP_USER is set")
    return SmtpConfig(
        host=host,
        port=port,
        tls_mode=_tls_mode(env.get("SMTP_TLS_MODE", "").strip().lower(), port),
        username=username,
        password=password,
        from_address=_from_address(env.get("SMTP_FROM_ADDRESS", "").strip()),
        from_name=_from_name(env.get("SMTP_FROM_NAME", "").strip()),
        allow_plaintext_auth=_flag(
            "SMTP_ALLOW_PLAINTEXT_AUTH", env.get("SMTP_ALLOW_PLAINTEXT_AUTH", "").strip()
        ),
        ca_file=checked_ca_file(env.get("SMTP_CA_FILE", "").strip(), "SMTP_CA_FILE"),
        pool_size=_count("SMTP_POOL_SIZE", env.get("SMTP_POOL_SIZE", "").strip(), POOL_SIZE),
        max_messages_per_connection=_count(
            "SMTP_MAX_MESSAGES_PER_CONNECTION",
            env.get("SMTP_MAX_MESSAGES_PER_CONNECTION", "").strip(),
            MAX_MESSAGES_PER_CONNECTION,
        ),
        idle_seconds=_idle_seconds(env.get("SMTP_IDLE_SECONDS", "").strip()),
    )


def checked_ca_file(path: str, setting: str) -> str | None:
    """``path`` once the CA certificates in it (PEM) load; None when it is empty.

    Loading the file at start-up turns a missing, unreadable or malformed one into an
    error naming ``setting``, instead of every TLS connection failing later. The
    runner checks ``TIDINGS_WEBHOOK_CA_FILE`` with it too: one rule for a CA file.
    """
    if not path:
        return None
    try:
        ssl.create_default_context(cafile=path)
    except (OSError, ValueError) as error:  # ssl.SSLError is an OSError
        raise ValueError(f"{setting}: cannot load CA certificates from {path!r}: {error}") from None
    return path


def _port(text: str) -> int:
    if not text:
        return 465
    port = int(text) if re.fullmatch(r"[0-9]{1,5}", text) else 0
    if not 1 <= port <= 65535:
        raise ValueError(f"SMTP_PORT: expected a port number from 1 to 65535, got {text!r}")
    return port


def _count(variable: str, text: str, default: int) -> int:
    """A whole number from 1 to 10,000; ``default`` when unset."""
    if not text:
        return default
    count = int(text) if re.fullmatch(r"[0-9]{1,5}", text) else 0
    if not 1 <= count <= 10_000:
        raise ValueError(f"{variable}: expected a whole number from 1 to 10000, got {text!r}")
    return count


def _idle_seconds(text: str) -> float:
    """Seconds above 0 and at most an hour, written as digits with an optional fraction
    (no exponent, no ``inf`` or ``nan``); the default when unset."""
    if not text:
        return IDLE_SECONDS
    seconds = float(text) if re.fullmatch(r"[0-9]{1,4}(\.[0-9]{1,3})?", text) else 0.0
    if not 0 < seconds <= MAX_IDLE_SECONDS:
        raise ValueError(
            f"SMTP_IDLE_SECONDS: expected seconds above 0 and at most 3600, got {text!r}"
        )
    return seconds


def _tls_mode(text: str, port: int) -> TlsMode:
    if not text:
        return "starttls" if port == STARTTLS_PORT else "implicit"
    if text not in TLS_MODES:
        raise ValueError(f"SMTP_TLS_MODE: expected implicit, starttls or none, got {text!r}")
    return text


def _flag(variable: str, text: str) -> bool:
    if text not in {"", "0", "1"}:
        raise ValueError(f"{variable}: expected 1 or 0, got {text!r}")
    return text == "1"


def _from_address(text: str) -> str:
    if not text:
        raise ValueError("SMTP_FROM_ADDRESS: required when SMTP_HOST is set")
    problem = address_problem(text)
    if problem is not None:
        raise ValueError(f"SMTP_FROM_ADDRESS: not a single email address: {text!r}: {problem}")
    return text


def _from_name(text: str) -> str:
    """``SMTP_FROM_NAME`` when it is one line of text as written and as any reader
    shows it. The email builder never lets a reader decode it (see ``email_message``),
    but a name that decodes to a line break is an attack or a mistake, never a name,
    and is better refused at start-up than sent."""
    if any(_NOT_ONE_LINE.search(shown) for shown in _readings(text)):
        raise ValueError(
            "SMTP_FROM_NAME: must be one line of text without control characters,"
            " also inside =?...?= encoded words"
        )
    return text


def _readings(text: str) -> list[str]:
    """``text``, then its encoded words decoded, again while some are left (a lenient
    reader may decode what it decoded). The email package's header parser is the most
    lenient decoder at hand (words inside words, spaces inside words, unknown
    charsets), so it finds what stricter readers would too. A decoding that does not
    shorten the text decoded nothing, which ends the loop."""
    from email.policy import default  # the email package loads only where SMTP is configured

    readings = [text]
    while not _NOT_ONE_LINE.search(readings[-1]) and "=?" in readings[-1]:
        decoded = str(default.header_factory("Subject", readings[-1]))
        if len(decoded) >= len(readings[-1]):
            break
        readings.append(decoded)
    return readings

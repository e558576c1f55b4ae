"""SMTP settings, read from the reference's ``SMTP_*`` environment variables.

Apart from the sender so that a runner reads and checks its settings at start-up
without loading the SMTP library, which only a runner that sends email needs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal

import attrs

TlsMode = Literal["implicit", "starttls", "none"]
TLS_MODES: tuple[TlsMode, ...] = ("implicit", "starttls", "none")
STARTTLS_PORT = 587
"""The submission port: when ``SMTP_TLS_MODE`` is unset it means STARTTLS."""
NOT_CONFIGURED = "smtp not configured"
"""Why an email is skipped when ``SMTP_HOST`` is unset, as the reference degrades."""


@attrs.frozen(kw_only=True)
class SmtpConfig:
    """Where and how to submit mail. ``tls_mode`` ``none`` is for a local relay only."""

    host: str
    port: int
    tls_mode: TlsMode = attrs.field(validator=attrs.validators.in_(TLS_MODES))
    username: str | None = None
    password: str | None = attrs.field(default=None, repr=False)
    from_address: str
    from_name: str = ""
    timeout_seconds: float = 30.0
    html: bool = False


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
        from_name=env.get("SMTP_FROM_NAME", "").strip(),
    )


def _port(text: str) -> int:
    if not text:
        return 465
    port = int(text) if re.fullmatch(r"[0-9]{1,5}", text) else 0
    if not 1 <= port <= 65535:
        raise ValueError(f"SMTP_PORT: expected a port number from 1 to 65535, got {text!r}")
    return port


def _tls_mode(text: str, port: int) -> TlsMode:
    if not text:
        return "starttls" if port == STARTTLS_PORT else "implicit"
    if text not in TLS_MODES:
        raise ValueError(f"SMTP_TLS_MODE: expected implicit, starttls or none, got {text!r}")
    return text


def _from_address(text: str) -> str:
    if not text:
        raise ValueError("SMTP_FROM_ADDRESS: required when SMTP_HOST is set")
    # Python's email package loads only where SMTP is configured.
    from adapters.channels.email_message import checked_address

    address = checked_address(text)
    if address is None:
        raise ValueError(f"SMTP_FROM_ADDRESS: not a single email address: {text!r}")
    return address

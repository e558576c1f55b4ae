"""Checks on contact points before they are stored, so a typo fails at the CLI
instead of as a failed delivery hours later."""

from __future__ import annotations

import base64
import binascii
import re
from urllib.parse import urlsplit

from core.records import Recipient

_EMAIL = re.compile(r"^[^@\s<>\"]+@[^@\s<>\"]+\.[^@\s<>\"]+$")


def recipient_problems(recipient: Recipient) -> list[str]:
    """Every problem with ``recipient``, naming the field. The secret is never echoed."""
    problems = []
    if recipient.email is not None and not _EMAIL.match(recipient.email):
        problems.append(f"email: {recipient.email!r} is not an email address")
    if recipient.webhook_url is not None:
        parts = urlsplit(recipient.webhook_url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            problems.append(f"webhook_url: {recipient.webhook_url!r} is not an http(s) URL")
        if recipient.webhook_secret is None:
            problems.append("webhook_secret: required with a webhook URL (whsec_...)")
    if recipient.webhook_secret is not None and not _valid_secret(recipient.webhook_secret):
        problems.append("webhook_secret: must be whsec_ followed by base64")
    return problems


def _valid_secret(secret: str) -> bool:
    if not secret.startswith("whsec_"):
        return False
    try:
        return bool(base64.b64decode(secret.removeprefix("whsec_"), validate=True))
    except (binascii.Error, ValueError):
        return False

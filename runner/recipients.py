"""Checks on contact points before they are stored, so a typo fails at the CLI
instead of as a failed delivery hours later.

The email address is checked by ``adapters.channels.email_address``, the rule the
email sender applies too, and the webhook secret by ``core.contacts``, whose parsing
the webhook sender signs with: what is accepted here is what will be used. Values are
echoed as ``repr`` (shortened when long; a URL without its credentials), so a lone
surrogate prints as ``\\udc85`` instead of failing to print.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from tidings.adapters.channels.email_address import address_problem
from tidings.core.contacts import webhook_signing_key
from tidings.core.records import Recipient
from tidings.runner.telemetry import shown_url

_SHOWN_LENGTH = 80
"""Longer values are cut in error messages: the field and the reason are what matter."""


def recipient_problems(recipient: Recipient) -> list[str]:
    """Every problem with ``recipient``, naming the field. The secret is never echoed."""
    problems = []
    if recipient.email is not None and (problem := address_problem(recipient.email)):
        problems.append(f"email: {_shown(recipient.email)} is not an email address: {problem}")
    if recipient.webhook_url is not None:
        if not _is_web_url(recipient.webhook_url):
            shown = _shown(shown_url(recipient.webhook_url))
            problems.append(f"webhook_url: {shown} is not an http(s) URL")
        if recipient.webhook_secret is None:
            problems.append("webhook_secret: required with a webhook URL (whsec_...)")
    secret = recipient.webhook_secret
    if secret is not None and webhook_signing_key(secret) is None:
        problems.append("webhook_secret: must be whsec_ followed by base64")
    return problems


def _is_web_url(url: str) -> bool:
    """An http(s) URL with a host, on one line of printable text (not a surrogate from
    an undecodable byte, which no store could save)."""
    if not url.isprintable() or any(ch.isspace() for ch in url):
        return False
    try:
        parts = urlsplit(url)
    except ValueError:  # "http://[::1/": an unclosed IPv6 literal
        return False
    return parts.scheme in {"http", "https"} and bool(parts.hostname)


def _shown(value: str) -> str:
    """``value`` fit for an error line: its repr, cut short when long."""
    if len(value) <= _SHOWN_LENGTH:
        return repr(value)
    return f"{value[:_SHOWN_LENGTH]!r}... ({len(value)} characters)"

"""The rules for a user's contact points, written once for every store and the CLI.

- A change names the fields it sets (``core.records.RecipientChange``); the others keep
  what is stored.
- A webhook that answered 410 Gone stays disabled while its URL stays; setting another
  URL (or none) clears the disabling.
- A 410 from a URL the user no longer has (a late answer from the old endpoint) changes
  nothing.
- A webhook secret is ``whsec_`` followed by the base64 of a non-empty key (Standard
  Webhooks), checked where it is set (``runner/recipients.py``) and where it signs
  (``adapters/channels/webhook.py``) by the same function.

Stores apply these inside one transaction: read the current row, compute, write.
"""

from __future__ import annotations

import base64
import binascii
from typing import TypeVar

import attrs

from tidings.core.records import Recipient, RecipientChange, Unchanged

WEBHOOK_SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret

_T = TypeVar("_T")


def webhook_signing_key(secret: str) -> bytes | None:
    """The HMAC key in a ``whsec_<base64>`` secret, or None when it is not one."""
    if not secret.startswith(WEBHOOK_SECRET_PREFIX):
        return None
    try:
        key = base64.b64decode(secret.removeprefix(WEBHOOK_SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        return None
    return key or None


def _kept(new: _T | Unchanged, current: _T) -> _T:
    return current if isinstance(new, Unchanged) else new


def changed_recipient(current: Recipient | None, change: RecipientChange) -> Recipient:
    """What to store for ``change`` over ``current`` (None: no row yet)."""
    if current is not None and current.user_id != change.user_id:
        raise ValueError(f"a change for {change.user_id!r} applied to {current.user_id!r}")
    base = current or Recipient(user_id=change.user_id)
    webhook_url = _kept(change.webhook_url, base.webhook_url)
    return Recipient(
        user_id=change.user_id,
        email=_kept(change.email, base.email),
        webhook_url=webhook_url,
        webhook_secret=_kept(change.webhook_secret, base.webhook_secret),
        webhook_disabled=base.webhook_disabled if webhook_url == base.webhook_url else None,
    )


def disabled_webhook(current: Recipient | None, url: str, reason: str) -> Recipient | None:
    """``current`` with its webhook disabled for ``reason``, or None when there is
    nothing to change: no recipient, or its URL is no longer ``url``."""
    if current is None or current.webhook_url != url:
        return None
    return attrs.evolve(current, webhook_disabled=reason)

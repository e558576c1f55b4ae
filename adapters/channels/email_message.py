"""How a notification becomes an email: the standard library's ``email`` package, and
nothing in a header that could end it early.

Kept apart from the SMTP conversation so the message can be reasoned about (and
tested) as a value. Every header value passes through ``header_text``, which turns
line breaks and other control characters into spaces: a title is validated upstream,
but a header is the one place where a stray CR/LF would let text become a new header
(``Bcc:``), so this module does not rely on that. Addresses, which also travel on SMTP
command lines, must pass ``checked_address`` before they are used at all.
"""

from __future__ import annotations

import html
import re
from datetime import datetime
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, formataddr

import attrs

_LINE_BREAKING = re.compile(r"[\x00-\x08\x0a-\x1f\x7f\x85\u2028\u2029]+")
"""C0 controls except tab, DEL, and the Unicode line separators ``str.splitlines``
honours: anything that could split or corrupt a header line."""


def header_text(value: str) -> str:
    """``value`` on one line: each run of control characters becomes one space."""
    return _LINE_BREAKING.sub(" ", value).strip()


def checked_address(text: str) -> str | None:
    """The bare address ``local@domain`` if ``text`` is exactly one, else None.

    Rejecting whitespace and controls outright keeps anything but an address off the
    SMTP ``MAIL``/``RCPT`` lines, whatever the parser would have tolerated.
    """
    if not text or any(ch.isspace() or not ch.isprintable() for ch in text):
        return None
    try:
        address = Address(addr_spec=text)
    except (ValueError, IndexError, HeaderParseError):
        return None
    return address.addr_spec if address.domain else None


def message_id(delivery_id: str, from_address: str) -> str:
    """The same ``<delivery-id@sender-domain>`` on every attempt, so a receiver can drop
    the duplicate an at-least-once retry may produce."""
    domain = from_address.rpartition("@")[2]
    return header_text(f"<{delivery_id}@{domain}>")


@attrs.frozen(kw_only=True)
class Letter:
    """What one email says and to whom: the inputs of ``build_message``."""

    delivery_id: str
    from_address: str
    from_name: str
    to_address: str
    title: str
    body: str
    sent_at: datetime
    with_html: bool = False


def build_message(letter: Letter) -> EmailMessage:
    """A UTF-8 plain-text message, with an HTML alternative when asked for."""
    message = EmailMessage()
    message["From"] = formataddr((header_text(letter.from_name), letter.from_address))
    message["To"] = letter.to_address
    message["Subject"] = header_text(letter.title)
    message["Date"] = format_datetime(letter.sent_at)
    message["Message-ID"] = message_id(letter.delivery_id, letter.from_address)
    message["X-Tidings-Delivery"] = header_text(letter.delivery_id)
    message.set_content(letter.body, charset="utf-8")
    if letter.with_html:
        message.add_alternative(_html_body(letter.title, letter.body), subtype="html")
    return message


def _html_body(title: str, body: str) -> str:
    """The same text as HTML; everything is escaped, so nothing in it is markup."""
    heading = html.escape(header_text(title))
    lines = "<br>\n".join(html.escape(line) for line in body.splitlines())
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>{heading}</title></head>\n"
        f"<body><h1>{heading}</h1>\n<p>{lines}</p></body></html>\n"
    )

"""How a notification becomes an email: the standard library's ``email`` package, and
nothing in a header that could end it early.

Kept apart from the SMTP conversation so the message can be reasoned about (and
tested) as a value. A header is the one place where a stray CR/LF would let text
become a new header (``Bcc:``) or end the header block, so every value a person can
influence (the title, ``SMTP_FROM_NAME``) passes through ``header_phrase`` here,
whatever was validated upstream:

- ``header_text`` turns line breaks and other control characters into spaces;
- every ``=?`` gets an invisible WORD JOINER (U+2060) between its two characters.
  ``=?`` opens an RFC 2047 encoded word, and the email package decodes encoded words
  in the strings it is given before it writes them out again, literally, when they
  are ASCII: ``=?utf-8?q?x=0D=0ABcc:_evil@attacker.test?=`` would reach the receiver
  as ``Subject: x`` and a real ``Bcc:`` line, and text that only decodes to another
  encoded word would be decoded by the reader instead. Without ``=?``, nothing in our
  text is decoded by anyone: the package encodes what it must (non-ASCII words) itself,
  and a reader decoding that once, or a lenient one decoding again, gets the title as
  written, on one line, with the joiner (which renders as nothing) in each ``=?``.

Checking the decoded value instead would have to match every reader's decoder
(Python's accepts encoded words mid-word and with spaces inside); breaking the
introducer needs no decoder at all.

The sender is given to the package as an ``Address`` object, not as ``formataddr``
text: from that text the package re-encodes only the non-ASCII words of a display
name and drops its quotes, so the name ``ü evil@attacker.test`` would reach the reader
as the address ``"ü evil"@attacker.test``, in place of the real sender. The
recipient and sender addresses pass ``email_address.checked_address``, which refuses
``=?`` and anything but one plain address, before they are used at all.
"""

from __future__ import annotations

import html
import re
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

import attrs

_LINE_BREAKING = re.compile(r"[\x00-\x08\x0a-\x1f\x7f\x85\u2028\u2029]+")
"""C0 controls except tab, DEL, and the Unicode line separators ``str.splitlines``
honours: anything that could split or corrupt a header line."""


def header_text(value: str) -> str:
    """``value`` on one line: each run of control characters becomes one space."""
    return _LINE_BREAKING.sub(" ", value).strip()


_ENCODED_WORD_START = "=?"
WORD_JOINER = "\u2060"


def header_phrase(value: str) -> str:
    """``value`` on one line and with no encoded-word introducer left in it, so that
    neither the email package nor any reader decodes it (see the module docstring)."""
    return header_text(value).replace(_ENCODED_WORD_START, "=" + WORD_JOINER + "?")


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
    message["From"] = Address(header_phrase(letter.from_name), addr_spec=letter.from_address)
    message["To"] = letter.to_address
    message["Subject"] = header_phrase(letter.title)
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

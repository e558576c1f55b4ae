"""Properties of the message builder: whatever a title or sender name holds, the
message has the headers tidings writes and no other, and each reader sees them on one
line. Titles are built from the pieces of RFC 2047 encoded words, encoded line breaks
and raw control characters, so that hypothesis assembles the injections itself.
``test_email_channel.py`` sends the known ones through a real SMTP server.
"""

from __future__ import annotations

import base64
from email import message_from_bytes
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.policy import SMTP, compat32
from email.policy import default as default_policy

from hypothesis import given
from hypothesis import strategies as st

from tests.adapters.conftest import START
from tidings.adapters.channels.email_message import WORD_JOINER, Letter, build_message, header_text

HEADERS = [
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "X-Tidings-Delivery",
    "Content-Type",
    "Content-Transfer-Encoding",
    "MIME-Version",
]
BODY = "first line\nsecond line"

_B_WORDS = [
    f"=?utf-8?b?{base64.b64encode(text.encode()).decode()}?="
    for text in ("\r\n", "x\r\nBcc: e@x.test", "\r\n\r\n<html>", "=?utf-8?q?=0D=0A?=")
]
_PIECES = st.sampled_from(
    [
        "=?", "?=", "utf-8", "UTF-8", "iso-8859-1", "?q?", "?Q?", "?b?", "?B?", "=0D", "=0A",
        "=0D=0A", "_", " ", "\t", "\r\n", "\n", "\x85", "\u2028", "Bcc:", "Reply-To:",
        "e@x.test", "x", "é", "🔥", "=?utf-8?q?", "=?utf-8?b?", *_B_WORDS,
        ",", ";", ":", '"', "\\", "<", ">", "(", ")", "[", "]", ".", "@attacker.test",
    ]
)  # fmt: skip
HEADER_VALUES = st.lists(_PIECES | st.text(max_size=5), max_size=24).map("".join)


def as_read(raw: bytes, name: str) -> str:
    """Header ``name`` unfolded and decoded by ``email.header``, a second reader."""
    value = message_from_bytes(raw, policy=compat32)[name]
    assert isinstance(value, str)
    return str(make_header(decode_header(value.replace("\r\n", "").replace("\n", ""))))


def squeezed(text: str) -> str:
    """``text`` without whitespace or word joiners: readers disagree on the space
    between two adjacent encoded words (see ``test_email_channel.py``)."""
    return "".join(text.replace(WORD_JOINER, "").split())


@given(title=HEADER_VALUES, from_name=HEADER_VALUES)
def test_no_title_or_sender_name_adds_a_header_or_a_line(title: str, from_name: str) -> None:
    letter = Letter(
        delivery_id="d1",
        from_address="alerts@tidings.example",
        from_name=from_name,
        to_address="u42@example.test",
        title=title,
        body=BODY,
        sent_at=START,
    )
    raw = build_message(letter).as_bytes(policy=SMTP)

    parsed = message_from_bytes(raw, policy=default_policy)
    assert isinstance(parsed, EmailMessage)
    assert parsed.keys() == HEADERS
    assert [address.addr_spec for address in parsed["To"].addresses] == ["u42@example.test"]
    [sender] = parsed["From"].addresses
    assert sender.addr_spec == "alerts@tidings.example"
    assert parsed.get_content().splitlines() == BODY.splitlines()
    for shown in (str(parsed["Subject"]), as_read(raw, "Subject")):
        assert squeezed(shown) == squeezed(header_text(title))
    assert squeezed(sender.display_name) == squeezed(header_text(from_name))
    from_line = as_read(raw, "From")
    assert "\r" not in from_line
    assert "\n" not in from_line
    assert from_line.endswith("alerts@tidings.example>") or not sender.display_name

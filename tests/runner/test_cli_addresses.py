"""``tidings recipients set --email`` accepts exactly the addresses the email sender
will use: both ask ``adapters.channels.email_address``. Every refusal is one line
naming the ``email`` field and exit status 2, never a traceback, whatever bytes the
shell passed.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from email.parser import BytesParser
from email.policy import SMTP
from email.policy import default as default_policy
from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from tests.runner.harness import Tidings
from tidings.adapters.channels.email_address import checked_address
from tidings.adapters.channels.email_message import Letter, build_message
from tidings.core.records import Recipient
from tidings.runner.recipients import recipient_problems

REFUSED = {
    "comma": "a,b@x.test",
    "non-ASCII local part": "üser@x.test",
    "5,000-character local part": "v" * 5000 + "@x.test",
    "65-character local part": "v" * 65 + "@x.test",
    "undecodable byte (lone surrogate)": "v\udc85@x.test",
    "two addresses": "ana@x.test, bob@x.test",
    "name and address": "Ana <ana@x.test>",
    "angle brackets": "<ana@x.test>",
    "quoted local part": '"a b"@x.test',
    "line break": "ana@x.test\r\nRCPT TO:<evil@attacker.test>",
    "encoded word": "=?utf-8?q?a=0D=0A?=@x.test",
    "no dot in the domain": "root@localhost",
    "address literal": "ana@[192.0.2.1]",
    "numeric domain": "ana@192.0.2.1",
    "doubled dot": "ana..b@x.test",
    "empty": "",
}


@pytest.mark.parametrize("address", REFUSED.values(), ids=REFUSED.keys())
def test_recipients_set_refuses_what_the_sender_would(tidings: Tidings, address: str) -> None:
    status, out, err = tidings("recipients", "set", "ana", "--email", address)

    assert status == 2
    assert out == ""
    [line] = err.splitlines()
    assert line.startswith("rejected: email: ")
    assert "is not an email address: " in line or "is not valid UTF-8" in line
    assert checked_address(address) is None


@pytest.mark.parametrize(
    "address", ["ana@example.com", "first.last+tag@mail.example.co.uk", "o'brien@x-y.test"]
)
def test_recipients_set_accepts_what_the_sender_uses(tidings: Tidings, address: str) -> None:
    status, out, _ = tidings("recipients", "set", "ana", "--email", address)

    assert status == 0
    assert address in out
    assert checked_address(address) == address


def test_an_undecodable_byte_on_the_command_line_is_refused_without_a_traceback(
    tmp_path: Path,
) -> None:
    script = Path(sys.executable).with_name("tidings")
    database = f"sqlite:///{tmp_path / 'tidings.db'}"

    result = subprocess.run(
        [script, "--database", database, "recipients", "set", "ana", "--email", b"v\x85@x.test"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr == "rejected: email: is not valid UTF-8 text\n"


_ADDRESS_ALPHABET = st.sampled_from(
    [*"aZ09.-_+=?'!#$%&*/^`{|}~@,;:<>()[]\\\" \t\r\n", "ü", "\udc85", "\x00", "=?"]
)
ADDRESS_LIKE = st.one_of(
    st.emails(),
    st.text(),
    st.lists(_ADDRESS_ALPHABET, max_size=30).map("".join),
    st.tuples(st.emails(), st.lists(_ADDRESS_ALPHABET, max_size=3).map("".join)).map(
        lambda parts: parts[0] + parts[1]
    ),
)


@given(ADDRESS_LIKE)
def test_the_command_line_and_the_sender_accept_the_same_addresses(text: str) -> None:
    email_problems = [
        problem
        for problem in recipient_problems(Recipient(user_id="ana", email=text))
        if problem.startswith("email: ")
    ]

    assert (not email_problems) == (checked_address(text) is not None)


@given(st.emails() | ADDRESS_LIKE)
def test_an_accepted_address_means_itself_in_the_message(text: str) -> None:
    """Whatever is accepted is one recipient, unchanged, in the message the sender
    builds, as a mail reader parses it."""
    assume(checked_address(text) is not None)
    letter = Letter(
        delivery_id="d1",
        from_address="alerts@tidings.example",
        from_name="Alerts",
        to_address=text,
        title="Overload",
        body="body",
        sent_at=datetime(2024, 5, 1, tzinfo=UTC),
    )
    raw = build_message(letter).as_bytes(policy=SMTP)
    parsed = BytesParser(policy=default_policy).parsebytes(raw)
    assert [address.addr_spec for address in parsed["To"].addresses] == [text]

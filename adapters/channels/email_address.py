"""The one rule for what counts as an email address, shared by every place that takes one.

``tidings recipients set --email``, ``SMTP_FROM_ADDRESS`` and the email sender all ask
``address_problem``, so an address the command line accepts is one the sender will use,
and a typo fails where it is typed instead of as a dead delivery hours later. Pure and
built on ``re`` alone, so the command line does not load the email or SMTP libraries.

The rule is deliberately narrower than RFC 5321/5322, so that what it accepts means the
same thing on an SMTP command line, in a ``To:`` header, and to every mail reader:

- ASCII only (no SMTPUTF8): ``üser@example.com`` needs a server extension that a
  relay may lack, and a lone surrogate (an undecodable byte from the command line)
  is not text at all;
- at most 254 characters in all, 64 in the local part (RFC 5321's limits);
- a local part of dot-separated atoms (letters, digits and ``!#$%&'*+-/=?^_`{|}~``):
  no quoted strings, comments, spaces or commas, so it is exactly one address;
- no ``=?``, which a mail reader would decode as an RFC 2047 encoded word;
- a domain of host-name labels with at least one dot and a last label that is not all
  digits: ``root@localhost`` and ``ana@example`` are refused (almost always a typo,
  and no use to a remote relay), as are address literals like ``ana@[192.0.2.1]``.
"""

from __future__ import annotations

import re
from collections.abc import Callable

MAX_ADDRESS_LENGTH = 254
MAX_LOCAL_PART_LENGTH = 64

_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LOCAL_PART = re.compile(rf"{_ATOM}(?:\.{_ATOM})*")
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")

_TEXT_RULES: tuple[tuple[Callable[[str], bool], str], ...] = (
    (lambda text: not text, "it is empty"),
    (
        lambda text: len(text) > MAX_ADDRESS_LENGTH,
        f"it is longer than {MAX_ADDRESS_LENGTH} characters",
    ),
    (lambda text: not text.isascii(), "it has characters that are not ASCII"),
    (
        lambda text: not text.isprintable() or any(ch.isspace() for ch in text),
        "it has spaces or control characters",
    ),
    (lambda text: text.count("@") != 1, "it must be exactly one local@domain"),
    (
        lambda text: "=?" in text,
        "it has '=?', which mail readers decode as an encoded word",
    ),
)
"""Checks on the whole text, in order: the first that holds is the problem."""


def address_problem(text: str) -> str | None:
    """Why ``text`` is not one usable address ``local@domain``, or None when it is."""
    problem = _text_problem(text)
    if problem is not None:
        return problem
    local, _, domain = text.partition("@")
    return _local_part_problem(local) or _domain_problem(domain)


def checked_address(text: str) -> str | None:
    """``text`` when it is one usable address (see ``address_problem``), else None."""
    return text if address_problem(text) is None else None


def _text_problem(text: str) -> str | None:
    """The first of ``_TEXT_RULES`` that rules ``text`` out before its parts are read."""
    return next((reason for broken, reason in _TEXT_RULES if broken(text)), None)


def _local_part_problem(local: str) -> str | None:
    if not local:
        return "the part before @ is empty"
    if len(local) > MAX_LOCAL_PART_LENGTH:
        return f"the part before @ is longer than {MAX_LOCAL_PART_LENGTH} characters"
    if not _LOCAL_PART.fullmatch(local):
        return (
            "the part before @ may hold only letters, digits, single dots between them"
            " and !#$%&'*+-/=?^_`{|}~"
        )
    return None


def _domain_problem(domain: str) -> str | None:
    labels = domain.split(".")
    if len(labels) < 2 or not all(_LABEL.fullmatch(label) for label in labels):
        return "the part after @ must be a host name with a dot, like example.com"
    if labels[-1].isdigit():
        return "the part after @ must end in a name, not a number"
    return None

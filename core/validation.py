"""Validation of incoming events, from JSON lines, the CLI or rows a producer inserted.

Every problem is collected, not just the first: a producer fixing a bad event wants
the whole list at once. Limits exist because titles become email subjects and
bodies and payloads are stored and sent verbatim. Text must be storable and printable
Unicode (no lone surrogates, no C1 controls, no NUL), and JSON text is read strictly
(``strict_json``): what one parser would read differently from another, or could not
read without exhausting its stack, is refused here, once, rather than failing later in
a store, the inbox or a receiver.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Callable, Mapping
from itertools import accumulate
from typing import NoReturn

import attrs
from returns.result import Failure, Result, Success

from tidings.core.values import GLOBAL_KIND, Event, Severity

MAX_ID_LENGTH = 128
MAX_TITLE_LENGTH = 200
MAX_BODY_BYTES = 64 * 1024
MAX_PAYLOAD_BYTES = 64 * 1024
MAX_PAYLOAD_DEPTH = 64
"""Arrays and objects nested in a payload, the payload itself being level 1. Python's
json parser recurses once per level, so depth is bounded before parsing, and readers of
a stored payload (the inbox, webhooks) parse it again."""

_KNOWN_FIELDS = frozenset(
    {"event_id", "user_id", "kind", "severity", "title", "body", "payload", "payload_json"}
)
_SEVERITY_NAMES = ", ".join(severity.value for severity in Severity)
_SEVERITY_VALUES = frozenset(severity.value for severity in Severity)
_ABSENT = object()


@attrs.frozen
class FieldError:
    """One problem with one field, in words a producer can act on."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


@attrs.frozen
class InvalidEvent:
    """Every reason an event was refused. ``str()`` lists them all."""

    errors: tuple[FieldError, ...]

    def __str__(self) -> str:
        return "; ".join(str(error) for error in self.errors)


_FINE: tuple[str, ...] = ()
_NUL = "must not contain NUL characters"
_CONTROL = "must not contain control characters"
_C1 = "must not contain C1 control characters (U+0080 to U+009F)"
_SURROGATE = "must not contain lone surrogates (U+D800 to U+DFFF, not Unicode text)"
_LINE_BREAK = "must not contain line breaks (it becomes an email subject)"

# Each kind of text is checked with one search for everything it must not hold; only
# text that fails it is searched again, rule by rule, to say which characters it holds.
# Surrogates come from "\ud800" escapes in JSON and from undecodable command-line bytes;
# no UTF-8 encoder (PostgreSQL, SQLite, stdout) accepts them, so they would fail later,
# far from the producer, on every read of the row.
_Rules = tuple[tuple[re.Pattern[str], str], ...]
_SURROGATES = re.compile("[\ud800-\udfff]")
_IDENTIFIER_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_IDENTIFIER_RULES: _Rules = (
    (re.compile("[\x00-\x1f\x7f-\x9f]"), _CONTROL),
    (_SURROGATES, _SURROGATE),
)
_TITLE_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_TITLE_RULES: _Rules = (
    # What str.splitlines splits on: any of these could end a subject line somewhere.
    (re.compile("[\n\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]"), _LINE_BREAK),
    (re.compile("\x00"), _NUL),
    (re.compile("[\x01-\x09\x0e-\x1b\x1f\x7f-\x84\x86-\x9f]"), _CONTROL),
    (_SURROGATES, _SURROGATE),
)
_TEXT_UNSAFE = re.compile("[\x00\x80-\x9f\ud800-\udfff]")
_TEXT_RULES: _Rules = (
    (re.compile("\x00"), _NUL),
    (re.compile("[\x80-\x9f]"), _C1),
    (_SURROGATES, _SURROGATE),
)
# The JSON escapes that decode to one of _TEXT_UNSAFE's characters.
_UNSAFE_ESCAPE = re.compile(r"\\u(?:0000|00[89][0-9a-fA-F]|[dD][89a-fA-F][0-9a-fA-F]{2})")


def _character_problems(text: str, rules: _Rules) -> tuple[str, ...]:
    """The message of each rule whose characters ``text`` holds (after one search over
    them all found something)."""
    return tuple(message for pattern, message in rules if pattern.search(text))


def _text_problems(text: str) -> tuple[str, ...]:
    """What free text (a body, a payload's strings) must not hold: NUL, C1 controls, lone
    surrogates. ASCII text (known in constant time) can only hold NUL, which ``in`` finds."""
    if text.isascii():
        return (_NUL,) if "\x00" in text else _FINE
    if _TEXT_UNSAFE.search(text) is None:
        return _FINE
    return _character_problems(text, _TEXT_RULES)


def _type_problem(value: object) -> tuple[str, ...]:
    return (f"must be a string, got {type(value).__name__}",)


def _identifier_problems(value: object) -> tuple[str, ...]:
    if not isinstance(value, str):
        return _type_problem(value)
    if not value.strip():
        return ("must not be empty",)
    if len(value) > MAX_ID_LENGTH:
        return (f"must be at most {MAX_ID_LENGTH} characters, got {len(value)}",)
    if _IDENTIFIER_UNSAFE.search(value):
        return _character_problems(value, _IDENTIFIER_RULES)
    return _FINE


def _kind_problems(value: object) -> tuple[str, ...]:
    if value == GLOBAL_KIND:
        return (f"{GLOBAL_KIND!r} is reserved for global preferences",)
    return _identifier_problems(value)


def _severity_problems(value: object) -> tuple[str, ...]:
    if not isinstance(value, str):
        return _type_problem(value)
    if value in _SEVERITY_VALUES:
        return _FINE
    return (f"must be one of {_SEVERITY_NAMES}, got {_quoted(value)}",)


def _title_problems(value: object) -> tuple[str, ...]:
    if not isinstance(value, str):
        return _type_problem(value)
    if not value.strip():
        return ("must not be empty",)
    problems = []
    if len(value) > MAX_TITLE_LENGTH:
        problems.append(f"must be at most {MAX_TITLE_LENGTH} characters, got {len(value)}")
    if _TITLE_UNSAFE.search(value):
        problems.extend(_character_problems(value, _TITLE_RULES))
    return tuple(problems)


def _body_problems(value: object) -> tuple[str, ...]:
    if not isinstance(value, str):
        return _type_problem(value)
    problems = []
    if size := _oversize(value, MAX_BODY_BYTES):
        problems.append(f"must be at most {MAX_BODY_BYTES} bytes, got {size}")
    problems.extend(_text_problems(value))
    return tuple(problems)


def _payload_text_problems(value: object) -> tuple[str, ...]:
    """The problems of every string in a payload, key or value, however deep
    (iteratively: no recursion limit), each named once."""
    found: set[str] = set()
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            found.update(_text_problems(item))
        elif isinstance(item, Mapping):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list | tuple):
            pending.extend(item)
    return tuple(message for _, message in _TEXT_RULES if message in found)


def _may_hold_unsafe_text(text: str) -> bool:
    """Whether the strings of this JSON text may hold what ``_text_problems`` refuses,
    raw or escaped: one search over the text spares walking a clean payload. (Parsed or
    dumped JSON text holds no raw NUL; an escaped surrogate pair, an emoji, matches too,
    and the walk then finds nothing.)"""
    if not text.isascii() and _TEXT_UNSAFE.search(text):
        return True
    return "\\u" in text and _UNSAFE_ESCAPE.search(text) is not None


_SHOWN = 64


def _quoted(text: str) -> str:
    """Input quoted for a message: escaped (no control or bidi character reaches a
    terminal or ``events.error``) and cut short."""
    return repr(text[:_SHOWN]) + ("..." if len(text) > _SHOWN else "")


def _field_name(name: object) -> str:
    """An unknown field's name as given when it is short and printable, else quoted."""
    text = str(name)
    return text if text.isprintable() and len(text) <= _SHOWN else _quoted(text)


# ----------------------------------------------------------------- strict JSON text


class _Refused(ValueError):
    """Raised by the parser hooks below to end a parse with a reason."""


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    """An object's members, refusing a repeated key: ``json`` would keep the last, so
    what a reader sees would depend on its parser."""
    found = dict(pairs)
    if len(found) < len(pairs):
        counts = Counter(key for key, _ in pairs)
        repeated = next(key for key, _ in pairs if counts[key] > 1)
        raise _Refused(f"duplicate key {_quoted(repeated)}")
    return found


def _no_constant(name: str) -> NoReturn:
    raise _Refused(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    """A float literal, refused when it overflows to infinity (``1e999``)."""
    number = float(text)
    if math.isinf(number):
        raise _Refused("a number is out of range")
    return number


# Strings (an unterminated one runs to the end: the pattern cannot fail, so it never
# backtracks), then everything but brackets.
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_BRACKET_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def _nested_deeper(text: str, limit: int) -> bool:
    """Whether JSON text nests arrays and objects more than ``limit`` deep, found from its
    brackets outside strings without parsing (linear, in C: regex, ``accumulate``). Up to
    where a parser stops, its depth is this running count, so a parse of text within the
    limit never recurses deeper."""
    if text.count("[") + text.count("{") <= limit:
        return False
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    return max(accumulate(map(_BRACKET_STEP.__getitem__, brackets)), default=0) > limit


def _decode_error(error: json.JSONDecodeError) -> str:
    """The parser's message and where (some messages end in "at" already)."""
    where = (
        f"line {error.lineno} column {error.colno}" if error.lineno > 1 else f"column {error.colno}"
    )
    return f"{error.msg.removesuffix(' at')} at {where}"


# One decoder, built once: ``json.loads`` with hooks builds a new one on every call.
_STRICT_DECODER = json.JSONDecoder(
    object_pairs_hook=_unique_keys, parse_constant=_no_constant, parse_float=_finite_float
)


def strict_json(text: str, max_depth: int) -> Result[object, str]:
    """``text`` parsed as JSON (RFC 8259) with I-JSON's rules (RFC 7493): unique keys,
    finite numbers, no NaN or Infinity, and at most ``max_depth`` levels; or the reason
    it is refused. Never raises: hostile text is a reason, not a traceback."""
    if _nested_deeper(text, max_depth):
        return Failure(f"nested deeper than {max_depth} levels")
    try:
        return Success(_STRICT_DECODER.decode(text))
    except json.JSONDecodeError as error:
        return Failure(_decode_error(error))
    except _Refused as error:
        return Failure(str(error))
    except ValueError:  # int() past Python's limit on digits (sys.get_int_max_str_digits)
        return Failure("a number has too many digits")


# ------------------------------------------------------------------------ payload


def _oversize(text: str, limit: int) -> int:
    """The UTF-8 size of ``text`` if it exceeds ``limit`` bytes, else 0. A text of at
    most a quarter of the limit in characters fits without encoding it."""
    if len(text) * 4 <= limit:
        return 0
    size = len(text.encode("utf-8", "surrogatepass"))
    return size if size > limit else 0


def _size_error(field: str, text: str) -> FieldError | None:
    if size := _oversize(text, MAX_PAYLOAD_BYTES):
        return FieldError(field, f"must be at most {MAX_PAYLOAD_BYTES} bytes, got {size}")
    return None


def _content_errors(field: str, text: str, decoded: object) -> tuple[FieldError, ...]:
    """A payload that is a JSON object, as ``text``, must hold only storable strings."""
    if not isinstance(decoded, Mapping):
        return (FieldError(field, f"must be a JSON object, got {type(decoded).__name__}"),)
    if _may_hold_unsafe_text(text):
        return tuple(FieldError(field, problem) for problem in _payload_text_problems(decoded))
    return ()


def _payload_json_text(field: str, value: object) -> tuple[str | None, tuple[FieldError, ...]]:
    """``payload_json``: JSON text, kept byte for byte once it proves to be an object."""
    if not isinstance(value, str):
        return None, (FieldError(field, f"must be a string, got {type(value).__name__}"),)
    too_big = _size_error(field, value)
    if too_big:
        return None, (too_big,)
    parsed = strict_json(value, MAX_PAYLOAD_DEPTH)
    if isinstance(parsed, Failure):
        return None, (FieldError(field, f"is not valid JSON: {parsed.failure()}"),)
    errors = _content_errors(field, value, parsed.value_or(None))
    return (None, errors) if errors else (value, ())


def _payload_object_text(field: str, value: object) -> tuple[str | None, tuple[FieldError, ...]]:
    """``payload``: an object, encoded compactly as the stored text."""
    if not isinstance(value, Mapping):
        return None, (FieldError(field, f"must be a JSON object, got {type(value).__name__}"),)
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError, RecursionError) as error:
        return None, (FieldError(field, f"is not JSON-serialisable: {error}"),)
    too_big = _size_error(field, text)
    if too_big:
        return None, (too_big,)
    if _nested_deeper(text, MAX_PAYLOAD_DEPTH):
        return None, (FieldError(field, f"is nested deeper than {MAX_PAYLOAD_DEPTH} levels"),)
    errors = _content_errors(field, text, value)
    return (None, errors) if errors else (text, ())


def _payload_text(field: str, value: object) -> tuple[str | None, tuple[FieldError, ...]]:
    """The payload as stored JSON text, from either spelling."""
    if value is None:
        return None, ()
    if field == "payload_json":
        return _payload_json_text(field, value)
    return _payload_object_text(field, value)


_FIELD_CHECKS: dict[str, Callable[[object], tuple[str, ...]]] = {
    "event_id": _identifier_problems,
    "user_id": _identifier_problems,
    "kind": _kind_problems,
    "severity": _severity_problems,
    "title": _title_problems,
    "body": _body_problems,
}


def _field_errors(data: Mapping[str, object]) -> list[FieldError]:
    errors = (
        []
        if _KNOWN_FIELDS.issuperset(data)
        else [
            FieldError(_field_name(k), "is not a known field")
            for k in data
            if k not in _KNOWN_FIELDS
        ]
    )
    for field, check in _FIELD_CHECKS.items():
        value = data.get(field, _ABSENT)
        if value is _ABSENT:
            errors.append(FieldError(field, "is required"))
        elif problems := check(value):
            errors.extend(FieldError(field, problem) for problem in problems)
    return errors


def parse_event(data: Mapping[str, object]) -> Result[Event, InvalidEvent]:
    """Check an incoming event and build it, or say everything that is wrong with it.

    Accepts the payload either as ``payload`` (a JSON object) or as ``payload_json``
    (its text, as stored rows carry it), not both.
    """
    errors = _field_errors(data)
    payload_json: str | None = None
    if "payload" in data and "payload_json" in data:
        errors.append(FieldError("payload", "give payload or payload_json, not both"))
    else:
        field = "payload_json" if "payload_json" in data else "payload"
        payload_json, payload_errors = _payload_text(field, data.get(field))
        errors.extend(payload_errors)
    if errors:
        return Failure(InvalidEvent(tuple(errors)))
    return Success(
        Event(
            event_id=str(data["event_id"]),
            user_id=str(data["user_id"]),
            kind=str(data["kind"]),
            severity=Severity(data["severity"]),
            title=str(data["title"]),
            body=str(data["body"]),
            payload_json=payload_json,
        )
    )


def event_fields(event: Event) -> dict[str, object]:
    """An event as the mapping ``parse_event`` reads (the payload as ``payload_json``):
    ``Event`` values can be built without validation, so stores check them with this."""
    fields: dict[str, object] = {
        "event_id": event.event_id,
        "user_id": event.user_id,
        "kind": event.kind,
        "severity": event.severity.value,
        "title": event.title,
        "body": event.body,
    }
    if event.payload_json is not None:
        fields["payload_json"] = event.payload_json
    return fields


def is_valid(event: Event) -> bool:
    """Whether ``event`` passes ``parse_event`` as it stands."""
    return isinstance(parse_event(event_fields(event)), Success)

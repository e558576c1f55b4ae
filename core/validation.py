"""Validation of incoming events, from JSON lines, the CLI or rows a producer inserted.

Every problem is collected, not just the first: a producer fixing a bad event wants
the whole list at once. Limits exist because titles become email subjects and
bodies and payloads are stored and sent verbatim.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping

import attrs
from returns.result import Failure, Result, Success

from core.values import GLOBAL_KIND, Event, Severity

MAX_ID_LENGTH = 128
MAX_TITLE_LENGTH = 200
MAX_BODY_BYTES = 64 * 1024
MAX_PAYLOAD_BYTES = 64 * 1024

_KNOWN_FIELDS = frozenset(
    {"event_id", "user_id", "kind", "severity", "title", "body", "payload", "payload_json"}
)
_SEVERITY_NAMES = ", ".join(severity.value for severity in Severity)
_SEVERITY_VALUES = frozenset(severity.value for severity in Severity)


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


_CONTROL_CHARACTER = re.compile("[\x00-\x1f\x7f]")


def _has_control_character(text: str) -> bool:
    return _CONTROL_CHARACTER.search(text) is not None


def _identifier_errors(field: str, value: object) -> Iterator[FieldError]:
    if not isinstance(value, str):
        yield FieldError(field, f"must be a string, got {type(value).__name__}")
    elif not value.strip():
        yield FieldError(field, "must not be empty")
    elif len(value) > MAX_ID_LENGTH:
        yield FieldError(field, f"must be at most {MAX_ID_LENGTH} characters, got {len(value)}")
    elif _has_control_character(value):
        yield FieldError(field, "must not contain control characters")


def _severity_errors(value: object) -> Iterator[FieldError]:
    if not isinstance(value, str):
        yield FieldError("severity", f"must be a string, got {type(value).__name__}")
    elif value not in _SEVERITY_VALUES:
        yield FieldError("severity", f"must be one of {_SEVERITY_NAMES}, got {value!r}")


def _title_errors(value: object) -> Iterator[FieldError]:
    if not isinstance(value, str):
        yield FieldError("title", f"must be a string, got {type(value).__name__}")
    elif not value.strip():
        yield FieldError("title", "must not be empty")
    else:
        if len(value) > MAX_TITLE_LENGTH:
            yield FieldError(
                "title", f"must be at most {MAX_TITLE_LENGTH} characters, got {len(value)}"
            )
        if "\r" in value or "\n" in value:
            yield FieldError("title", "must not contain line breaks (it becomes an email subject)")
        if "\x00" in value:
            yield FieldError("title", "must not contain NUL characters")


def _body_errors(value: object) -> Iterator[FieldError]:
    if not isinstance(value, str):
        yield FieldError("body", f"must be a string, got {type(value).__name__}")
        return
    size = len(value.encode("utf-8", "surrogatepass"))
    if size > MAX_BODY_BYTES:
        yield FieldError("body", f"must be at most {MAX_BODY_BYTES} bytes, got {size}")
    if "\x00" in value:
        yield FieldError("body", "must not contain NUL characters")


def _contains_nul(value: object) -> bool:
    """Any NUL in any string, key or value, however deep (iteratively: no recursion limit)."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, Mapping):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list | tuple):
            pending.extend(item)
    return False


def _size_error(field: str, text: str) -> FieldError | None:
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_PAYLOAD_BYTES:
        return FieldError(field, f"must be at most {MAX_PAYLOAD_BYTES} bytes, got {size}")
    return None


def _object_errors(field: str, value: object) -> tuple[FieldError, ...]:
    if not isinstance(value, Mapping):
        return (FieldError(field, f"must be a JSON object, got {type(value).__name__}"),)
    if _contains_nul(value):
        return (FieldError(field, "must not contain NUL characters"),)
    return ()


def _payload_json_text(field: str, value: object) -> tuple[str | None, tuple[FieldError, ...]]:
    """``payload_json``: JSON text, kept byte for byte once it proves to be an object."""
    if not isinstance(value, str):
        return None, (FieldError(field, f"must be a string, got {type(value).__name__}"),)
    too_big = _size_error(field, value)
    if too_big:
        return None, (too_big,)
    try:
        decoded = json.loads(value)
    except json.JSONDecodeError as error:
        return None, (FieldError(field, f"is not valid JSON: {error.msg}"),)
    except (ValueError, RecursionError) as error:
        return None, (FieldError(field, f"is not usable JSON: {error}"),)
    errors = _object_errors(field, decoded)
    return (None, errors) if errors else (value, ())


def _payload_object_text(field: str, value: object) -> tuple[str | None, tuple[FieldError, ...]]:
    """``payload``: an object, encoded compactly as the stored text."""
    errors = _object_errors(field, value)
    if errors:
        return None, errors
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError, RecursionError) as error:
        return None, (FieldError(field, f"is not JSON-serialisable: {error}"),)
    too_big = _size_error(field, text)
    return (None, (too_big,)) if too_big else (text, ())


def _payload_text(field: str, value: object) -> tuple[str | None, tuple[FieldError, ...]]:
    """The payload as stored JSON text, from either spelling."""
    if value is None:
        return None, ()
    if field == "payload_json":
        return _payload_json_text(field, value)
    return _payload_object_text(field, value)


def _kind_errors(value: object) -> Iterator[FieldError]:
    yield from _identifier_errors("kind", value)
    if value == GLOBAL_KIND:
        yield FieldError("kind", f"{GLOBAL_KIND!r} is reserved for global preferences")


_FIELD_CHECKS: dict[str, Callable[[object], Iterator[FieldError]]] = {
    "event_id": lambda value: _identifier_errors("event_id", value),
    "user_id": lambda value: _identifier_errors("user_id", value),
    "kind": _kind_errors,
    "severity": _severity_errors,
    "title": _title_errors,
    "body": _body_errors,
}


def _field_errors(data: Mapping[str, object]) -> list[FieldError]:
    errors = [
        FieldError(str(key), "is not a known field") for key in data if key not in _KNOWN_FIELDS
    ]
    for field, check in _FIELD_CHECKS.items():
        if field in data:
            errors.extend(check(data[field]))
        else:
            errors.append(FieldError(field, "is required"))
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

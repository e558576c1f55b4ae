"""Validation of incoming events, from JSON lines, the CLI or rows a producer inserted.

Every problem is collected, not just the first: a producer fixing a bad event wants
the whole list at once. Limits exist because titles become email subjects and
bodies and payloads are stored and sent verbatim.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping

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


_CONTROL_CHARACTER = re.compile("[\x00-\x1f\x7f]")


def _has_control_character(text: str) -> bool:
    return _CONTROL_CHARACTER.search(text) is not None


_FINE: tuple[str, ...] = ()


def _type_problem(value: object) -> tuple[str, ...]:
    return (f"must be a string, got {type(value).__name__}",)


def _identifier_problems(value: object) -> tuple[str, ...]:
    if not isinstance(value, str):
        return _type_problem(value)
    if not value.strip():
        return ("must not be empty",)
    if len(value) > MAX_ID_LENGTH:
        return (f"must be at most {MAX_ID_LENGTH} characters, got {len(value)}",)
    if _has_control_character(value):
        return ("must not contain control characters",)
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
    return (f"must be one of {_SEVERITY_NAMES}, got {value!r}",)


def _title_problems(value: object) -> tuple[str, ...]:
    if not isinstance(value, str):
        return _type_problem(value)
    if not value.strip():
        return ("must not be empty",)
    problems = []
    if len(value) > MAX_TITLE_LENGTH:
        problems.append(f"must be at most {MAX_TITLE_LENGTH} characters, got {len(value)}")
    if "\r" in value or "\n" in value:
        problems.append("must not contain line breaks (it becomes an email subject)")
    if "\x00" in value:
        problems.append("must not contain NUL characters")
    return tuple(problems)


def _body_problems(value: object) -> tuple[str, ...]:
    if not isinstance(value, str):
        return _type_problem(value)
    problems = []
    if size := _oversize(value, MAX_BODY_BYTES):
        problems.append(f"must be at most {MAX_BODY_BYTES} bytes, got {size}")
    if "\x00" in value:
        problems.append("must not contain NUL characters")
    return tuple(problems)


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
        else [FieldError(str(k), "is not a known field") for k in data if k not in _KNOWN_FIELDS]
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

"""``core.parse_event``: every rule on incoming events, reported all at once.

Examples pin each rule and its message; two properties check that arbitrary JSON-like
input never raises and that a valid event survives parsing unchanged.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from returns.result import Failure, Result, Success

from tidings.core import Event, FieldError, InvalidEvent, Severity, parse_event
from tidings.core.validation import MAX_PAYLOAD_DEPTH, event_fields, is_valid, strict_json
from tidings.testing import event_mappings

REQUIRED = ("event_id", "user_id", "kind", "severity", "title", "body")
KIB_64 = 64 * 1024
CONTROL = "must not contain control characters"
C1 = "must not contain C1 control characters (U+0080 to U+009F)"
SURROGATE = "must not contain lone surrogates (U+D800 to U+DFFF, not Unicode text)"
LINE_BREAK = "must not contain line breaks (it becomes an email subject)"


def valid(**changes: object) -> dict[str, object]:
    data: dict[str, object] = {
        "event_id": "evt-1",
        "user_id": "u42",
        "kind": "burnout_overload",
        "severity": "watch",
        "title": "You crossed the overload threshold",
        "body": "Three weeks above 50 hours.",
    }
    data.update(changes)
    return data


def event_of(result: Result[Event, InvalidEvent]) -> Event:
    assert isinstance(result, Success), str(result)
    event: Event = result.unwrap()
    return event


def errors_of(data: dict[str, object]) -> tuple[FieldError, ...]:
    result = parse_event(data)
    assert isinstance(result, Failure), f"accepted {data!r}"
    invalid: InvalidEvent = result.failure()
    assert invalid.errors, "a refusal must say why"
    return invalid.errors


def only_error(data: dict[str, object]) -> FieldError:
    errors = errors_of(data)
    assert len(errors) == 1, errors
    return errors[0]


# ------------------------------------------------------------------- valid events


def test_valid_event_without_payload() -> None:
    assert parse_event(valid()) == Success(
        Event(
            event_id="evt-1",
            user_id="u42",
            kind="burnout_overload",
            severity=Severity.WATCH,
            title="You crossed the overload threshold",
            body="Three weeks above 50 hours.",
            payload_json=None,
        )
    )


def test_payload_mapping_becomes_compact_json_text() -> None:
    payload = {"hours": 52, "weeks": [1, 2.5, None, True], "note": "très chargé", "nested": {}}
    event = event_of(parse_event(valid(payload=payload)))
    assert (
        event.payload_json
        == '{"hours":52,"weeks":[1,2.5,null,true],"note":"très chargé","nested":{}}'
    )


def test_payload_json_text_is_accepted() -> None:
    compact = '{"a":1,"b":["x",null]}'
    assert event_of(parse_event(valid(payload_json=compact))).payload_json == compact
    spaced = '{ "a" : 1,\n "b" : ["x", null] }'
    stored = event_of(parse_event(valid(payload_json=spaced))).payload_json
    assert stored == spaced  # kept verbatim: the audit row is what the producer sent


def test_pathological_json_is_an_error_not_an_exception() -> None:
    deep = "[" * 100_000 + "]" * 100_000
    assert only_error(valid(payload_json=deep)).field == "payload_json"
    huge_int = '{"a": ' + "1" * 5000 + "}"
    assert only_error(valid(payload_json=huge_int)).field == "payload_json"
    nested: dict[str, Any] = {}
    for _ in range(100_000):
        nested = {"k": nested}
    assert only_error(valid(payload=nested)).field == "payload"


def test_every_severity_is_accepted() -> None:
    for name, severity in (
        ("info", Severity.INFO),
        ("watch", Severity.WATCH),
        ("critical", Severity.CRITICAL),
    ):
        assert event_of(parse_event(valid(severity=name))).severity is severity


def test_limits_are_inclusive() -> None:
    event = event_of(
        parse_event(
            valid(
                event_id="e" * 128,
                user_id="u" * 128,
                kind="k" * 128,
                title="t" * 200,
                body="b" * KIB_64,
            )
        )
    )
    assert (len(event.event_id), len(event.user_id), len(event.kind)) == (128, 128, 128)
    assert len(event.title) == 200
    assert len(event.body) == KIB_64


def test_empty_body_and_unicode_identifiers_are_fine() -> None:
    event = event_of(parse_event(valid(body="", user_id="utilisateur-é", kind="surcharge")))
    assert (event.body, event.user_id, event.kind) == ("", "utilisateur-é", "surcharge")


# ------------------------------------------------------------------ required, types


def test_each_required_field_is_required() -> None:
    for field in REQUIRED:
        data = valid()
        del data[field]
        assert only_error(data) == FieldError(field, "is required")


def test_empty_mapping_reports_every_required_field() -> None:
    errors = errors_of({})
    assert errors == tuple(FieldError(field, "is required") for field in REQUIRED)


def test_wrong_types_are_named() -> None:
    cases: list[tuple[str, object, str]] = [
        ("event_id", 7, "must be a string, got int"),
        ("user_id", None, "must be a string, got NoneType"),
        ("kind", ["a"], "must be a string, got list"),
        ("severity", 2, "must be a string, got int"),
        ("title", b"bytes", "must be a string, got bytes"),
        ("body", {"x": 1}, "must be a string, got dict"),
        ("payload_json", {"a": 1}, "must be a string, got dict"),
    ]
    for field, value, message in cases:
        assert only_error(valid(**{field: value})) == FieldError(field, message)


# ------------------------------------------------------------------------ identifiers


def test_identifiers_must_not_be_empty_or_blank() -> None:
    for field in ("event_id", "user_id", "kind"):
        for value in ("", "   ", "\t"):
            assert only_error(valid(**{field: value})) == FieldError(field, "must not be empty")


def test_identifiers_are_at_most_128_characters() -> None:
    for field in ("event_id", "user_id", "kind"):
        assert only_error(valid(**{field: "x" * 129})) == FieldError(
            field, "must be at most 128 characters, got 129"
        )


def test_identifiers_refuse_control_characters() -> None:
    for field in ("event_id", "user_id", "kind"):
        for char in ("\x00", "\x01", "\n", "\r", "\t", "\x1b", "\x1f", "\x7f"):
            assert only_error(valid(**{field: f"a{char}b"})) == FieldError(
                field, "must not contain control characters"
            )


def test_identifiers_refuse_c1_controls_and_lone_surrogates() -> None:
    for field in ("event_id", "user_id", "kind"):
        for char in ("\x80", "\x85", "\x9b", "\x9f"):
            assert only_error(valid(**{field: f"a{char}b"})) == FieldError(field, CONTROL)
        for char in ("\ud800", "\udbff", "\udc00", "\udcff", "\udfff"):
            assert only_error(valid(**{field: f"a{char}b"})) == FieldError(field, SURROGATE)
        assert errors_of(valid(**{field: "\x1b\udcff"})) == (
            FieldError(field, CONTROL),
            FieldError(field, SURROGATE),
        )
    # Next to the refused ranges: fine.
    assert event_of(parse_event(valid(user_id="\xa0\ud7ff\ue000\U0001f600"))).user_id


def test_global_kind_is_reserved() -> None:
    assert only_error(valid(kind="_global")) == FieldError(
        "kind", "'_global' is reserved for global preferences"
    )
    assert event_of(parse_event(valid(kind="_global_x"))).kind == "_global_x"


# --------------------------------------------------------------------------- severity


def test_unknown_severities_are_refused_with_the_choices() -> None:
    for value in ("INFO", "warn", "", " info"):
        assert only_error(valid(severity=value)) == FieldError(
            "severity", f"must be one of info, watch, critical, got {value!r}"
        )


# ------------------------------------------------------------------------------ title


def test_title_must_not_be_empty() -> None:
    for value in ("", "  "):
        assert only_error(valid(title=value)) == FieldError("title", "must not be empty")


def test_title_is_at_most_200_characters() -> None:
    assert only_error(valid(title="t" * 201)) == FieldError(
        "title", "must be at most 200 characters, got 201"
    )


def test_title_refuses_line_breaks() -> None:
    for value in ("a\rb", "a\nb", "a\r\nb", "trailing\n"):
        assert only_error(valid(title=value)) == FieldError(
            "title", "must not contain line breaks (it becomes an email subject)"
        )


def test_title_refuses_nul() -> None:
    assert only_error(valid(title="a\x00b")) == FieldError(
        "title", "must not contain NUL characters"
    )


def test_title_refuses_every_line_separator() -> None:
    """Whatever str.splitlines splits on: a mail reader or a terminal may break there."""
    for char in ("\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"):
        assert only_error(valid(title=f"a{char}b")) == FieldError("title", LINE_BREAK)


def test_title_refuses_other_controls_and_lone_surrogates() -> None:
    for char in ("\t", "\x01", "\x1b", "\x1f", "\x7f", "\x80", "\x84", "\x86", "\x9f"):
        assert only_error(valid(title=f"a{char}b")) == FieldError("title", CONTROL)
    for char in ("\ud800", "\udcff", "\udfff"):
        assert only_error(valid(title=f"a{char}b")) == FieldError("title", SURROGATE)
    assert [error.message for error in errors_of(valid(title="\x00\n\x1b\ud800"))] == [
        LINE_BREAK,
        "must not contain NUL characters",
        CONTROL,
        SURROGATE,
    ]


def test_title_reports_length_and_line_break_together() -> None:
    errors = errors_of(valid(title="x" * 201 + "\n"))
    assert [error.field for error in errors] == ["title", "title"]
    assert errors[0].message == "must be at most 200 characters, got 202"
    assert errors[1].message.startswith("must not contain line breaks")


# ------------------------------------------------------------------------------- body


def test_body_limit_is_in_utf8_bytes() -> None:
    assert event_of(parse_event(valid(body="é" * (KIB_64 // 2)))).body == "é" * (KIB_64 // 2)
    assert only_error(valid(body="é" * (KIB_64 // 2 + 1))) == FieldError(
        "body", f"must be at most {KIB_64} bytes, got {KIB_64 + 2}"
    )
    assert only_error(valid(body="b" * (KIB_64 + 1))) == FieldError(
        "body", f"must be at most {KIB_64} bytes, got {KIB_64 + 1}"
    )


def test_body_refuses_nul() -> None:
    assert only_error(valid(body="line\x00")) == FieldError(
        "body", "must not contain NUL characters"
    )


def test_body_refuses_c1_controls_and_lone_surrogates_but_keeps_other_text() -> None:
    assert only_error(valid(body="a\x85b")) == FieldError("body", C1)
    assert only_error(valid(body="a\x9fb")) == FieldError("body", C1)
    assert only_error(valid(body="a\udcffb")) == FieldError("body", SURROGATE)
    text = "line one\nline\ttwo\r\n\u2028é\xa0\U0001f600"
    assert event_of(parse_event(valid(body=text))).body == text


# ---------------------------------------------------------------------------- payload


def test_payload_must_be_an_object() -> None:
    for value, type_name in (([1, 2], "list"), ("text", "str"), (3, "int"), (True, "bool")):
        assert only_error(valid(payload=value)) == FieldError(
            "payload", f"must be a JSON object, got {type_name}"
        )
    for text, type_name in (
        ("[1, 2]", "list"),
        ('"text"', "str"),
        ("3", "int"),
        ("null", "NoneType"),
    ):
        assert only_error(valid(payload_json=text)) == FieldError(
            "payload_json", f"must be a JSON object, got {type_name}"
        )


def test_payload_json_must_be_valid_json() -> None:
    error = only_error(valid(payload_json="{not json"))
    assert error.field == "payload_json"
    assert error.message.startswith("is not valid JSON: ")


def test_payload_must_be_json_serialisable() -> None:
    for value in ({"x": {1, 2}}, {"x": float("nan")}, {("a", "b"): 1}):
        error = only_error(valid(payload=value))
        assert error.field == "payload"
        assert error.message.startswith("is not JSON-serialisable: ")


def test_payload_limit_is_64_kib_of_compact_utf8() -> None:
    overhead = len('{"a":""}')
    at_limit = {"a": "x" * (KIB_64 - overhead)}
    stored = event_of(parse_event(valid(payload=at_limit))).payload_json
    assert stored is not None
    assert len(stored.encode()) == KIB_64
    over = {"a": "x" * (KIB_64 - overhead + 1)}
    assert only_error(valid(payload=over)) == FieldError(
        "payload", f"must be at most {KIB_64} bytes, got {KIB_64 + 1}"
    )
    multibyte = {"a": "é" * ((KIB_64 - overhead) // 2 + 1)}
    assert only_error(valid(payload=multibyte)).field == "payload"
    # payload_json is measured as given (it is stored verbatim), spaces included.
    assert only_error(valid(payload_json=json.dumps(over, separators=(",", ":")))) == FieldError(
        "payload_json", f"must be at most {KIB_64} bytes, got {KIB_64 + 1}"
    )


def test_payload_refuses_nul_anywhere() -> None:
    nul = "must not contain NUL characters"
    payloads: list[dict[str, Any]] = [
        {"k\x00": 1},
        {"k": "v\x00"},
        {"k": ["ok", "v\x00"]},
        {"k": {"deep\x00": None}},
        {"k": {"deep": [{"deeper": "\x00"}]}},
    ]
    for payload in payloads:
        assert only_error(valid(payload=payload)) == FieldError("payload", nul)
        assert only_error(valid(payload_json=json.dumps(payload))) == FieldError(
            "payload_json", nul
        )


def test_nul_is_refused_in_every_text_field_at_once() -> None:
    errors = errors_of(
        valid(
            event_id="e\x00",
            user_id="u\x00",
            kind="k\x00",
            title="t\x00",
            body="b\x00",
            payload={"p": "\x00"},
        )
    )
    assert {error.field for error in errors} == {
        "event_id",
        "user_id",
        "kind",
        "title",
        "body",
        "payload",
    }


def test_payload_refuses_lone_surrogates_and_c1_in_keys_and_values() -> None:
    payloads: list[tuple[dict[str, Any], str]] = [
        ({"k": "\ud800"}, SURROGATE),
        ({"\udcff": 1}, SURROGATE),
        ({"k": [{"deep": ["ok", "x\udfffy"]}]}, SURROGATE),
        ({"k": "\x85"}, C1),
        ({"k": {"\x9b[31m": None}}, C1),
    ]
    for payload, message in payloads:
        assert only_error(valid(payload=payload)) == FieldError("payload", message)
        # As JSON text: raw, and written with \u escapes as most producers write them.
        raw = json.dumps(payload, ensure_ascii=False)
        escaped = json.dumps(payload)
        for text in (raw, escaped):
            assert only_error(valid(payload_json=text)) == FieldError("payload_json", message)
    assert errors_of(valid(payload={"a": "\x00", "b": ["\x80", "\udcff"]})) == (
        FieldError("payload", "must not contain NUL characters"),
        FieldError("payload", C1),
        FieldError("payload", SURROGATE),
    )


def test_payload_keeps_what_only_looks_like_a_bad_escape() -> None:
    """An escaped surrogate pair is one character (an emoji); an escaped backslash
    before "u0000" is text; control characters other than NUL are allowed."""
    for text in (
        '{"smile": "\\ud83d\\ude00"}',
        '{"path": "C:\\\\u0000"}',
        '{"text": "tab\\there\\nnewline \\u00e9 \\u00a0"}',
    ):
        assert event_of(parse_event(valid(payload_json=text))).payload_json == text


def test_payload_json_refuses_duplicate_keys_and_names_them() -> None:
    for text, key in (
        ('{"a": 1, "b": 2, "a": 3}', "a"),
        ('{"outer": {"x": 1, "y": [{"k": 1, "k": 1}]}}', "k"),
        ('{"é": 1, "\\u00e9": 2}', "é"),
    ):
        assert only_error(valid(payload_json=text)) == FieldError(
            "payload_json", f"is not valid JSON: duplicate key {key!r}"
        )
    long_key = "k" * 100
    error = only_error(valid(payload_json=json.dumps({long_key: 1})[:-1] + f', "{long_key}": 2}}'))
    assert error.message == f"is not valid JSON: duplicate key {'k' * 64!r}..."


def test_payload_json_refuses_nan_infinity_and_overflowing_numbers() -> None:
    for text, reason in (
        ('{"a": NaN}', "NaN is not a JSON number"),
        ('{"a": [Infinity]}', "Infinity is not a JSON number"),
        ('{"a": -Infinity}', "-Infinity is not a JSON number"),
        ('{"a": 1e999}', "a number is out of range"),
        ('{"a": ' + "9" * 5000 + "}", "a number has too many digits"),
    ):
        assert only_error(valid(payload_json=text)) == FieldError(
            "payload_json", f"is not valid JSON: {reason}"
        )
    assert event_of(parse_event(valid(payload_json='{"a": 1e308, "b": -0.0}')))


def depth_of(value: object) -> int:
    """How deeply arrays and objects nest in ``value`` (a scalar is 0)."""
    if isinstance(value, dict):
        return 1 + max(map(depth_of, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(depth_of, value), default=0)
    return 0


def test_payload_is_at_most_64_levels_deep_in_either_spelling() -> None:
    deepest: dict[str, Any] = {"k": 1}
    while depth_of(deepest) < MAX_PAYLOAD_DEPTH:
        deepest = {"k": deepest} if depth_of(deepest) % 2 else {"k": [deepest]}
    assert depth_of(deepest) == MAX_PAYLOAD_DEPTH == 64
    assert event_of(parse_event(valid(payload=deepest)))
    assert event_of(parse_event(valid(payload_json=json.dumps(deepest))))
    too_deep = {"k": deepest}
    assert only_error(valid(payload=too_deep)) == FieldError(
        "payload", "is nested deeper than 64 levels"
    )
    assert only_error(valid(payload_json=json.dumps(too_deep))) == FieldError(
        "payload_json", "is not valid JSON: nested deeper than 64 levels"
    )
    # Brackets inside strings do not count; a string's escaped quote does not end it.
    text = json.dumps({"k": "[[[{{{" * 100 + '\\"]]]' * 50})
    assert event_of(parse_event(valid(payload_json=text)))


def test_payload_and_payload_json_together_are_refused() -> None:
    assert only_error(valid(payload={"a": 1}, payload_json='{"a":1}')) == FieldError(
        "payload", "give payload or payload_json, not both"
    )


# ------------------------------------------------------------------- unknown, several


def test_unknown_keys_are_refused() -> None:
    errors = errors_of(valid(extra=1, Title="x"))
    assert errors == (
        FieldError("extra", "is not a known field"),
        FieldError("Title", "is not a known field"),
    )


def test_unknown_keys_are_named_safely() -> None:
    """A name that could act on a terminal, or a very long one, is quoted and cut short."""
    errors = errors_of(valid(**{"\x1b[2J": 1, "\u202egnp.exe": 2, "x" * 500: 3}))
    assert [error.field for error in errors] == [
        "'\\x1b[2J'",
        "'\\u202egnp.exe'",
        repr("x" * 64) + "...",
    ]


def test_every_problem_is_reported_together() -> None:
    data: dict[str, object] = {
        "event_id": "",
        "user_id": 42,
        "kind": "_global",
        "severity": "loud",
        "title": "two\nlines",
        "body": "nul\x00",
        "payload": [1],
        "colour": "red",
    }
    errors = errors_of(data)
    fields = [error.field for error in errors]
    assert sorted(fields) == sorted(
        ["colour", "event_id", "user_id", "kind", "severity", "title", "body", "payload"]
    )
    text = str(InvalidEvent(errors))
    for field in fields:
        assert f"{field}: " in text
    assert text == "; ".join(f"{error.field}: {error.message}" for error in errors)
    result = parse_event(data)
    assert isinstance(result, Failure)
    assert str(result.failure()) == text


def test_str_of_invalid_event_lists_each_error() -> None:
    invalid = InvalidEvent((FieldError("title", "must not be empty"), FieldError("x", "bad")))
    assert str(invalid) == "title: must not be empty; x: bad"
    assert str(FieldError("kind", "is required")) == "kind: is required"


# ------------------------------------------------------------------------- properties

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20))
json_like = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
field_names = st.one_of(
    st.sampled_from([*REQUIRED, "payload", "payload_json"]), st.text(max_size=12)
)


@given(data=st.dictionaries(field_names, json_like, max_size=10))
def test_parse_event_never_raises_on_json_like_dicts(data: dict[str, object]) -> None:
    result = parse_event(data)
    if isinstance(result, Success):
        event: Event = result.unwrap()
        assert event.event_id == data["event_id"]
        assert event.severity.value == data["severity"]
    else:
        invalid: InvalidEvent = result.failure()
        assert invalid.errors
        assert all(f"{error.field}: " in str(invalid) for error in invalid.errors)


@given(
    overrides=st.dictionaries(
        st.sampled_from([*REQUIRED, "payload", "payload_json"]), json_like, max_size=3
    )
)
def test_parse_event_never_raises_on_near_valid_events(overrides: dict[str, object]) -> None:
    data = valid(**overrides)
    result = parse_event(data)
    changed = {field for field, value in overrides.items() if data.get(field) != valid().get(field)}
    if isinstance(result, Failure):
        fields = {error.field for error in result.failure().errors}
        assert fields <= changed | {"payload"}
    else:
        assert event_of(result).title == data["title"]


tricky_text = st.text(st.sampled_from('[]{}"\\u0aé\ud800\x00,: '), max_size=12)
nested_json = st.recursive(
    st.one_of(st.none(), st.integers(), tricky_text),
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(tricky_text, children, max_size=3)
    ),
    max_leaves=30,
)


@given(value=nested_json, limit=st.integers(min_value=1, max_value=8), indent=st.booleans())
def test_strict_json_measures_depth_as_the_parser_nests(
    value: object, limit: int, indent: bool
) -> None:
    """Brackets in keys and strings, escaped quotes and backslashes never fool the depth
    count: text is refused for depth exactly when it nests deeper than the limit."""
    text = json.dumps(value, indent=1 if indent else None)
    result = strict_json(text, limit)
    if depth_of(value) > limit:
        assert result == Failure(f"nested deeper than {limit} levels")
    else:
        assert result == Success(value)


@given(text=st.one_of(st.text(), st.text(st.sampled_from('[]{}"\\:,0123456789.eE-NaIfinty '))))
def test_strict_json_never_raises(text: str) -> None:
    result = strict_json(text, 3)
    assert isinstance(result, Success | Failure)


def test_strict_json_refuses_hostile_text_with_a_reason() -> None:
    for text, reason in (
        ("[" * 100_000 + "]" * 100_000, "nested deeper than 64 levels"),
        ('["' + "\\" * 50_000 + '"' + "[" * 100_000, "nested deeper than 64 levels"),
        ('"' + "\\" * 50_000 + "[" * 100_000, "Unterminated string starting at column 1"),
        ("9" * 5000, "a number has too many digits"),
        ("[NaN]", "NaN is not a JSON number"),
        ('{"a": 1, "a": 1}', "duplicate key 'a'"),
        ("{not json", "Expecting property name enclosed in double quotes at column 2"),
        ('{\n"a": }', "Expecting value at line 2 column 6"),
    ):
        assert strict_json(text, 64) == Failure(reason)


# Valid events as a producer sends them (tests/runner/test_intake_lines.py reads them too).
valid_events = event_mappings()


@given(data=valid_events)
def test_valid_event_round_trips(data: dict[str, Any]) -> None:
    event = event_of(parse_event(data))
    assert event.event_id == data["event_id"]
    assert event.user_id == data["user_id"]
    assert event.kind == data["kind"]
    assert event.severity is Severity(data["severity"])
    assert event.title == data["title"]
    assert event.body == data["body"]
    if "payload" in data:
        assert event.payload_json is not None
        assert json.loads(event.payload_json) == data["payload"]
    else:
        assert event.payload_json is None
    # As a stored row carries it: payload_json text in, the same event out.
    assert parse_event(event_fields(event)) == Success(event)
    assert is_valid(event)


def test_an_event_built_without_validation_is_checked_as_stored() -> None:
    """``Event`` values can be built directly; stores check them with ``is_valid``."""
    built = Event(
        event_id="e1",
        user_id="u42",
        kind="_global",
        severity=Severity.INFO,
        title="two\nlines",
        body="b",
        payload_json="[1]",
    )
    assert not is_valid(built)
    result = parse_event(event_fields(built))
    assert isinstance(result, Failure)
    assert {error.field for error in result.failure().errors} == {"kind", "title", "payload_json"}

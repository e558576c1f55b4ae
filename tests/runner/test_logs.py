"""Structured logs: one JSON line per decision and per delivery attempt, facts as fields,
and no recipient secret or address anywhere."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from tidings.adapters.memory import MemoryStore
from tidings.core import Event, Preference, Severity
from tidings.core.records import RecipientChange
from tidings.runner.dispatch import Dispatcher, DispatchOptions
from tidings.runner.dispatch.senders import default_senders
from tidings.runner.telemetry.logs import BATCH_LINES, LogObserver, configure_logging

SECRET = "whsec_bG9ncy1tdXN0LW5ldmVyLXNob3ctdGhpcw=="


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    stream = io.StringIO()
    configure_logging(stream)  # not a terminal: JSON lines
    try:
        yield stream
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])


def event(event_id: str, kind: str = "overload") -> Event:
    return Event(
        event_id=event_id, user_id="ana", kind=kind, severity=Severity.WATCH,
        title="Overload", body="b",
    )  # fmt: skip


def test_one_json_line_per_decision_and_per_attempt(captured: io.StringIO) -> None:
    store = MemoryStore(clock=lambda: datetime(2026, 1, 1, tzinfo=UTC))

    async def scenario() -> None:
        await store.set_preference(
            "ana", "overload", Preference(("in_app", "email"), Severity.INFO)
        )
        await store.update_recipient(
            RecipientChange(
                user_id="ana",
                email="ana@example.com",
                webhook_url="https://hooks.example.com/secret-path",
                webhook_secret=SECRET,
            )
        )
        await store.enqueue([event("e1"), event("e2")])
        dispatcher = Dispatcher(
            store,
            default_senders(),
            worker_id="w",
            options=DispatchOptions(poll_interval=0.01),
            clock=lambda: datetime(2026, 1, 1, tzinfo=UTC),
            observers=[LogObserver()],
        )
        await dispatcher.run(until_idle=True)

    asyncio.run(scenario())
    lines = [json.loads(line) for line in captured.getvalue().splitlines()]
    decisions = [line for line in lines if line["message"] == "decision"]
    attempts = [line for line in lines if line["message"] == "delivery attempt"]

    assert [(d["event_id"], d["outcome"], d["reason"]) for d in decisions] == [
        ("e1", "notified", None),
        ("e2", "skipped", "cooldown"),
    ]
    assert all(d["user_id"] == "ana" and d["kind"] == "overload" for d in decisions)
    assert all(d["latency_ms"] >= 0 for d in decisions)
    [attempt] = attempts
    assert attempt["channel"] == "email"
    assert attempt["outcome"] == "skipped"
    assert attempt["reason"] == "not configured"
    assert attempt["attempt"] == 1
    text = captured.getvalue()
    for private in (SECRET, SECRET.removeprefix("whsec_"), "secret-path", "ana@example.com"):
        assert private not in text


def test_every_line_is_json_whatever_the_values(captured: io.StringIO) -> None:
    """Values JSON cannot hold as such (NaN, infinity, odd types, quotes in a level
    name) still make one valid JSON line each."""
    logging.addLevelName(25, 'NOTICE "X"')
    try:
        log = logging.getLogger("tidings.test")
        log.log(25, "odd", extra={"latency_ms": float("nan"), "attempt": float("inf")})
        log.info("types", extra={"error": ValueError("bad\nline"), "in_hand": True})
    finally:
        logging.addLevelName(25, "Level 25")
    odd, types = (json.loads(line) for line in captured.getvalue().splitlines())
    assert odd["level"] == 'notice "x"'
    assert (odd["latency_ms"], odd["attempt"]) == ("nan", "inf")
    assert (types["error"], types["in_hand"]) == ("bad\nline", True)


@pytest.mark.parametrize("json_lines", [True, False])
def test_a_batch_record_is_written_one_line_per_decision(
    captured: io.StringIO, json_lines: bool
) -> None:
    configure_logging(captured, json_lines=json_lines)
    logging.getLogger("tidings.test").info(
        "decision",
        extra={BATCH_LINES: [{"event_id": "e1", "outcome": "notified"},
                         {"event_id": "e2", "outcome": "skipped", "secret": SECRET}]},
    )  # fmt: skip
    first, second = captured.getvalue().splitlines()
    if json_lines:
        assert json.loads(first)["event_id"] == "e1"
        assert json.loads(second)["outcome"] == "skipped"
    else:
        assert first.endswith("decision event_id=e1 outcome=notified")
        assert second.endswith("decision event_id=e2 outcome=skipped")
    assert SECRET not in captured.getvalue()

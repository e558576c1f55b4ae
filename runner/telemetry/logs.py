"""Structured logs: one line per decision and per delivery attempt.

Operators grep and ship these, so each line carries its facts as fields (event id,
user, kind, outcome, reason, latency) rather than prose. On a terminal the lines are
readable text; anywhere else (a file, a pipe, a log shipper) they are JSON lines.
Nothing here ever logs a recipient's address, URL or secret: the fields are chosen,
not dumped. A batch's decisions are logged as one record (its ``BATCH_LINES`` field holds
each decision's fields), which the formatters here write as one line per decision:
a runner makes thousands of decisions a second, and a record each was the largest
part of its time.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TextIO

from tidings.core import Skip
from tidings.core.records import ChannelOutcome, DeliveryJob, RecordedEvent, settled_note
from tidings.core.validation import InvalidEvent
from tidings.runner.telemetry.redaction import scrub_urls

_FIELDS = (
    "event_id", "user_id", "kind", "outcome", "reason", "channel", "delivery_id",
    "attempt", "latency_ms", "error", "in_hand",
)  # fmt: skip

_CHATTY_LIBRARIES = ("httpx", "httpcore")
"""Libraries that log every request with its full URL at INFO: warnings only."""

log = logging.getLogger("tidings.dispatch")


_ENCODE = json.JSONEncoder(ensure_ascii=False, default=str).encode
_ENCODE_TEXT = json.encoder.encode_basestring
"""What ``_ENCODE`` does with a string, without its dispatch on the value's type."""


@functools.lru_cache(maxsize=64)
def _millisecond(stamp: int) -> str:
    """A record time as ISO 8601 UTC text; a busy second logs thousands of lines."""
    return datetime.fromtimestamp(stamp / 1000, UTC).isoformat(timespec="milliseconds")


def _json(value: object) -> str:
    """One JSON value; the common field types skip the general encoder."""
    kind = type(value)
    if kind is str:
        return _ENCODE_TEXT(value)  # type: ignore[arg-type]
    if value is None:
        return "null"
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return repr(value)
    if kind is float:  # JSON has no NaN or infinity: those become strings
        return repr(value) if math.isfinite(value) else _ENCODE(repr(value))  # type: ignore[arg-type]
    return _ENCODE(value)


BATCH_LINES = "tidings_lines"
"""The record field that makes one record of many lines: a list of field mappings."""


def _message(record: logging.LogRecord) -> str:
    """The record's message, any URL in it shown as scheme://host/path only."""
    return scrub_urls(record.getMessage())


def _each_line(record: logging.LogRecord) -> Iterable[Mapping[str, object]]:
    """The fields of each line ``record`` stands for: a batch's decisions travel as
    one record whose ``BATCH_LINES`` field lists one mapping per decision; any other
    record is one line of its own fields."""
    lines = getattr(record, BATCH_LINES, None)
    return lines if isinstance(lines, list) else (record.__dict__,)


class JsonLines(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the known fields."""

    def format(self, record: logging.LogRecord) -> str:
        head = (
            f'{{"time":"{_millisecond(int(record.created * 1000))}"'
            f',"level":{_json(record.levelname.lower())}'
            f',"logger":{_json(record.name)}'
            f',"message":{_json(_message(record))}'
        )
        tail = "}"
        if record.exc_info:
            tail = f',"exception":{_json(scrub_urls(self.formatException(record.exc_info)))}}}'
        return "\n".join(
            head
            + "".join(f',"{name}":{_json(fields[name])}' for name in _FIELDS if name in fields)
            + tail
            for fields in _each_line(record)
        )


class Readable(logging.Formatter):
    """The message followed by its fields as key=value, for people at a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC).strftime("%H:%M:%S")
        head = f"{stamp} {record.levelname.lower():7} {_message(record)}"
        text = "\n".join(
            " ".join((head, *(f"{name}={fields[name]}" for name in _FIELDS if name in fields)))
            for fields in _each_line(record)
        )
        if record.exc_info:
            text += "\n" + scrub_urls(self.formatException(record.exc_info))
        return text


def configure_logging(stream: TextIO = sys.stderr, *, json_lines: bool | None = None) -> None:
    """Log to ``stream`` at INFO: JSON lines unless it is a terminal (or told).

    A runner logs a line per decision, so records skip what no line shows: the
    caller's source position, thread and process (the logging HOWTO's optimisations).
    These switches are process-wide: this is the ``tidings`` command's setup, not a
    library call for an application that embeds tidings and logs its own way.
    """
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(stream)
    as_json = not stream.isatty() if json_lines is None else json_lines
    handler.setFormatter(JsonLines() if as_json else Readable())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    for name in _CHATTY_LIBRARIES:
        logging.getLogger(name).setLevel(logging.WARNING)


class LogObserver:
    """Writes the dispatch loop's decisions and delivery attempts as log lines."""

    def accepted(self, count: int) -> None:
        return None

    def rejected(self, event_id: str, error: InvalidEvent) -> None:
        log.warning("event rejected", extra={"event_id": event_id, "error": scrub_urls(str(error))})

    def decided(self, batch: Sequence[RecordedEvent], seconds: float) -> None:
        if not batch or not log.isEnabledFor(logging.INFO):
            return
        latency_ms = round(seconds * 1000, 2)
        lines = [
            {
                "event_id": recorded.event_id,
                "user_id": recorded.user_id,
                "kind": recorded.outcome.kind,
                "outcome": "skipped" if isinstance(recorded.outcome, Skip) else "notified",
                "reason": recorded.outcome.reason.value
                if isinstance(recorded.outcome, Skip)
                else None,
                "latency_ms": latency_ms,
            }
            for recorded in batch
        ]
        log.info("decision", extra={BATCH_LINES: lines})

    def attempted(
        self, job: DeliveryJob, outcome: ChannelOutcome, status: str, seconds: float
    ) -> None:
        note = settled_note(outcome)
        log.info(
            "delivery attempt",
            extra={
                "event_id": job.notification.event_id,
                "user_id": job.notification.user_id,
                "kind": job.notification.kind,
                "channel": job.channel.value,
                "delivery_id": job.delivery_id,
                "attempt": job.attempts + 1,
                "outcome": status,
                "reason": None if note is None else scrub_urls(note),
                "latency_ms": round(seconds * 1000, 2),
            },
        )

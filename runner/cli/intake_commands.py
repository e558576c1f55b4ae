"""``tidings migrate``, ``enqueue`` and ``send``: the schema, and events into the durable
intake (each JSON line read, checked and rejected on its own; the good ones stored)."""

from __future__ import annotations

import argparse
import sys
import uuid
from collections.abc import Iterator

from returns.result import Failure, Success

from tidings.core import Event, parse_event
from tidings.runner.api import AsyncTidings
from tidings.runner.cli.event_lines import OversizeLine, RejectedLine, read_event_lines, read_lines
from tidings.runner.output import emit, for_terminal
from tidings.runner.telemetry import (
    shown_database,
)

ENQUEUE_BATCH = 1000


def _lines(source: str, max_bytes: int) -> Iterator[bytes | OversizeLine]:
    """The lines of a file, or of stdin for ``-``, as bytes: ``read_event_lines`` decodes
    each on its own, and none holds more than ``max_bytes`` in memory."""
    if source == "-":
        yield from read_lines(sys.stdin.buffer, max_bytes)
        return
    with open(source, "rb") as handle:
        yield from read_lines(handle, max_bytes)


async def migrate(args: argparse.Namespace, tidings: AsyncTidings) -> int:
    applied = await tidings.migrate()
    shown = shown_database(tidings.settings.database_url)
    listed = f": {', '.join(applied)}" if applied else ""
    emit(
        args.json,
        f"{shown}: schema up to date, {len(applied)} migration(s) applied{listed}",
        {"applied": len(applied), "migrations": list(applied)},
    )
    return 0


async def enqueue(args: argparse.Namespace, tidings: AsyncTidings) -> int:
    store = tidings.runtime.store
    batch: list[Event] = []
    accepted = added = rejected = 0  # counts only: memory stays flat however many lines
    lines = _lines(args.file, tidings.settings.max_line_bytes)
    for item in read_event_lines(lines, lambda: uuid.uuid4().hex):
        if isinstance(item, RejectedLine):
            rejected += 1
            print(f"rejected {for_terminal(str(item))}", file=sys.stderr)
            continue
        batch.append(item)
        if len(batch) >= ENQUEUE_BATCH:
            added += await store.enqueue(batch)
            accepted += len(batch)
            batch = []
    if batch:
        added += await store.enqueue(batch)
        accepted += len(batch)
    emit(
        args.json,
        f"enqueued {added} event(s), {accepted - added} duplicate(s) ignored, "
        f"{rejected} line(s) rejected",
        {"enqueued": added, "duplicates": accepted - added, "rejected": rejected},
    )
    return 2 if rejected else 0


async def send(args: argparse.Namespace, tidings: AsyncTidings) -> int:
    data: dict[str, object] = {
        "event_id": args.event_id or uuid.uuid4().hex,
        "user_id": args.user,
        "kind": args.kind,
        "severity": args.severity,
        "title": args.title,
        "body": args.body,
    }
    if args.payload is not None:
        data["payload_json"] = args.payload
    match parse_event(data):
        case Success(event):
            added = await tidings.runtime.store.enqueue([event])
            status = "enqueued" if added else "duplicate ignored"
            emit(
                args.json,
                f"{status}: {event.event_id}",
                {"event_id": event.event_id, "added": added},
            )
            return 0
        case Failure(invalid):
            for error in invalid.errors:
                print(f"rejected: {for_terminal(str(error))}", file=sys.stderr)
            return 2
    return 2

"""``tidings prune``: remove what no promise needs any more once older than a horizon
(``core.ports.Retention`` says what is kept), or with ``--dry-run`` count it; with
``--vacuum`` give the space back afterwards (SQLite rewrites its file once)."""

from __future__ import annotations

import argparse
import sys
from datetime import timedelta

from tidings.runner.api import AsyncTidings
from tidings.runner.config import DURATION_FORMS
from tidings.runner.output import emit, table

_UNITS = (("w", 7 * 86400), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


def shown_duration(duration: timedelta) -> str:
    """A duration as ``--older-than`` takes it: ``90d``, ``12h``, ``3600s``."""
    seconds = int(duration.total_seconds())
    unit, size = next((unit, size) for unit, size in _UNITS if seconds % size == 0)
    return f"{seconds // size}{unit}"


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


async def prune(args: argparse.Namespace, tidings: AsyncTidings) -> int:
    older_than: timedelta | None = args.older_than or tidings.settings.dispatch.retention
    if older_than is None:
        print(
            f"tidings prune: give --older-than ({DURATION_FORMS}),"
            " or set retention (TIDINGS_RETENTION)",
            file=sys.stderr,
        )
        return 2
    removed = await tidings.prune(older_than, dry_run=args.dry_run)
    shown = shown_duration(older_than)
    heading = f"{'would remove' if args.dry_run else 'removed'}, older than {shown}:"
    text = "\n".join((heading, table(("table", "rows"), list(removed.items()))))
    data: dict[str, object] = {
        "dry_run": args.dry_run,
        "older_than": shown,
        "older_than_seconds": older_than.total_seconds(),
        "removed": removed,
    }
    if args.vacuum:
        before, after = await tidings.runtime.store.vacuum()
        text += f"\nvacuum: {_megabytes(before)} before, {_megabytes(after)} after"
        data["vacuum"] = {"bytes_before": before, "bytes_after": after}
    emit(args.json, text, data)
    return 0

"""A replay's result for people (a table of kinds, then the users whose count changes
most) and for scripts (JSON), and the progress line shown while it runs."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TextIO

from tidings.runner.output import table
from tidings.runner.replay.engine import Counts, Replay

HEADERS = (
    "kind",
    "events",
    "sent",
    "would send",
    "digests",
    "would digest",
    "held",
    "change",
)
"""Events decided, notified then and now; digests sent then and now; deliveries quiet
hours would hold; the change in notifications, events' and digests' together."""


def progress_line(stream: TextIO) -> Callable[[int], None] | None:
    """A running count rewritten in place, only on a terminal: in a pipe or a log
    file the carriage returns would be noise."""
    if not stream.isatty():
        return None

    def show(replayed: int) -> None:
        stream.write(f"\rreplayed {replayed:,} events")
        stream.flush()

    return show


def _change(delta: int) -> str:
    return f"{delta:+,}" if delta else "0"


def _row(name: str, counts: Counts) -> tuple[str, int, int, int, int, int, int, str]:
    return (
        name,
        counts.events,
        counts.sent,
        counts.would_send,
        counts.digests_sent,
        counts.digests_would_send,
        counts.held,
        _change(counts.delta),
    )


def _reasons(counted: Mapping[str, int]) -> str:
    return ", ".join(f"{reason} {count:,}" for reason, count in counted.items()) or "none"


def replay_table(found: Replay, top: int) -> str:
    """Per kind, the totals and skip reasons, then the ``top`` users whose count
    changes most: the per-user map can hold every user, too many to print."""
    totals = found.totals
    lines = [
        table(HEADERS, [_row(kind, counts) for kind, counts in found.per_kind.items()]),
        f"total: {totals.events:,} events, {totals.sent:,} sent, "
        f"{totals.would_send:,} would send; digests: {totals.digests_sent:,} sent, "
        f"{totals.digests_would_send:,} would send ({_change(totals.delta)})",
        f"digests pending at the end: {totals.digests_pending:,}",
        f"held by quiet hours: {totals.held:,} email and webhook deliveries would wait",
        f"would skip: {_reasons(found.would_skip_by_reason)}",
    ]
    if found.digests_would_skip_by_reason:
        lines.append(f"digests would skip: {_reasons(found.digests_would_skip_by_reason)}")
    changed = sorted(
        ((user, counts) for user, counts in found.per_user.items() if counts.delta),
        key=lambda item: (-abs(item[1].delta), item[0]),
    )
    if not changed:
        lines.append("no user's count changes")
    elif top:
        shown = [_row(user, counts) for user, counts in changed[:top]]
        lines += [
            f"\n{len(shown)} of {len(changed):,} changed user(s), largest change first:",
            table(("user", *HEADERS[1:]), shown),
        ]
    return "\n".join(lines)


def _counts_json(counts: Counts) -> dict[str, int]:
    return {
        "events": counts.events,
        "sent": counts.sent,
        "would_send": counts.would_send,
        "digests_sent": counts.digests_sent,
        "digests_would_send": counts.digests_would_send,
        "digests_pending": counts.digests_pending,
        "held": counts.held,
        "delta": counts.delta,
    }


def replay_json(found: Replay) -> dict[str, object]:
    return {
        "totals": _counts_json(found.totals),
        "per_kind": {kind: _counts_json(counts) for kind, counts in found.per_kind.items()},
        "per_user": {user: _counts_json(counts) for user, counts in found.per_user.items()},
        "would_skip_by_reason": dict(found.would_skip_by_reason),
        "digests_would_skip_by_reason": dict(found.digests_would_skip_by_reason),
    }

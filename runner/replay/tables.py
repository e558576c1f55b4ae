"""A replay's result for people (a table of kinds, then the users whose count changes
most) and for scripts (JSON), and the progress line shown while it runs."""

from __future__ import annotations

from collections.abc import Callable
from typing import TextIO

from tidings.runner.output import table
from tidings.runner.replay.engine import Counts, Replay


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


def _row(name: str, counts: Counts) -> tuple[str, int, int, int, str]:
    return (name, counts.events, counts.sent, counts.would_send, _change(counts.delta))


def replay_table(found: Replay, top: int) -> str:
    """Per kind, the totals and skip reasons, then the ``top`` users whose count
    changes most: the per-user map can hold every user, too many to print."""
    headers = ("kind", "events", "sent", "would send", "change")
    totals = found.totals
    reasons = ", ".join(
        f"{reason} {count:,}" for reason, count in found.would_skip_by_reason.items()
    )
    lines = [
        table(headers, [_row(kind, counts) for kind, counts in found.per_kind.items()]),
        f"total: {totals.events:,} events, {totals.sent:,} sent, "
        f"{totals.would_send:,} would send ({_change(totals.delta)})",
        f"would skip: {reasons or 'none'}",
    ]
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
            table(("user", *headers[1:]), shown),
        ]
    return "\n".join(lines)


def _counts_json(counts: Counts) -> dict[str, int]:
    return {
        "events": counts.events,
        "sent": counts.sent,
        "would_send": counts.would_send,
        "delta": counts.delta,
    }


def replay_json(found: Replay) -> dict[str, object]:
    return {
        "totals": _counts_json(found.totals),
        "per_kind": {kind: _counts_json(counts) for kind, counts in found.per_kind.items()},
        "per_user": {user: _counts_json(counts) for user, counts in found.per_user.items()},
        "would_skip_by_reason": dict(found.would_skip_by_reason),
    }

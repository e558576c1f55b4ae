"""Recording a batch of decisions in one SQLite transaction: a few queries, not a few per event.

The store's single writer thread and ``BEGIN IMMEDIATE`` already serialise every
decision, so the cooldown check and its record are atomic without further locks.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime

from tidings.adapters import rowmaps
from tidings.adapters.recording import BatchRecorder, Key
from tidings.adapters.sqlite import rows
from tidings.adapters.sqlite.rows import SQLITE
from tidings.core import GLOBAL_KIND
from tidings.core.decision import Skip
from tidings.core.values import Preference


def load_inputs(
    connection: sqlite3.Connection, keys: set[Key]
) -> tuple[dict[Key, Preference], dict[Key, datetime]]:
    """The preferences and last notification times the batch's decisions need."""
    users = sorted({user for user, _ in keys})
    preferences = {
        (row["user_id"], row["kind"]): rowmaps.preference(row, SQLITE)
        for row in connection.execute(
            "SELECT user_id, kind, channels, min_severity FROM notification_preferences"
            f" WHERE user_id IN ({','.join('?' * len(users))})",
            users,
        )
        if (row["user_id"], row["kind"]) in keys or row["kind"] == GLOBAL_KIND
    }
    pairs = sorted(keys)
    found = connection.execute(
        f"WITH wanted(u, k) AS (VALUES {', '.join(['(?, ?)'] * len(pairs))})"
        " SELECT u, k, (SELECT max(created_at) FROM notifications"
        "               WHERE user_id = u AND kind = k) AS last_sent_at FROM wanted",
        [value for pair in pairs for value in pair],
    )
    last_sent = {
        (row["u"], row["k"]): datetime.fromisoformat(row["last_sent_at"])
        for row in found
        if row["last_sent_at"] is not None
    }
    return preferences, last_sent


def write(connection: sqlite3.Connection, recorder: BatchRecorder, rows_of: dict[str, int]) -> None:
    """Write what ``recorder`` collected; events are found by row number (``rows_of``)."""
    connection.executemany(
        "INSERT INTO notifications (id, event_id, user_id, kind, severity, title, body,"
        " payload_json, created_at, dispatched_via) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (n.id, n.event_id, n.user_id, n.kind, n.severity.value, n.title, n.body,
             n.payload_json, rows.time_text(n.created_at), rows.channels_text(n.dispatched_via))
            for n in recorder.notifications
        ],
    )  # fmt: skip
    connection.executemany(
        "INSERT INTO deliveries (id, notification_id, channel, status, attempts,"
        " next_attempt_at, delivered_at, claimed_by, lease_until)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (d.id, d.notification_id, d.channel.value, d.status.value, d.attempts,
             rows.time_or_null(d.next_attempt_at), rows.time_or_null(d.delivered_at),
             d.claimed_by, rows.time_or_null(d.lease_until))
            for d in recorder.deliveries
        ],
    )  # fmt: skip
    connection.executemany(
        "UPDATE events SET status = ?, reason = ?, decision_json = ?, explanation = ?,"
        " decided_at = ?, notification_id = ? WHERE seq = ?",
        [
            (e.status.value, e.outcome.reason.value if isinstance(e.outcome, Skip) else None,
             e.decision_json, e.explanation,
             rows.time_text(e.decided_at), e.notification_id, rows_of[e.event_id])
            for e in recorder.events
        ],
    )  # fmt: skip

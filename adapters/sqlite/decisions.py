"""Recording a batch of decisions in one SQLite transaction: a few queries, not a few per event.

The store's single writer thread and ``BEGIN IMMEDIATE`` already serialise every
decision, so the cooldown check and its record are atomic without further locks.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime

import attrs

from tidings.adapters import rowmaps
from tidings.adapters.recording import BatchInputs, BatchRecorder, Key, PendingDigest
from tidings.adapters.sqlite import rows
from tidings.adapters.sqlite.rows import SQLITE
from tidings.core import GLOBAL_KIND
from tidings.core.decision import Skip
from tidings.core.digest import HeldEvent
from tidings.core.values import Severity


def load_inputs(connection: sqlite3.Connection, keys: set[Key], now: datetime) -> BatchInputs:
    """What the batch's decisions need: preferences, the last notification (time and
    severity), quiet hours, and pending digests (with their held events once due)."""
    users = sorted({user for user, _ in keys})
    user_marks = ",".join("?" * len(users))
    preferences = {
        (row["user_id"], row["kind"]): rowmaps.preference(row, SQLITE)
        for row in connection.execute(
            "SELECT user_id, kind, channels, min_severity, digest FROM notification_preferences"
            f" WHERE user_id IN ({user_marks})",
            users,
        )
        if (row["user_id"], row["kind"]) in keys or row["kind"] == GLOBAL_KIND
    }
    pairs = sorted(keys)
    wanted = f"WITH wanted(u, k) AS (VALUES {', '.join(['(?, ?)'] * len(pairs))})"
    values = [value for pair in pairs for value in pair]
    found = connection.execute(
        f"{wanted} SELECT u, k, last.created_at, last.severity FROM wanted"
        " JOIN notifications last ON last.id = (SELECT id FROM notifications"
        "  WHERE user_id = u AND kind = k AND created_at = (SELECT max(created_at)"
        "   FROM notifications WHERE user_id = u AND kind = k)"
        f"  ORDER BY {rowmaps.SEVERITY_RANK_SQL} DESC LIMIT 1)",
        values,
    )
    last_sent = {
        (row["u"], row["k"]): (datetime.fromisoformat(row[2]), Severity(row[3])) for row in found
    }
    quiet_hours = {
        row["user_id"]: window
        for row in connection.execute(
            f"SELECT user_id, starts, ends, zone FROM quiet_hours WHERE user_id IN ({user_marks})",
            users,
        )
        if (window := rowmaps.quiet_hours(row)) is not None
    }
    digests = pending_digests(
        connection,
        connection.execute(
            f"{wanted} SELECT d.id, d.user_id, d.kind, d.due_at FROM wanted"
            " JOIN digests d ON d.user_id = u AND d.kind = k AND d.status = 'pending'",
            values,
        ).fetchall(),
        now,
    )
    return BatchInputs(
        preferences=preferences, last_sent=last_sent, quiet_hours=quiet_hours, digests=digests
    )


def pending_digests(
    connection: sqlite3.Connection, found: list[sqlite3.Row], now: datetime
) -> dict[Key, PendingDigest]:
    """Pending digest rows (id, user_id, kind, due_at) by key, the held events of those
    due by ``now`` read in the order they were held."""
    digests = {
        (row["user_id"], row["kind"]): PendingDigest(
            id=row["id"], due_at=datetime.fromisoformat(row["due_at"])
        )
        for row in found
    }
    due = [digest.id for digest in digests.values() if digest.due_at <= now]
    held: dict[str, list[HeldEvent]] = {}
    for row in connection.execute(
        "SELECT digest_id, event_id, severity, title, decided_at FROM events"
        f" WHERE digest_id IN ({','.join('?' * len(due))}) ORDER BY seq",
        due,
    ):
        held.setdefault(row["digest_id"], []).append(
            HeldEvent(
                event_id=row["event_id"],
                severity=Severity(row["severity"]),
                title=row["title"],
                held_at=datetime.fromisoformat(row["decided_at"]),
            )
        )
    return {
        key: attrs.evolve(digest, held=tuple(held.get(digest.id, ())))
        for key, digest in digests.items()
    }


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
        "UPDATE digests SET status = ?, decided_at = ?, decision_json = ?, explanation = ?,"
        " notification_id = ? WHERE id = ? AND status = 'pending'",
        [
            (d.status.value, rows.time_text(recorder.now), d.decision_json, d.explanation,
             d.notification_id, d.id)
            for d in recorder.digests_decided
        ],
    )  # fmt: skip
    connection.executemany(
        "INSERT INTO digests (id, user_id, kind, opened_at, due_at) VALUES (?, ?, ?, ?, ?)",
        [
            (d.id, d.user_id, d.kind, rows.time_text(recorder.now), rows.time_text(d.due_at))
            for d in recorder.digests_opened
        ],
    )
    connection.executemany(
        "UPDATE digests SET due_at = ? WHERE id = ?",
        [(rows.time_text(due_at), id_) for id_, due_at in recorder.digests_due.items()],
    )
    connection.executemany(
        "UPDATE events SET status = ?, reason = ?, decision_json = ?, explanation = ?,"
        " decided_at = ?, notification_id = ?, digest_id = ? WHERE seq = ?",
        [
            (e.status.value, e.outcome.reason.value if isinstance(e.outcome, Skip) else None,
             e.decision_json, e.explanation, rows.time_text(e.decided_at), e.notification_id,
             e.digest_id, rows_of[e.event_id])
            for e in recorder.events
        ],
    )  # fmt: skip

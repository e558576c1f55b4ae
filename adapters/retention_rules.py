"""What retention may remove, as SQL conditions both SQL stores share.

The rules are ``core.ports.Retention``'s; each store writes its own chunked passes and
placeholders, and builds the conditions here with its placeholder for the horizon
(``%(h)s`` on PostgreSQL, ``:h`` on SQLite), so the two cannot drift apart.
"""

from __future__ import annotations

TERMINAL = "('notified', 'skipped', 'rejected')"
DECIDED_DIGEST = "('notified', 'skipped')"


def settled_before(d: str, h: str) -> str:
    """A delivery that is over (delivered, skipped, dead), and was not delivered since
    the horizon ``h``: its age is its notification's, which the caller checks."""
    return (
        f"{d}.status IN ('delivered', 'skipped', 'dead')"
        f" AND ({d}.delivered_at IS NULL OR {d}.delivered_at < {h})"
    )


def superseded(n: str) -> str:
    """A notification that is not its key's latest: the cooldown reads only that one."""
    return (
        f"EXISTS (SELECT 1 FROM notifications m WHERE m.user_id = {n}.user_id"
        f" AND m.kind = {n}.kind AND m.created_at > {n}.created_at)"
    )


def removable_notification(n: str, h: str) -> str:
    """Old, superseded, and every delivery of it settled before the horizon."""
    return (
        f"{n}.created_at < {h} AND {superseded(n)} AND NOT EXISTS (SELECT 1 FROM"
        f" deliveries d WHERE d.notification_id = {n}.id AND NOT ({settled_before('d', h)}))"
    )


def not_held_for_pending_digest(e: str) -> str:
    return (
        f"NOT EXISTS (SELECT 1 FROM digests g WHERE g.id = {e}.digest_id AND g.status = 'pending')"
    )


def removable_event(e: str, h: str) -> str:
    """As the pass decides, but reading a notification the pass would remove as gone."""
    return (
        f"{e}.status IN {TERMINAL} AND {e}.decided_at < {h}"
        f" AND NOT EXISTS (SELECT 1 FROM notifications n WHERE n.id = {e}.notification_id"
        f" AND NOT ({removable_notification('n', h)}))"
        f" AND {not_held_for_pending_digest(e)}"
    )


def count_prunable(h: str) -> str:
    """One row: how many rows of each table a pass with horizon ``h`` would remove."""
    return (
        "SELECT (SELECT count(*) FROM deliveries d JOIN notifications n"
        f"  ON n.id = d.notification_id WHERE n.created_at < {h} AND {settled_before('d', h)})"
        " AS deliveries,"
        f" (SELECT count(*) FROM notifications o WHERE {removable_notification('o', h)})"
        " AS notifications,"
        f" (SELECT count(*) FROM events v WHERE {removable_event('v', h)}) AS events,"
        f" (SELECT count(*) FROM digests g WHERE g.status IN {DECIDED_DIGEST}"
        f"   AND g.decided_at < {h}"
        "   AND NOT EXISTS (SELECT 1 FROM notifications o WHERE o.id = g.notification_id"
        f"    AND NOT ({removable_notification('o', h)}))"
        "   AND NOT EXISTS (SELECT 1 FROM events v WHERE v.digest_id = g.id"
        f"    AND NOT ({removable_event('v', h)}))) AS digests"
    )

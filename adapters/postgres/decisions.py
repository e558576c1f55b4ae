"""Deciding and recording a batch of events in one PostgreSQL transaction.

The cooldown must hold across any number of runners, so check and record happen
while the transaction holds a lock on each (user, kind) of the batch. The lock is a
row lock on the key's bucket in ``decision_locks`` (a hash of user and kind modulo
``_LOCK_BUCKETS``), taken in bucket order (no deadlocks between batches):

- a row, not an advisory lock: advisory locks take entries in the server's shared
  lock table (about 12,000 with default settings), and a few runners' lanes holding
  hundreds of keys each would exhaust it; a row lock is kept in the row itself;
- a fixed table of buckets, not a row per key: a key has no row before its first
  notification, and a bucket table never has to be kept in step with users and
  kinds. Keys sharing a bucket merely wait for each other. The bucket count is a
  multiple of every lane count up to 6, so lanes never share a bucket.

"now" is read from the database after the locks are held, so runners on machines
with skewed clocks agree, and a later decision never sees an earlier time.

Round trips are what a batch costs, so the reads go in one pipeline (the server
runs them in order: the reads start only once the locks are held) and the writes in
another, each table written by one statement over arrays.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import cast

from psycopg import AsyncConnection, AsyncCursor
from psycopg.rows import dict_row

from tidings.adapters import rowmaps
from tidings.adapters.postgres.rows import POSTGRES, Row
from tidings.adapters.recording import CLAIMED_COLUMNS, BatchRecorder, validate_rows
from tidings.core import GLOBAL_KIND, Event
from tidings.core.decision import Skip
from tidings.core.ports import DecideFn
from tidings.core.records import DecidedClaim, RecordedEvent

# The batch's (user, kind) keys travel as one JSON array of pairs.
_KEYS = "SELECT e->>0 AS u, e->>1 AS k FROM json_array_elements(%(keys)s::json) AS e"
_LOCK_BUCKETS = 3840
"""The rows of ``decision_locks`` (migration 0004): 2**8 * 3 * 5, which every lane count
from 1 to 6 divides."""
# The batch's buckets, locked in bucket order: FOR UPDATE locks rows as ORDER BY yields them.
_LOCK = (
    "SELECT count(*) FROM (SELECT bucket FROM decision_locks WHERE bucket = ANY(ARRAY("
    f"  SELECT abs(hashtextextended(u || chr(31) || k, 0) %% {_LOCK_BUCKETS})::integer"
    f"  FROM ({_KEYS}) AS t)) ORDER BY bucket FOR UPDATE) AS locked"
)
# Pending events locked by this transaction, past seq ``after``. A lane is a fixed share
# of the (user, kind) keys: their hash modulo the lane count.
_CLAIM_LOCKED = (
    f"SELECT {CLAIMED_COLUMNS} FROM events WHERE seq > %(after)s AND status = 'pending'"
    " AND (%(lanes)s = 1 OR abs(hashtextextended("
    "  coalesce(user_id, '') || chr(31) || coalesce(kind, ''), 0) %% %(lanes)s) = %(lane)s)"
    " ORDER BY seq LIMIT %(limit)s FOR UPDATE SKIP LOCKED"
)
_INDEXED_ONLY = (
    "SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off; SET LOCAL enable_sort = off"
)
"""Planner settings for a deciding transaction, which touches a batch's rows and keys
and nothing else: walk the indexes. Without them the planner, unable to estimate a
lane filter or the rows of a JSON document, prefers reading the whole table. Set
outside any pipeline: after a pipeline the server does not time out an idle session."""
_REJECT = (
    "UPDATE events SET status = 'rejected', error = t.error,"
    " decided_at = coalesce(%s::timestamptz, clock_timestamp())"
    " FROM unnest(%s::bigint[], %s::text[]) AS t(seq, error) WHERE events.seq = t.seq"
)
_PREFERENCES = (
    f"WITH wanted_keys AS ({_KEYS})"
    " SELECT p.user_id, p.kind, p.channels, p.min_severity FROM notification_preferences p"
    " JOIN (SELECT u, k FROM wanted_keys UNION SELECT u, %(global)s FROM wanted_keys) wanted"
    " ON p.user_id = wanted.u AND p.kind = wanted.k"
)
# A row only for keys notified before; the others are missing, which reads as no cooldown.
_LAST_SENT = (
    f"SELECT t.u, t.k, last.created_at AS last_sent_at FROM ({_KEYS}) AS t"
    " JOIN LATERAL (SELECT created_at FROM notifications n WHERE n.user_id = t.u"
    "  AND n.kind = t.k ORDER BY created_at DESC LIMIT 1) AS last ON true"
)
# The rows travel as one JSON document each: the C JSON encoder is far cheaper than
# binding thousands of array elements one by one.
_INSERT_NOTIFICATIONS = (
    "INSERT INTO notifications (id, event_id, user_id, kind, severity, title, body,"
    " payload_json, created_at, dispatched_via)"
    " SELECT id, event_id, user_id, kind, severity, title, body, payload_json, %s,"
    " CASE WHEN in_app THEN ARRAY['in_app'] ELSE '{}'::text[] END"
    " FROM json_to_recordset(%s::json) AS t(id text, event_id text, user_id text, kind text,"
    " severity text, title text, body text, payload_json text, in_app bool)"
)
_INSERT_DELIVERIES = (
    "INSERT INTO deliveries (id, notification_id, channel, status, attempts,"
    " next_attempt_at, delivered_at, claimed_by, lease_until)"
    " SELECT id, notification_id, channel, status, attempts,"
    " CASE WHEN status = 'pending' THEN %(now)s END,"
    " CASE WHEN status = 'delivered' THEN %(now)s END,"
    " CASE WHEN status = 'pending' THEN %(worker)s END,"
    " CASE WHEN status = 'pending' THEN %(lease)s::timestamptz END"
    " FROM json_to_recordset(%(rows)s::json)"
    " AS t(id text, notification_id text, channel text, status text, attempts int)"
)
# A batch's events share a few outcomes (a key's cooldown skips repeat one; the
# timeless skips are shared by all): each distinct outcome's texts travel, are parsed
# and are made jsonb once, and the events name theirs by position.
_DECIDE_EVENTS = (
    "WITH outcome AS MATERIALIZED (SELECT n - 1 AS i, o->>'reason' AS reason,"
    "  (o->>'decision')::jsonb AS decision, o->>'explanation' AS explanation"
    "  FROM json_array_elements(%(outcomes)s::json) WITH ORDINALITY AS t(o, n))"
    " UPDATE events e SET status = r.status, reason = outcome.reason,"
    " decision = outcome.decision, explanation = outcome.explanation, decided_at = %(now)s,"
    " notification_id = r.notification_id"
    " FROM json_to_recordset(%(rows)s::json)"
    "  AS r(seq bigint, status text, outcome int, notification_id text)"
    " JOIN outcome ON outcome.i = r.outcome WHERE e.seq = r.seq"
)


async def _write(
    cursor: AsyncCursor[Row],
    recorder: BatchRecorder,
    *,
    seq_of: Mapping[str, int],
    worker_id: str,
    now: datetime,
    lease: timedelta,
) -> None:
    if recorder.notifications:
        notifications = [
            {"id": n.id, "event_id": n.event_id, "user_id": n.user_id, "kind": n.kind,
             "severity": n.severity.value, "title": n.title, "body": n.body,
             "payload_json": n.payload_json, "in_app": bool(n.dispatched_via)}
            for n in recorder.notifications
        ]  # fmt: skip
        await cursor.execute(_INSERT_NOTIFICATIONS, (now, json.dumps(notifications)))
    if recorder.deliveries:
        deliveries = [
            {"id": d.id, "notification_id": d.notification_id, "channel": d.channel.value,
             "status": d.status.value, "attempts": d.attempts}
            for d in recorder.deliveries
        ]  # fmt: skip
        await cursor.execute(
            _INSERT_DELIVERIES,
            {"now": now, "worker": worker_id, "lease": now + lease, "rows": json.dumps(deliveries)},
        )
    await cursor.execute(_DECIDE_EVENTS, {"now": now, **_decided_documents(recorder, seq_of)})


def _decided_documents(recorder: BatchRecorder, seq_of: Mapping[str, int]) -> dict[str, str]:
    """The batch's distinct outcomes and its events (each naming its outcome by
    position), as the two JSON documents ``_DECIDE_EVENTS`` reads."""
    position: dict[tuple[str, str], int] = {}
    outcomes: list[str] = []
    rows: list[str] = []
    for e in recorder.events:
        # The texts come from ``decision_texts``: the same strings for the same outcome,
        # whose hashes are computed once.
        texts = (e.decision_json, e.explanation)
        index = position.get(texts)
        if index is None:
            index = position[texts] = len(outcomes)
            reason = e.outcome.reason.value if isinstance(e.outcome, Skip) else None
            outcomes.append(
                json.dumps({"reason": reason, "decision": texts[0], "explanation": texts[1]})
            )
        notification_id = "null" if e.notification_id is None else json.dumps(e.notification_id)
        rows.append(
            f'{{"seq":{seq_of[e.event_id]},"status":"{e.status.value}",'
            f'"outcome":{index},"notification_id":{notification_id}}}'
        )
    return {"outcomes": f"[{','.join(outcomes)}]", "rows": f"[{','.join(rows)}]"}


async def claim_and_decide(
    connection: AsyncConnection[tuple[object, ...]],
    worker_id: str,
    limit: int,
    decide: DecideFn,
    *,
    now: datetime | None,
    lease: timedelta,
    lane: tuple[int, int] = (0, 1),
    after: int = 0,
) -> tuple[DecidedClaim, int]:
    """Lock up to ``limit`` pending events (``SKIP LOCKED``: other runners take
    others) past seq ``after`` among ``lane`` (index, count) of the keys, reject the
    invalid ones and decide and record the rest, all inside the caller's transaction:
    if the runner dies, the transaction and its locks go with it, and the events are
    simply claimable again. Returns the claim and where the lane's next claim should
    resume: after the last seq taken while batches come full, else from the start."""
    cursor = connection.cursor()
    await cursor.execute(_INDEXED_ONLY)
    await cursor.execute(
        _CLAIM_LOCKED, {"limit": limit, "lane": lane[0], "lanes": lane[1], "after": after}
    )
    found = await cursor.fetchall()
    claimed = validate_rows(found)
    if claimed.rejected:
        await cursor.execute(
            _REJECT,
            (
                now,
                [seq for seq, _, _ in claimed.rejected],
                [str(error) for _, _, error in claimed.rejected],
            ),
        )
    recorded = (
        await _decide_and_write(
            connection,
            worker_id,
            claimed.events,
            decide,
            now=now,
            lease=lease,
            seq_of=claimed.row_of,
        )
        if claimed.events
        else []
    )
    decided = DecidedClaim(
        recorded=tuple(recorded),
        rejected=tuple((event_id, error) for _, event_id, error in claimed.rejected),
    )
    return decided, cast(int, found[-1][0]) if len(found) == limit else 0


async def _decide_and_write(
    connection: AsyncConnection[tuple[object, ...]],
    worker_id: str,
    events: Sequence[Event],
    decide: DecideFn,
    *,
    now: datetime | None,
    lease: timedelta,
    seq_of: Mapping[str, int],
) -> list[RecordedEvent]:
    """Serialise on the batch's keys, load its inputs, decide and write. ``seq_of``: the
    rows (event id to seq) this transaction holds, locked before the keys, as every
    deciding transaction locks them, so two never wait on each other in a cycle."""
    keys = {(event.user_id, event.kind) for event in events}
    wanted = json.dumps(list(keys))
    cursors = [connection.cursor(row_factory=dict_row) for _ in range(4)]
    locks, preferences, last_sent, clock = cursors
    async with connection.pipeline():
        await locks.execute(_LOCK, {"keys": wanted})
        await preferences.execute(_PREFERENCES, {"keys": wanted, "global": GLOBAL_KIND})
        await last_sent.execute(_LAST_SENT, {"keys": wanted})
        found_preferences = await preferences.fetchall()
        found_last_sent = await last_sent.fetchall()
    # Outside the pipeline, so the server sees the session idle in its transaction
    # while the batch is decided, and ends it if the runner hangs there.
    await clock.execute("SELECT clock_timestamp() AS now")
    database_now = await clock.fetchone()
    assert database_now is not None
    # In UTC from here on: the decision then compares instants without converting
    # each one, whatever TimeZone the session has.
    moment: datetime = (now or database_now["now"]).astimezone(UTC)
    recorder = BatchRecorder(
        worker_id=worker_id,
        decide=decide,
        now=moment,
        lease=lease,
        preferences={
            (r["user_id"], r["kind"]): rowmaps.preference(r, POSTGRES) for r in found_preferences
        },
        last_sent={(r["u"], r["k"]): r["last_sent_at"].astimezone(UTC) for r in found_last_sent},
    )
    recorded = recorder.record_each(events)
    if recorded:
        async with connection.pipeline():
            await _write(
                connection.cursor(row_factory=dict_row),
                recorder,
                seq_of=seq_of,
                worker_id=worker_id,
                now=moment,
                lease=lease,
            )
    return recorded

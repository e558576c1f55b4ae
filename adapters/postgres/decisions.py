"""Deciding and recording a batch of events in one PostgreSQL transaction.

The cooldown must hold across any number of runners, so check and record happen
while the transaction holds a lock on each (user, kind) of the batch. The lock is a
row lock on the key's bucket in ``decision_locks`` (a hash of user and kind modulo
``claims.BUCKETS``), taken before any of the key's events is claimed, which is also
what keeps each key's events in order (see ``claims``):

- a row, not an advisory lock: advisory locks take entries in the server's shared
  lock table (about 12,000 with default settings), and a few runners' lanes holding
  hundreds of keys each would exhaust it; a row lock is kept in the row itself;
- a fixed table of buckets, not a row per key: a key has no row before its first
  notification, and a bucket table never has to be kept in step with users and
  kinds. Keys sharing a bucket are merely decided by the same transaction.

"now" is read from the database after the locks are held, so runners on machines
with skewed clocks agree, and a later decision never sees an earlier time.

Round trips are what a batch costs, so the reads go in one pipeline and the writes
in another, each table written by one statement over arrays.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

from psycopg import AsyncConnection, AsyncCursor
from psycopg.errors import UniqueViolation
from psycopg.rows import dict_row

from tidings.adapters import rowmaps
from tidings.adapters.postgres.claims import START, LanePosition, StaleClaim, claim_in_key_order
from tidings.adapters.postgres.rows import POSTGRES, Row
from tidings.adapters.recording import BatchRecorder, validate_rows
from tidings.core import GLOBAL_KIND, Channel, Event
from tidings.core.decision import Skip
from tidings.core.ports import DecideFn
from tidings.core.records import DecidedClaim, RecordedEvent

# The batch's (user, kind) keys travel as one JSON array of pairs.
_KEYS = "SELECT e->>0 AS u, e->>1 AS k FROM json_array_elements(%(keys)s::json) AS e"
_INDEXED_ONLY = (
    "SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off; SET LOCAL enable_sort = off"
)
"""Planner settings for a deciding transaction, which touches a batch's rows and keys
and nothing else: walk the indexes. Without them the planner, unable to estimate a
lane filter or the rows of a JSON document, prefers reading the whole table. Set
outside any pipeline: after a pipeline the server does not time out an idle session."""
_UNDECIDED = "status NOT IN ('notified', 'skipped', 'rejected')"
"""An event not decided yet: a claim may hold one decided since it read it
(``claims.StaleClaim``), which is not written again. Said so, not as ``status =
'pending'``, which the planner would answer by walking every pending event."""
_REJECT = (
    "UPDATE events SET status = 'rejected', error = t.error,"
    " decided_at = coalesce(%s::timestamptz, clock_timestamp())"
    " FROM unnest(%s::bigint[], %s::text[]) AS t(seq, error)"
    f" WHERE events.seq = t.seq AND events.{_UNDECIDED}"
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
    " CASE WHEN claimed THEN %(worker)s END,"
    " CASE WHEN claimed THEN %(lease)s::timestamptz END"
    " FROM json_to_recordset(%(rows)s::json)"
    " AS t(id text, notification_id text, channel text, status text, attempts int, claimed bool)"
)
# A batch's events share a few outcomes (a key's cooldown skips repeat one; the
# timeless skips are shared by all): each distinct outcome's texts travel, are parsed
# and are made jsonb once, and the events name theirs by position. Only events not
# decided yet are written (``_UNDECIDED``).
_DECIDE_EVENTS = (
    "WITH outcome AS MATERIALIZED (SELECT n - 1 AS i, o->>'reason' AS reason,"
    "  (o->>'decision')::jsonb AS decision, o->>'explanation' AS explanation"
    "  FROM json_array_elements(%(outcomes)s::json) WITH ORDINALITY AS t(o, n))"
    " UPDATE events e SET status = r.status, reason = outcome.reason,"
    " decision = outcome.decision, explanation = outcome.explanation, decided_at = %(now)s,"
    " notification_id = r.notification_id"
    " FROM json_to_recordset(%(rows)s::json)"
    "  AS r(seq bigint, status text, outcome int, notification_id text)"
    f" JOIN outcome ON outcome.i = r.outcome WHERE e.seq = r.seq AND e.{_UNDECIDED}"
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
             "status": d.status.value, "attempts": d.attempts,
             "claimed": d.claimed_by is not None}
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
    position: LanePosition = START,
    take: Mapping[Channel, int] | None = None,
) -> tuple[DecidedClaim, LanePosition]:
    """Take the keys of up to ``limit`` pending events of ``lane`` (index, count) from
    ``position`` on, then claim their events (``claims``), reject the invalid ones and
    decide and record the rest, all inside the caller's transaction: if the runner dies,
    the transaction and its locks go with it, and the events are simply claimable again.
    ``take``: how many of each channel's deliveries the worker claims
    (``BatchRecorder``). Returns the claim and where the lane's next claim starts."""
    cursor = connection.cursor()
    await cursor.execute(_INDEXED_ONLY)
    found, resume = await claim_in_key_order(cursor, limit, lane, position)
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
        if cursor.rowcount != len(claimed.rejected):
            raise StaleClaim("a rejected event was decided since it was claimed")
    recorded = (
        await _decide_and_write(
            connection,
            worker_id,
            claimed.events,
            decide,
            now=now,
            lease=lease,
            seq_of=claimed.row_of,
            take=take,
        )
        if claimed.events
        else []
    )
    decided = DecidedClaim(
        recorded=tuple(recorded),
        rejected=tuple((event_id, error) for _, event_id, error in claimed.rejected),
    )
    return decided, resume


async def _decide_and_write(
    connection: AsyncConnection[tuple[object, ...]],
    worker_id: str,
    events: Sequence[Event],
    decide: DecideFn,
    *,
    now: datetime | None,
    lease: timedelta,
    seq_of: Mapping[str, int],
    take: Mapping[Channel, int] | None,
) -> list[RecordedEvent]:
    """Load the inputs of the batch's keys (held since the claim), decide and write.
    ``seq_of``: the rows (event id to seq) this transaction claimed."""
    keys = {(event.user_id, event.kind) for event in events}
    wanted = json.dumps(list(keys))
    cursors = [connection.cursor(row_factory=dict_row) for _ in range(3)]
    preferences, last_sent, clock = cursors
    async with connection.pipeline():
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
        take=take,
    )
    recorded = recorder.record_each(events)
    if recorded:
        written = connection.cursor(row_factory=dict_row)
        try:
            async with connection.pipeline():
                await _write(
                    written, recorder, seq_of=seq_of, worker_id=worker_id, now=moment, lease=lease
                )
        except UniqueViolation as error:  # a notification for an event decided since
            raise StaleClaim("a notified event was decided since it was claimed") from error
        if written.rowcount != len(recorder.events):  # events are written last, if pending
            raise StaleClaim("an event was decided since it was claimed")
    return recorded

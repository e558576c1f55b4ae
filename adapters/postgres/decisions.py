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

import attrs
from psycopg import AsyncConnection, AsyncCursor
from psycopg.errors import UniqueViolation
from psycopg.rows import dict_row

from tidings.adapters import rowmaps
from tidings.adapters.postgres.claims import START, LanePosition, StaleClaim, claim_in_key_order
from tidings.adapters.postgres.rows import POSTGRES, Row
from tidings.adapters.recording import (
    BatchInputs,
    BatchRecorder,
    Key,
    PendingDigest,
    validate_rows,
)
from tidings.core import GLOBAL_KIND, Channel, Event
from tidings.core.decision import Skip
from tidings.core.digest import HeldEvent
from tidings.core.ports import DecideFn
from tidings.core.records import DecidedClaim, RecordedEvent
from tidings.core.values import Severity

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
    " SELECT p.user_id, p.kind, p.channels, p.min_severity, p.digest"
    " FROM notification_preferences p"
    " JOIN (SELECT u, k FROM wanted_keys UNION SELECT u, %(global)s FROM wanted_keys) wanted"
    " ON p.user_id = wanted.u AND p.kind = wanted.k"
)
# A row only for keys notified before; the others are missing, which reads as no cooldown.
_LAST_SENT = (
    f"SELECT t.u, t.k, last.created_at AS last_sent_at, last.severity FROM ({_KEYS}) AS t"
    " JOIN LATERAL (SELECT created_at, severity FROM notifications n WHERE n.user_id = t.u"
    "  AND n.kind = t.k AND n.created_at = (SELECT max(created_at) FROM notifications m"
    "   WHERE m.user_id = t.u AND m.kind = t.k)"
    f"  ORDER BY {rowmaps.SEVERITY_RANK_SQL} DESC LIMIT 1) AS last ON true"
)
_QUIET_HOURS = (
    "SELECT user_id, starts, ends, zone FROM quiet_hours"
    f" WHERE user_id IN (SELECT DISTINCT u FROM ({_KEYS}) AS t)"
)
_PENDING_DIGESTS = (
    f"SELECT d.id, d.user_id, d.kind, d.due_at FROM ({_KEYS}) AS t"
    " JOIN digests d ON d.user_id = t.u AND d.kind = t.k AND d.status = 'pending'"
)
_HELD_EVENTS = (
    "SELECT digest_id, event_id, severity, title, decided_at FROM events"
    " WHERE digest_id = ANY(%s::text[]) ORDER BY seq"
)
_OPEN_DIGESTS = (
    "INSERT INTO digests (id, user_id, kind, opened_at, due_at)"
    " SELECT id, user_id, kind, %s, due_at FROM json_to_recordset(%s::json)"
    " AS t(id text, user_id text, kind text, due_at timestamptz)"
)
_MOVE_DIGESTS = (
    "UPDATE digests d SET due_at = t.due_at FROM json_to_recordset(%s::json)"
    " AS t(id text, due_at timestamptz) WHERE d.id = t.id AND d.status = 'pending'"
)
_DECIDE_DIGESTS = (
    "UPDATE digests d SET status = t.status, decided_at = %s, decision_json = t.decision::jsonb,"
    " explanation = t.explanation, notification_id = t.notification_id"
    " FROM json_to_recordset(%s::json) AS t(id text, status text, decision text,"
    " explanation text, notification_id text) WHERE d.id = t.id AND d.status = 'pending'"
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
    " CASE WHEN status = 'pending' THEN coalesce(due, %(now)s) END,"
    " CASE WHEN status = 'delivered' THEN %(now)s END,"
    " CASE WHEN claimed THEN %(worker)s END,"
    " CASE WHEN claimed THEN %(lease)s::timestamptz END"
    " FROM json_to_recordset(%(rows)s::json)"
    " AS t(id text, notification_id text, channel text, status text, attempts int, claimed bool,"
    " due timestamptz)"
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
    " notification_id = r.notification_id, digest_id = r.digest_id"
    " FROM json_to_recordset(%(rows)s::json)"
    "  AS r(seq bigint, status text, outcome int, notification_id text, digest_id text)"
    f" JOIN outcome ON outcome.i = r.outcome WHERE e.seq = r.seq AND e.{_UNDECIDED}"
)


async def _write(
    cursor: AsyncCursor[Row],
    digests: AsyncCursor[Row],
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
             "claimed": d.claimed_by is not None,
             "due": None if d.next_attempt_at in (None, now) else d.next_attempt_at.isoformat()}
            for d in recorder.deliveries
        ]  # fmt: skip
        await cursor.execute(
            _INSERT_DELIVERIES,
            {"now": now, "worker": worker_id, "lease": now + lease, "rows": json.dumps(deliveries)},
        )
    await _write_digests(cursor, digests, recorder)
    if recorder.events:
        await cursor.execute(_DECIDE_EVENTS, {"now": now, **_decided_documents(recorder, seq_of)})


async def _write_digests(
    cursor: AsyncCursor[Row], decided_cursor: AsyncCursor[Row], recorder: BatchRecorder
) -> None:
    """Digests decided (by ``decided_cursor``, first: a key's next one may be opened in
    the same batch), opened and moved."""
    if recorder.digests_decided:
        decided = [
            {"id": d.id, "status": d.status.value, "decision": d.decision_json,
             "explanation": d.explanation, "notification_id": d.notification_id}
            for d in recorder.digests_decided
        ]  # fmt: skip
        await decided_cursor.execute(_DECIDE_DIGESTS, (recorder.now, json.dumps(decided)))
    if recorder.digests_opened:
        opened = [
            {"id": d.id, "user_id": d.user_id, "kind": d.kind, "due_at": d.due_at.isoformat()}
            for d in recorder.digests_opened
        ]
        await cursor.execute(_OPEN_DIGESTS, (recorder.now, json.dumps(opened)))
    if recorder.digests_due:
        moved = [{"id": i, "due_at": due.isoformat()} for i, due in recorder.digests_due.items()]
        await cursor.execute(_MOVE_DIGESTS, (json.dumps(moved),))


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
        digest_id = "null" if e.digest_id is None else json.dumps(e.digest_id)
        rows.append(
            f'{{"seq":{seq_of[e.event_id]},"status":"{e.status.value}",'
            f'"outcome":{index},"notification_id":{notification_id},"digest_id":{digest_id}}}'
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
            enqueued_at=claimed.enqueued_at,
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
    enqueued_at: Mapping[str, datetime],
    take: Mapping[Channel, int] | None,
) -> list[RecordedEvent]:
    """Load the inputs of the batch's keys (held since the claim), decide and write.
    ``seq_of``: the rows (event id to seq) this transaction claimed; ``enqueued_at``:
    when each was stored."""
    keys = {(event.user_id, event.kind) for event in events}
    moment, inputs = await load_inputs(connection, keys, now)
    recorder = BatchRecorder(
        worker_id=worker_id, decide=decide, now=moment, lease=lease, inputs=inputs, take=take
    )
    recorded = recorder.record_each(events, enqueued_at)
    await write_recorded(connection, recorder, seq_of=seq_of, worker_id=worker_id, lease=lease)
    return recorded


async def load_inputs(
    connection: AsyncConnection[tuple[object, ...]], keys: set[Key], now: datetime | None
) -> tuple[datetime, BatchInputs]:
    """The moment of the decisions (the database's clock unless ``now`` is given), and
    what the keys' decisions need at it (``BatchInputs``), read in one round trip (and
    a second for the held events of digests that are due)."""
    wanted = json.dumps(list(keys))
    cursors = [connection.cursor(row_factory=dict_row) for _ in range(5)]
    preferences, last_sent, quiet_hours, digests, clock = cursors
    async with connection.pipeline():
        await preferences.execute(_PREFERENCES, {"keys": wanted, "global": GLOBAL_KIND})
        await last_sent.execute(_LAST_SENT, {"keys": wanted})
        await quiet_hours.execute(_QUIET_HOURS, {"keys": wanted})
        await digests.execute(_PENDING_DIGESTS, {"keys": wanted})
        found_preferences = await preferences.fetchall()
        found_last_sent = await last_sent.fetchall()
        found_quiet_hours = await quiet_hours.fetchall()
        found_digests = await digests.fetchall()
    # Outside the pipeline, so the server sees the session idle in its transaction
    # while the batch is decided, and ends it if the runner hangs there.
    await clock.execute("SELECT clock_timestamp() AS now")
    database_now = await clock.fetchone()
    assert database_now is not None
    # In UTC from here on: the decision then compares instants without converting
    # each one, whatever TimeZone the session has.
    moment: datetime = (now or database_now["now"]).astimezone(UTC)
    pending = {
        (r["user_id"], r["kind"]): PendingDigest(id=r["id"], due_at=r["due_at"].astimezone(UTC))
        for r in found_digests
    }
    due = [digest.id for digest in pending.values() if digest.due_at <= moment]
    held: dict[str, list[HeldEvent]] = {}
    if due:
        await clock.execute(_HELD_EVENTS, (due,))
        for r in await clock.fetchall():
            held.setdefault(r["digest_id"], []).append(
                HeldEvent(
                    event_id=r["event_id"],
                    severity=Severity(r["severity"]),
                    title=r["title"],
                    held_at=r["decided_at"],
                )
            )
    inputs = BatchInputs(
        preferences={
            (r["user_id"], r["kind"]): rowmaps.preference(r, POSTGRES) for r in found_preferences
        },
        last_sent={
            (r["u"], r["k"]): (r["last_sent_at"].astimezone(UTC), Severity(r["severity"]))
            for r in found_last_sent
        },
        quiet_hours={
            r["user_id"]: window
            for r in found_quiet_hours
            if (window := rowmaps.quiet_hours(r)) is not None
        },
        digests={
            key: attrs.evolve(digest, held=tuple(held.get(digest.id, ())))
            for key, digest in pending.items()
        },
    )
    return moment, inputs


async def write_recorded(
    connection: AsyncConnection[tuple[object, ...]],
    recorder: BatchRecorder,
    *,
    seq_of: Mapping[str, int],
    worker_id: str,
    lease: timedelta,
) -> None:
    """Write what ``recorder`` collected, in one pipeline; ``StaleClaim`` when an
    event or digest was decided since it was read."""
    written = connection.cursor(row_factory=dict_row)
    digests = connection.cursor(row_factory=dict_row)
    try:
        async with connection.pipeline():
            await _write(
                written, digests, recorder, seq_of=seq_of, worker_id=worker_id,
                now=recorder.now, lease=lease,
            )  # fmt: skip
    except UniqueViolation as error:  # a notification for an event decided since
        raise StaleClaim("a notified event was decided since it was claimed") from error
    # Events are written last, and only those not decided yet; digests only if pending.
    if recorder.events and written.rowcount != len(recorder.events):
        raise StaleClaim("an event was decided since it was claimed")
    if recorder.digests_decided and digests.rowcount != len(recorder.digests_decided):
        raise StaleClaim("a digest was decided since it was read")

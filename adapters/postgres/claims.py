"""Which events a deciding transaction takes: its keys first, then their events in order.

A (user, kind)'s events are decided in the order they were accepted (their ``seq``),
however many runners share the database. Claiming events first and locking their keys
afterwards cannot promise that: ``SKIP LOCKED`` lets a transaction pass over a key's
earlier events that another holds and take its later ones, and then win the key's lock
first. So a transaction takes ownership of keys before it decides any event, and takes
only events of keys it owns, oldest first, in one statement:

1. candidates: the lane's oldest ``limit`` pending events past the lane's position;
2. their keys' buckets in ``decision_locks`` (a hash of user and kind modulo
   ``BUCKETS``, migration 0004), locked ``SKIP LOCKED``: a bucket another transaction
   holds is passed over, not waited for;
3. the candidates of the buckets it now holds are its claim.

A transaction holds its buckets until it ends, so two never decide one key at once
(the cooldown's check and record stay atomic, see ``decisions``), and the events it
claims of a bucket are all of the bucket's pending events up to its last candidate: a
prefix, in ``seq`` order. Holding the bucket is what guards an event, so the event rows
themselves are not locked before they are written. The candidates are read as the
statement began, a moment before their buckets are held: should a bucket's holder
decide some of them and let go in that moment, the claim holds events decided since.
Writing them finds them decided (``decisions`` writes only pending events), and the
batch is rolled back and claimed again (``StaleClaim``).

When every candidate's bucket is held by others and the lane starts from the oldest
event, there is nothing it may take before they finish: it waits for the oldest
candidate's bucket, then takes again. It holds nothing while it waits, so no
transaction ever waits for one that waits (no deadlock), and runners sharing keys take
turns without polling for them.

A lane resumes past its last candidate while its candidates come full (so that it does
not walk again over what is decided, whose index entries linger until vacuum). The
events of a bucket it could not take are then left behind it; taking that bucket later
from further on would decide the bucket's later events first. So the lane passes such
buckets over (``passed``) until it starts again from the oldest event, which it does
when its candidates come short and at least every few batches (``intake``).

A lane is a share of the buckets (``bucket % lanes``), so a runner's lanes never share
a bucket, whatever their count.
"""

from __future__ import annotations

from typing import Any

import attrs
from psycopg import AsyncCursor

from tidings.adapters.intake_mark import MARKED_COLUMNS
from tidings.adapters.recording import CLAIMED_COLUMNS

BUCKETS = 3840
"""The rows of ``decision_locks``."""

KEY_BUCKET = (
    "abs(hashtextextended(coalesce(user_id, '') || chr(31) || coalesce(kind, ''), 0)"
    f" %% {BUCKETS})::integer"
)
"""An event's bucket; a row without user or kind still has one (and is rejected)."""

_NO_EVENT = (
    "NULL::bigint AS seq, NULL::text, NULL::text, NULL::text, NULL::text, NULL::text, NULL::text,"
    " NULL::text, NULL::boolean, NULL::timestamptz"
)

_TAKE = (
    "WITH candidate AS MATERIALIZED (SELECT * FROM"
    f"  (SELECT {MARKED_COLUMNS}, {KEY_BUCKET} AS bucket FROM events"
    "   WHERE seq > %(after)s AND status = 'pending' ORDER BY seq) AS pending"
    "  WHERE bucket %% %(lanes)s = %(lane)s LIMIT %(limit)s),"
    " held AS MATERIALIZED (SELECT bucket FROM decision_locks WHERE bucket IN"
    "  (SELECT bucket FROM candidate WHERE bucket <> ALL(%(passed)s::integer[]))"
    "  FOR UPDATE SKIP LOCKED)"
    # IN and NOT IN wrapped so, as filters, are looked up in a hash: the planner cannot
    # estimate the candidates, and would join them by walking one side once per row
    # of the other.
    f" SELECT {_NO_EVENT}, count(*), max(seq), min(seq), coalesce(array_agg(DISTINCT bucket)"
    "  FILTER (WHERE bucket NOT IN (SELECT bucket FROM held)), '{}') FROM candidate"
    f" UNION ALL SELECT {CLAIMED_COLUMNS}, NULL, NULL, NULL, NULL FROM candidate"
    "  WHERE (bucket IN (SELECT bucket FROM held)) IS TRUE"
    " ORDER BY seq NULLS FIRST"
)
"""The three steps in one statement. First comes a row that counts the candidates and
names the last and the oldest, and the buckets passed over; then the events claimed,
``CLAIMED_COLUMNS`` first (``validated`` true for events with the intake mark)."""

_WAIT_FOR = (
    "SELECT bucket FROM decision_locks"
    f" WHERE bucket = (SELECT {KEY_BUCKET} FROM events WHERE seq = %(seq)s) FOR UPDATE"
)
"""Wait for the bucket of the event ``seq``."""


class StaleClaim(Exception):
    """A claim holds an event another transaction decided after the claim read it; the
    transaction must be rolled back, and the claim made again."""


@attrs.frozen
class LanePosition:
    """Where a lane's next claim starts: past ``after`` (0: from the oldest event), how
    many batches ago it last started from the oldest, and the buckets it has passed
    over since then."""

    after: int = 0
    batches: int = 0
    passed: frozenset[int] = frozenset()


START = LanePosition()


async def claim_in_key_order(
    cursor: AsyncCursor[Any], limit: int, lane: tuple[int, int], position: LanePosition
) -> tuple[list[Any], LanePosition]:
    """Take the buckets and claim their events (``CLAIMED_COLUMNS`` first, in ``seq``
    order) inside the cursor's transaction. Returns the rows and where the lane goes on:
    past the last candidate while candidates come full, else from the oldest event."""
    values = {
        "after": position.after,
        "lane": lane[0],
        "lanes": lane[1],
        "passed": sorted(position.passed),
        "limit": limit,
    }
    await cursor.execute(_TAKE, values)
    summary, *rows = await cursor.fetchall()
    candidates, last, oldest, passed = summary[-4:]
    if candidates and not rows and position == START:
        await cursor.execute(_WAIT_FOR, {"seq": oldest})
        await cursor.execute(_TAKE, values)
        summary, *rows = await cursor.fetchall()
        candidates, last, oldest, passed = summary[-4:]
    if candidates < limit:
        return rows, START
    return rows, LanePosition(
        after=last, batches=position.batches + 1, passed=position.passed | frozenset(passed)
    )

"""Digests whose time has come for keys that had no event since (``core.digest``).

A key's due digest is sent before its next event by the transaction deciding it; this
finds the rest. It takes the keys' buckets in ``decision_locks`` as a deciding
transaction does (``claims``), passing over those another holds, and reads the
digests again once it holds them, so a digest is decided by exactly one transaction
however many runners look at once; the write's ``status = 'pending'`` guard and the
one-pending-digest-per-key index (migration 0008) are the backstop.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

from psycopg.rows import dict_row

from tidings.adapters.postgres.claims import KEY_BUCKET, StaleClaim
from tidings.adapters.postgres.connection import PostgresDatabase
from tidings.adapters.postgres.decisions import load_inputs, write_recorded
from tidings.adapters.recording import BatchRecorder
from tidings.core import Channel
from tidings.core.ports import DecideFn
from tidings.core.records import DecidedClaim

_TAKE_DUE = (
    "WITH due AS MATERIALIZED (SELECT user_id, kind, "
    f"{KEY_BUCKET} AS bucket FROM digests"
    "  WHERE status = 'pending' AND due_at <= {now} ORDER BY due_at LIMIT %(limit)s),"
    " held AS MATERIALIZED (SELECT bucket FROM decision_locks"
    "  WHERE bucket IN (SELECT bucket FROM due) FOR UPDATE SKIP LOCKED)"
    " SELECT user_id, kind FROM due WHERE bucket IN (SELECT bucket FROM held)"
)

_NOTHING = DecidedClaim(recorded=(), rejected=())


class PostgresDigests:
    """Decides the digests that are due and records them like decided events."""

    def __init__(self, database: PostgresDatabase) -> None:
        self._db = database

    async def decide_due_digests(
        self,
        worker_id: str,
        limit: int,
        decide: DecideFn,
        *,
        take: Mapping[Channel, int] | None = None,
    ) -> DecidedClaim:
        with contextlib.suppress(StaleClaim):  # decided meanwhile: nothing left to do
            async with self._db.connection() as connection:
                cursor = connection.cursor(row_factory=dict_row)
                await self._db.execute(cursor, _TAKE_DUE, limit=limit)
                keys = {(row["user_id"], row["kind"]) for row in await cursor.fetchall()}
                if not keys:
                    return _NOTHING
                now = self._db.clock() if self._db.clock is not None else None
                moment, inputs = await load_inputs(connection, keys, now)
                recorder = BatchRecorder(
                    worker_id=worker_id,
                    decide=decide,
                    now=moment,
                    lease=self._db.lease,
                    inputs=inputs,
                    take=take,
                )
                recorded = [
                    digest
                    for key in sorted(keys)
                    if (digest := recorder.record_due_digest(key)) is not None
                ]
                await write_recorded(
                    connection, recorder, seq_of={}, worker_id=worker_id, lease=self._db.lease
                )
                return DecidedClaim(recorded=tuple(recorded), rejected=())
        return _NOTHING

"""Digests whose time has come for keys that had no event since (``core.digest``).

A key's due digest is sent before its next event by the deciding transaction itself;
this finds the rest. SQLite's single writer serialises it with every decision, so the
``status = 'pending'`` guard on the write is all "exactly once" needs.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping

from tidings.adapters.recording import BatchRecorder
from tidings.adapters.sqlite import decisions, rows
from tidings.adapters.sqlite.connection import SqliteDatabase
from tidings.core import Channel
from tidings.core.ports import DecideFn
from tidings.core.records import DecidedClaim


class SqliteDigests:
    """Decides the digests that are due and records them like decided events."""

    def __init__(self, database: SqliteDatabase) -> None:
        self._db = database

    async def decide_due_digests(
        self,
        worker_id: str,
        limit: int,
        decide: DecideFn,
        *,
        take: Mapping[Channel, int] | None = None,
    ) -> DecidedClaim:
        def decide_due(connection: sqlite3.Connection) -> DecidedClaim:
            now = self._db.clock()
            keys = {
                (row["user_id"], row["kind"])
                for row in connection.execute(
                    "SELECT user_id, kind FROM digests WHERE status = 'pending'"
                    " AND due_at <= ? ORDER BY due_at LIMIT ?",
                    (rows.time_text(now), limit),
                )
            }
            if not keys:
                return DecidedClaim(recorded=(), rejected=())
            recorder = BatchRecorder(
                worker_id=worker_id,
                decide=decide,
                now=now,
                lease=self._db.lease,
                inputs=decisions.load_inputs(connection, keys, now),
                take=take,
            )
            recorded = [
                digest
                for key in sorted(keys)
                if (digest := recorder.record_due_digest(key)) is not None
            ]
            decisions.write(connection, recorder, {})
            return DecidedClaim(recorded=tuple(recorded), rejected=())

        return await self._db.write(decide_due)

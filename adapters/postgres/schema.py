"""The PostgreSQL schema: migrations applied once each (one runner at a time), and how
many are still to apply."""

from __future__ import annotations

from psycopg import AsyncCursor

from tidings.adapters.migrations import Migration, load_migrations
from tidings.adapters.postgres.connection import PostgresDatabase
from tidings.adapters.postgres.rows import Row

_PACKAGE = "tidings.adapters.postgres"
_MIGRATION_LOCK = 0x7469_6469_6E67_73  # "tidings"


class PostgresSchema:
    """Migrations (``adapters/postgres/migrations``), recorded in ``schema_migrations``."""

    def __init__(self, database: PostgresDatabase) -> None:
        self._db = database

    async def migrate(self) -> int:
        async with self._db.cursor() as cursor:
            await cursor.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            await cursor.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY,"
                " name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            pending = await _pending(cursor)
            for migration in pending:
                await cursor.execute(migration.sql.encode())
                await cursor.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                    (migration.version, migration.name),
                )
        return len(pending)

    async def pending_migrations(self) -> int:
        async with self._db.cursor(transaction=False) as cursor:
            return len(await _pending(cursor))


async def _pending(cursor: AsyncCursor[Row]) -> list[Migration]:
    """The package's migrations the database has not recorded, in version order."""
    await cursor.execute("SELECT to_regclass('schema_migrations') IS NOT NULL AS recorded")
    found = await cursor.fetchone()
    applied: set[int] = set()
    if found is not None and found["recorded"]:
        await cursor.execute("SELECT version FROM schema_migrations")
        applied = {row["version"] for row in await cursor.fetchall()}
    return [m for m in load_migrations(_PACKAGE) if m.version not in applied]

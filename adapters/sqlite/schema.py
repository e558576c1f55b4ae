"""The SQLite schema: migrations applied once each, and how many are still to apply."""

from __future__ import annotations

import sqlite3

from tidings.adapters.migrations import Migration, load_migrations
from tidings.adapters.sqlite.connection import SqliteDatabase

_PACKAGE = "tidings.adapters.sqlite"


class SqliteSchema:
    """Migrations (``adapters/sqlite/migrations``), recorded in ``schema_migrations``."""

    def __init__(self, database: SqliteDatabase) -> None:
        self._db = database

    async def migrate(self) -> int:
        return await self._db.write(self._migrate)

    async def pending_migrations(self) -> int:
        if not self._db.is_opened_or_exists():
            return len(load_migrations(_PACKAGE))  # an empty database lacks them all
        return len(await self._db.read(_pending))

    def _migrate(self, connection: sqlite3.Connection) -> int:
        connection.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations"
            " (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
        pending = _pending(connection)
        for migration in pending:
            for statement in _statements(migration.sql):
                connection.execute(statement)
            connection.execute(
                "INSERT INTO schema_migrations VALUES (?, ?, ?)",
                (migration.version, migration.name, self._db.now()),
            )
        return len(pending)


def _pending(connection: sqlite3.Connection) -> list[Migration]:
    """The package's migrations the database has not recorded, in version order."""
    recorded = connection.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
    ).fetchone()
    applied = (
        {row[0] for row in connection.execute("SELECT version FROM schema_migrations")}
        if recorded
        else set()
    )
    return [m for m in load_migrations(_PACKAGE) if m.version not in applied]


def _statements(script: str) -> list[str]:
    """Split a migration into statements (our migrations hold no ';' inside literals)."""
    lines = [line.split("--", 1)[0] for line in script.splitlines()]
    return [part.strip() for part in "\n".join(lines).split(";") if part.strip()]

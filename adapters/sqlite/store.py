"""The embedded default store: one SQLite file, WAL mode, zero setup.

sqlite3 blocks, so every call runs on one dedicated thread that owns the connection:
the event loop never waits on the disk, and calls are serialised as SQLite wants.
Each write is one ``BEGIN IMMEDIATE`` transaction, so several processes sharing the
file take turns instead of failing to upgrade a read lock.
"""

from __future__ import annotations

from tidings.adapters.sqlite.history import HistoryTables
from tidings.adapters.sqlite.intake import IntakeTables
from tidings.adapters.sqlite.outbox import DeliveryTables
from tidings.adapters.sqlite.people import PeopleTables


class SqliteStore(IntakeTables, DeliveryTables, PeopleTables, HistoryTables):
    """Every port on one SQLite database file. ``clock`` gives "now"; the runner owns it."""

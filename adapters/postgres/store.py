"""The production store: PostgreSQL through psycopg 3 (async) and a connection pool.

Any number of runners on any number of machines share one database. Claims use
``FOR UPDATE SKIP LOCKED`` with a lease; decisions are serialised per (user, kind)
(see ``decisions``); times come from the database clock unless a clock is injected
(tests). A lost connection surfaces as ``StoreUnavailable``, which the runner waits
out: every promise lives in the database, so retrying loses nothing.
"""

from __future__ import annotations

from tidings.adapters.postgres.history import HistoryTables
from tidings.adapters.postgres.intake import IntakeTables
from tidings.adapters.postgres.outbox import DeliveryTables
from tidings.adapters.postgres.people import PeopleTables


class PostgresStore(IntakeTables, DeliveryTables, PeopleTables, HistoryTables):
    """Every port on PostgreSQL. Pass ``clock`` only to override the database clock."""

"""The PostgreSQL store, for production: many runners, one database."""

from tidings.adapters.postgres.store import PostgresStore

__all__ = ["PostgresStore"]

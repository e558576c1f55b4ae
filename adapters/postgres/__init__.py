"""The PostgreSQL store, for production: many runners, one database."""

from adapters.postgres.store import PostgresStore

__all__ = ["PostgresStore"]

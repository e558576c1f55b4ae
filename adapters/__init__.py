"""Thin I/O behind the core's ports: stores (memory, SQLite, PostgreSQL) and channels."""

"""The intake mark: how a claim knows the events tidings validated as it stored them.

Tidings validates every event it stores (``core.validation``) and marks the valid ones
with the database's own random number (table ``intake_secret``: PostgreSQL migration
0006, SQLite migration 0005), so that a claim takes them as they are instead of
validating them twice. A producer that inserts rows itself does not have that number,
so its rows are validated when claimed, whatever else they carry: an earlier version
trusted a ``validated`` flag that any INSERT could set, and so let invalid rows through.
"""

from __future__ import annotations

from tidings.adapters.recording import CLAIMED_COLUMNS

MARK = "(SELECT mark FROM intake_secret)"
"""The database's mark, as SQL that both stores read."""

MARKED_COLUMNS = CLAIMED_COLUMNS.replace("validated", f"intake_mark = {MARK} AS validated")
"""What a claim selects: ``CLAIMED_COLUMNS``, in its order, where ``validated`` says
whether the row carries the mark."""

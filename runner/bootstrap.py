"""The one composition root: settings in; a store, its schema check, senders and a
dispatcher out.

Both ways into tidings are built here, the ``tidings`` command (runner/cli/) and the
Python API that applications call (runner/api.py), so a setting means the same in both
and a store is opened, checked and wired one way.

Schema changes are explicit: only ``migrate`` changes a schema. Everything else checks
first (``check_schema``) and refuses a database that is missing, empty or behind with
one line that says to run ``tidings migrate``, rather than failing on a missing table
halfway through, or creating a database file wherever a read happened to run.
"""

from __future__ import annotations

import enum
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path

import attrs

from tidings.core.ports import Store
from tidings.runner.clock import system_clock
from tidings.runner.config import Settings, load_settings
from tidings.runner.dispatch import Dispatcher, channel_senders
from tidings.runner.stores import migrations_for, open_store, sqlite_path
from tidings.runner.telemetry import DispatchObserver, LogObserver, shown_database


@attrs.frozen
class Runtime:
    """What one process of tidings works with: its settings, its store and its clock."""

    settings: Settings
    store: Store
    clock: Callable[[], datetime]


def settings_for(
    url: str | None, *, config_file: Path | None = None, overrides: Mapping[str, object]
) -> Settings:
    """Settings as the CLI reads them: ``url`` and ``overrides`` (setting names, such as
    ``workers`` or ``cooldown_seconds``) act as flags, over ``TIDINGS_*`` in the
    environment, over the TOML file (``config_file``, else ``TIDINGS_CONFIG``)."""
    return load_settings({"database_url": url, **overrides}, config_file=config_file)


def open_runtime(settings: Settings, *, clock: Callable[[], datetime] = system_clock) -> Runtime:
    """The store the settings name, not yet connected (the first call connects)."""
    store = open_store(
        settings.database_url, clock=clock, lease=settings.lease, pool_size=settings.pool_size
    )
    return Runtime(settings, store, clock)


class SchemaState(enum.Enum):
    """Why a database cannot be used yet."""

    MISSING = "missing"
    EMPTY = "empty"
    BEHIND = "behind"


class SchemaNotReady(Exception):
    """The database is missing, empty or behind: ``tidings migrate`` (``migrate()`` in
    Python) brings it up to date. The message is one line naming the database, shown
    without credentials."""

    def __init__(self, database: str, state: SchemaState, pending: int) -> None:
        self.database = database
        self.state = state
        self.pending = pending
        reason = {
            SchemaState.MISSING: "does not exist",
            SchemaState.EMPTY: "has no tidings schema",
            SchemaState.BEHIND: f"is behind: {pending} migration(s) not applied",
        }[state]
        super().__init__(
            f"database {database} {reason}: run `tidings migrate` (migrate() in Python)"
        )


async def check_schema(runtime: Runtime) -> None:
    """Raise ``SchemaNotReady`` unless the database holds every migration. A SQLite file
    that does not exist is missing: it is looked for, never created, by a check."""
    url = runtime.settings.database_url
    if _missing_file(url):
        raise SchemaNotReady(shown_database(url), SchemaState.MISSING, len(migrations_for(url)))
    pending = await runtime.store.pending_migrations()
    if pending:
        state = SchemaState.EMPTY if pending >= len(migrations_for(url)) else SchemaState.BEHIND
        raise SchemaNotReady(shown_database(url), state, pending)


def _missing_file(url: str) -> bool:
    """Whether ``url`` names a SQLite file that is not there (a stat, not an open)."""
    path = sqlite_path(url)
    return path is not None and path != ":memory:" and not Path(path).exists()


async def migrate(runtime: Runtime) -> tuple[str, ...]:
    """Apply what is pending; the names of the migrations applied (``0004_decision_locks``),
    in order. A store applies its migrations in order and all that are pending at once
    (under a lock on PostgreSQL), so those it applied are the last of its list."""
    applied = await runtime.store.migrate()
    known = migrations_for(runtime.settings.database_url)
    return tuple(f"{m.version:04d}_{m.name}" for m in known[len(known) - applied :])


def new_worker_id() -> str:
    """A dispatcher's name among the runners sharing a database: host, process, nonce."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


@asynccontextmanager
async def dispatcher(
    runtime: Runtime,
    *,
    observers: Sequence[DispatchObserver] | None = None,
    worker_id: str | None = None,
) -> AsyncIterator[Dispatcher]:
    """A dispatcher over the runtime's store with the configured channel senders (closed
    on the way out), policy and options; it logs each decision and delivery attempt
    unless other ``observers`` are given."""
    async with channel_senders(runtime.store, runtime.settings) as senders:
        yield Dispatcher(
            runtime.store,
            senders,
            worker_id=worker_id or new_worker_id(),
            policy=runtime.settings.policy,
            options=runtime.settings.dispatch,
            clock=runtime.clock,
            observers=(LogObserver(),) if observers is None else observers,
        )

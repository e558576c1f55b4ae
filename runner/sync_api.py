"""tidings for synchronous code: Django or Flask views, scripts, worker threads.

``Tidings`` offers the operations of ``AsyncTidings`` (runner/api.py) as plain calls. It
owns a private event loop on a background thread, where its ``AsyncTidings`` and store
live, and runs each call there (``asyncio.run_coroutine_threadsafe``), waiting for the
answer. So one instance is safe to share between threads: SQLite and PostgreSQL
connections never cross threads, and calls from many threads interleave on the one loop
as an asyncio application's would.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import threading
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from datetime import time, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

from tidings.core import Channel, Preference, Severity
from tidings.core.quiet_hours import QuietHours
from tidings.core.records import UNCHANGED, Notification, Recipient
from tidings.runner.api import AsyncTidings, Clock, Field
from tidings.runner.clock import system_clock
from tidings.runner.config import Settings
from tidings.runner.telemetry import DispatchSummary

_P = ParamSpec("_P")
_T = TypeVar("_T")


class Tidings:
    """tidings for synchronous code (Django, Flask, scripts), safe to share between
    threads: one private event loop on a background thread owns the store, and every
    call runs there and waits for its answer. Open with ``Tidings.open(url)`` (the same
    arguments as ``AsyncTidings.open``); use as ``with``, or ``close()`` (one left open
    closes when the interpreter exits). Each method is
    its ``AsyncTidings`` namesake, run to completion (exceptions included)."""

    def __init__(self, tidings: AsyncTidings) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tidings", daemon=True)
        self._thread.start()
        self._tidings = tidings
        self._lock = threading.Lock()
        self._calls: set[concurrent.futures.Future[Any]] = set()
        self._closed = False
        # One opened at import time (a Django module's) is never closed by its owner: it
        # closes at exit, so connections end cleanly and SQLite checkpoints its WAL.
        atexit.register(self.close)

    @classmethod
    def open(
        cls,
        url: str | None = None,
        *,
        config_file: str | Path | None = None,
        clock: Clock = system_clock,
        **overrides: object,
    ) -> Tidings:
        """See ``AsyncTidings.open``."""
        return cls(AsyncTidings.open(url, config_file=config_file, clock=clock, **overrides))

    @property
    def settings(self) -> Settings:
        """The settings in effect (see ``AsyncTidings.settings``)."""
        return self._tidings.settings

    def _call(
        self, method: Callable[_P, Coroutine[Any, Any, _T]], *args: _P.args, **kwargs: _P.kwargs
    ) -> _T:
        with self._lock:
            if self._closed:
                raise RuntimeError("this Tidings is closed")
            call = asyncio.run_coroutine_threadsafe(method(*args, **kwargs), self._loop)
            self._calls.add(call)
        call.add_done_callback(self._forget)
        return call.result()

    def _forget(self, call: concurrent.futures.Future[Any]) -> None:
        with self._lock:
            self._calls.discard(call)

    def __enter__(self) -> Tidings:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Wait for the calls in progress, close the store and end the loop's thread.
        Calls after this raise ``RuntimeError``; closing again does nothing."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            in_progress = list(self._calls)
        atexit.unregister(self.close)
        concurrent.futures.wait(in_progress)
        try:
            asyncio.run_coroutine_threadsafe(self._tidings.close(), self._loop).result()
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()

    def migrate(self) -> tuple[str, ...]:
        return self._call(self._tidings.migrate)

    def check_schema(self) -> None:
        self._call(self._tidings.check_schema)

    def send(
        self,
        *,
        user_id: str,
        kind: str,
        severity: Severity | str,
        title: str,
        body: str,
        payload: Mapping[str, object] | None = None,
        event_id: str | None = None,
    ) -> str:
        return self._call(
            self._tidings.send,
            user_id=user_id,
            kind=kind,
            severity=severity,
            title=title,
            body=body,
            payload=payload,
            event_id=event_id,
        )

    def enqueue(self, events: Iterable[Mapping[str, object]]) -> list[str]:
        return self._call(self._tidings.enqueue, list(events))

    def explain(self, event_id: str) -> str | None:
        return self._call(self._tidings.explain, event_id)

    def set_preference(
        self,
        user_id: str,
        kind: str,
        channels: Iterable[Channel | str],
        min_severity: Severity | str | None = None,
        *,
        digest: bool | None = None,
    ) -> Preference:
        return self._call(
            self._tidings.set_preference, user_id, kind, list(channels), min_severity, digest=digest
        )

    def preferences(self, user_id: str) -> Mapping[str, Preference]:
        return self._call(self._tidings.preferences, user_id)

    def set_quiet_hours(
        self, user_id: str, *, starts: str | time, ends: str | time, timezone: str
    ) -> QuietHours:
        return self._call(
            self._tidings.set_quiet_hours, user_id, starts=starts, ends=ends, timezone=timezone
        )

    def clear_quiet_hours(self, user_id: str) -> None:
        self._call(self._tidings.clear_quiet_hours, user_id)

    def quiet_hours(self, user_id: str) -> QuietHours | None:
        return self._call(self._tidings.quiet_hours, user_id)

    def set_recipient(
        self,
        user_id: str,
        *,
        email: Field = UNCHANGED,
        webhook_url: Field = UNCHANGED,
        webhook_secret: Field = UNCHANGED,
    ) -> Recipient:
        return self._call(
            self._tidings.set_recipient,
            user_id,
            email=email,
            webhook_url=webhook_url,
            webhook_secret=webhook_secret,
        )

    def recipient(self, user_id: str) -> Recipient | None:
        return self._call(self._tidings.recipient, user_id)

    def inbox(
        self, user_id: str, *, unread_only: bool = False, limit: int = 50
    ) -> Sequence[Notification]:
        return self._call(self._tidings.inbox, user_id, unread_only=unread_only, limit=limit)

    def unread_count(self, user_id: str) -> int:
        return self._call(self._tidings.unread_count, user_id)

    def mark_read(self, user_id: str, notification_id: str) -> bool:
        return self._call(self._tidings.mark_read, user_id, notification_id)

    def mark_all_read(self, user_id: str) -> int:
        return self._call(self._tidings.mark_all_read, user_id)

    def prune(
        self, older_than: timedelta | str | None = None, *, dry_run: bool = False
    ) -> dict[str, int]:
        return self._call(self._tidings.prune, older_than, dry_run=dry_run)

    def run_until_idle(self) -> DispatchSummary:
        return self._call(self._tidings.run_until_idle)

"""tidings as a library: the Python API that applications call, asyncio or not.

``AsyncTidings`` lives in the application's own event loop: every operation is a
coroutine, and the dispatcher can run in that loop too (``start``/``stop``,
``dispatching()``). runner/sync_api.py offers the same operations as plain calls.

Both are wired by runner/bootstrap.py from the settings the ``tidings`` command reads,
and apply its rules: events are validated by ``parse_event`` before anything is stored,
contact points by runner/recipients.py, and the schema is only changed by ``migrate()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from datetime import datetime, time, timedelta
from pathlib import Path
from types import TracebackType

from tidings.adapters.zones import zone_named
from tidings.core import GLOBAL_KIND, Channel, Event, FieldError, Preference, Severity, parse_event
from tidings.core.contacts import changed_recipient
from tidings.core.ports import PRUNED_TABLES
from tidings.core.quiet_hours import QuietHours, parse_clock
from tidings.core.records import (
    UNCHANGED,
    EventRecord,
    Notification,
    Recipient,
    RecipientChange,
    Unchanged,
)
from tidings.runner import bootstrap
from tidings.runner.clock import system_clock
from tidings.runner.config import DURATION_FORMS, Settings, parse_duration
from tidings.runner.dispatch import Dispatcher
from tidings.runner.recipients import recipient_problems
from tidings.runner.telemetry import DispatchSummary

Clock = Callable[[], datetime]
Field = str | None | Unchanged
"""A contact point in a change: a value, None to clear it, or ``UNCHANGED`` to keep it."""


class InvalidEventError(ValueError):
    """Events refused by validation; nothing of the call was stored.

    ``invalid`` maps the position of each bad event in the call (0 for ``send``) to
    every reason it was refused; ``errors`` holds them all. The message names each field.
    """

    def __init__(self, invalid: Mapping[int, Sequence[FieldError]], *, batch: bool) -> None:
        self.invalid = {index: tuple(errors) for index, errors in invalid.items()}
        self.errors = tuple(error for errors in self.invalid.values() for error in errors)
        if batch:
            listed = ", ".join(
                f"event {index} ({'; '.join(map(str, errors))})"
                for index, errors in self.invalid.items()
            )
            message = f"{len(self.invalid)} invalid event(s), none stored: {listed}"
        else:
            message = f"invalid event, not stored: {'; '.join(map(str, self.errors))}"
        super().__init__(message)


class InvalidPreferenceError(ValueError):
    """A preference tidings would not apply as given; nothing was stored."""


class InvalidQuietHoursError(ValueError):
    """Quiet hours refused; nothing was stored. ``problems`` maps each argument at fault
    (``starts``, ``ends``, ``timezone``) to what is wrong with it, so that the command
    line can name its own options instead."""

    def __init__(self, problems: Mapping[str, str]) -> None:
        self.problems = dict(problems)
        super().__init__("; ".join(f"{field}: {problem}" for field, problem in problems.items()))


class InvalidRecipientError(ValueError):
    """Contact points refused; nothing was stored. ``problems`` names each field (the
    secret is never echoed)."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(self.problems))


GLOBAL_MINIMUM_UNUSED = (
    f"the {GLOBAL_KIND} row's minimum severity is not used: a kind without its own row"
    " takes the global row's channels and the policy's default_min_severity"
    " (rule 1); set a minimum on a per-kind row instead"
)
GLOBAL_DIGEST_UNUSED = (
    f"the {GLOBAL_KIND} row takes no digest switch: a kind without its own row follows"
    " the policy's digest_after_cooldown; set digest on a per-kind row instead"
)


def _event_fields(data: object, new_id: Callable[[], str]) -> Event | tuple[FieldError, ...]:
    """The event ``data`` holds, or every reason it holds none."""
    if not isinstance(data, Mapping):
        return (FieldError("event", f"must be a mapping, got {type(data).__name__}"),)
    fields = dict(data)
    fields.setdefault("event_id", new_id())
    parsed = parse_event(fields)
    event = parsed.value_or(None)
    return parsed.failure().errors if event is None else event


def recorded_sentence(record: EventRecord) -> str:
    """What became of an event, in one sentence: its decision explained, why it was
    rejected, or that it waits."""
    if record.explanation:
        return record.explanation
    if record.error:
        return f"rejected: {record.error}"
    return f"not decided yet ({record.status.value})"


def _severity(value: Severity | str) -> Severity:
    try:
        return Severity(value)
    except ValueError:
        raise InvalidPreferenceError(
            f"min_severity: must be info, watch or critical, got {value!r}"
        ) from None


def _clock(field: str, value: str | time) -> time:
    """A window's start or end: ``HH:MM`` text (``core.quiet_hours.parse_clock``) or a
    wall-clock ``time`` on a whole minute, as a window holds them. Raises ValueError
    with the problem alone (the caller names the field)."""
    if isinstance(value, str):
        return parse_clock(field, value)  # its message names the field: removed below
    if not isinstance(value, time):  # for callers without a type checker
        raise ValueError(f"must be HH:MM text or a datetime.time, not {type(value).__name__}")
    if value.tzinfo is not None:
        raise ValueError("must be a wall-clock time without a time zone")
    if value.second or value.microsecond:
        raise ValueError(f"must be a whole minute, not {value.isoformat()}")
    return value


def _quiet_window(starts: str | time, ends: str | time, timezone: str) -> QuietHours:
    """The window the arguments describe, or ``InvalidQuietHoursError`` naming each
    argument at fault."""
    problems: dict[str, str] = {}
    clocks: dict[str, time] = {}
    for field, value in (("starts", starts), ("ends", ends)):
        try:
            clocks[field] = _clock(field, value)
        except ValueError as error:
            problems[field] = str(error).removeprefix(f"{field}: ")
    if len(clocks) == 2 and clocks["starts"] == clocks["ends"]:
        problems["ends"] = (
            f"is the same time as the start ({clocks['starts']:%H:%M}): quiet hours must"
            " start and end at different times"
        )
    try:
        zone = zone_named(timezone)
    except ValueError as error:
        problems["timezone"] = str(error).removeprefix("timezone: ")
    if problems:
        raise InvalidQuietHoursError(problems)
    return QuietHours(starts=clocks["starts"], ends=clocks["ends"], zone=zone)


def _to_check(stored: Recipient | None, change: RecipientChange) -> Recipient:
    """What ``recipient_problems`` checks for a change: the email if it is given, and the
    webhook's URL and secret as they will stand if either is given (a URL needs a
    secret). Fields the change keeps were checked when they were set."""
    after = changed_recipient(stored, change)
    webhook = not (
        isinstance(change.webhook_url, Unchanged) and isinstance(change.webhook_secret, Unchanged)
    )
    return Recipient(
        user_id=change.user_id,
        email=None if isinstance(change.email, Unchanged) else after.email,
        webhook_url=after.webhook_url if webhook else None,
        webhook_secret=after.webhook_secret if webhook else None,
    )


class AsyncTidings:
    """tidings in an asyncio application. Open with ``AsyncTidings.open(url)``; use as
    ``async with``, or ``await close()``. The first operation checks the schema
    (``SchemaNotReady`` if the database is missing, empty or behind; ``migrate()`` brings
    it up to date). ``runtime`` is the wiring beneath (settings, store, clock), for tools
    built on tidings such as its command line: its store is not a stable API."""

    def __init__(self, runtime: bootstrap.Runtime) -> None:
        self.runtime = runtime
        self._checked = False
        self._running: tuple[Dispatcher, asyncio.Task[DispatchSummary]] | None = None

    @classmethod
    def open(
        cls,
        url: str | None = None,
        *,
        config_file: str | Path | None = None,
        clock: Clock = system_clock,
        **overrides: object,
    ) -> AsyncTidings:
        """Settings as the ``tidings`` command reads them: ``url`` (else
        ``TIDINGS_DATABASE_URL``, else ``sqlite:///tidings.db``) and ``overrides`` (any
        setting by name: ``workers=2``, ``cooldown_seconds=3600``) as its flags, over the
        environment, over the TOML file. Nothing connects until the first operation."""
        file = None if config_file is None else Path(config_file)
        settings = bootstrap.settings_for(url, config_file=file, overrides=overrides)
        return cls(bootstrap.open_runtime(settings, clock=clock))

    @property
    def settings(self) -> Settings:
        """The settings in effect, checked: as the ``tidings`` command would run."""
        return self.runtime.settings

    async def __aenter__(self) -> AsyncTidings:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop the dispatcher if it runs here, then close the store."""
        try:
            if self._running is not None:
                await self.stop()
        finally:
            await self.runtime.store.close()

    # -- the schema ------------------------------------------------------------------

    async def migrate(self) -> tuple[str, ...]:
        """Create or upgrade the schema; the names of the migrations applied, in order
        (none when it was up to date). ``memory://`` is born current."""
        applied = await bootstrap.migrate(self.runtime)
        self._checked = True
        return applied

    async def check_schema(self) -> None:
        """Raise ``SchemaNotReady`` if the database is missing, empty or behind."""
        await bootstrap.check_schema(self.runtime)
        self._checked = True

    async def _ready(self) -> None:
        if not self._checked:
            await self.check_schema()

    # -- events ----------------------------------------------------------------------

    async def send(
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
        """Store one event for the dispatcher; its id (a new one unless given). An id
        already stored is not stored again. ``InvalidEventError`` names every bad field."""
        fields: dict[str, object] = {
            "user_id": user_id,
            "kind": kind,
            "severity": severity.value if isinstance(severity, Severity) else severity,
            "title": title,
            "body": body,
        }
        if payload is not None:
            fields["payload"] = payload
        if event_id is not None:
            fields["event_id"] = event_id
        return (await self._store_events([fields], batch=False))[0]

    async def enqueue(self, events: Iterable[Mapping[str, object]]) -> list[str]:
        """Store events given as JSON lines hold them (``event_id`` optional, ``payload``
        an object); their ids, in order, duplicates of stored ids included but not stored
        again. One bad event and nothing is stored: ``InvalidEventError`` says which."""
        return await self._store_events(list(events), batch=True)

    async def _store_events(self, items: Sequence[object], *, batch: bool) -> list[str]:
        parsed = [_event_fields(item, lambda: uuid.uuid4().hex) for item in items]
        invalid = {n: found for n, found in enumerate(parsed) if not isinstance(found, Event)}
        if invalid:
            raise InvalidEventError(invalid, batch=batch)
        events = [found for found in parsed if isinstance(found, Event)]
        await self._ready()
        await self.runtime.store.enqueue(events)
        return [event.event_id for event in events]

    async def explain(self, event_id: str) -> str | None:
        """Why the event was (not) notified, in one sentence; None for an unknown id."""
        await self._ready()
        record = await self.runtime.store.event_record(event_id)
        return None if record is None else recorded_sentence(record)

    # -- preferences and contact points ----------------------------------------------

    async def set_preference(
        self,
        user_id: str,
        kind: str,
        channels: Iterable[Channel | str],
        min_severity: Severity | str | None = None,
        *,
        digest: bool | None = None,
    ) -> Preference:
        """Store a user's preference for ``kind`` (``_global``: for kinds without their
        own row); returns it as stored (channel names trimmed, lower-cased, deduplicated;
        unknown names kept and ignored). ``min_severity`` defaults to info; ``digest``
        says whether what the cooldown holds back is sent as a digest (None: as the
        policy says). The global row takes neither (``InvalidPreferenceError``): its
        minimum is the policy default, and so is its digest switch."""
        if kind == GLOBAL_KIND and min_severity is not None:
            raise InvalidPreferenceError(GLOBAL_MINIMUM_UNUSED)
        if kind == GLOBAL_KIND and digest is not None:
            raise InvalidPreferenceError(GLOBAL_DIGEST_UNUSED)
        if digest is not None and not isinstance(digest, bool):
            raise InvalidPreferenceError(
                f"digest: must be True, False or None, not {type(digest).__name__}"
            )
        severity = Severity.INFO if min_severity is None else _severity(min_severity)
        names = tuple(item.value if isinstance(item, Channel) else item for item in channels)
        await self._ready()
        return await self.runtime.store.set_preference(
            user_id, kind, Preference(names, severity, digest=digest)
        )

    async def preferences(self, user_id: str) -> Mapping[str, Preference]:
        """The user's rows by kind (``_global`` for the global row)."""
        await self._ready()
        return await self.runtime.store.preferences(user_id)

    async def set_quiet_hours(
        self, user_id: str, *, starts: str | time, ends: str | time, timezone: str
    ) -> QuietHours:
        """Hold the user's deliveries every day from ``starts`` until ``ends`` (``HH:MM``
        or a ``time``; past midnight when ``ends`` is earlier) on their clock in
        ``timezone``, an IANA name such as ``Europe/Berlin``; replaces any window they
        had, and returns the one stored. ``InvalidQuietHoursError`` names the bad
        argument."""
        window = _quiet_window(starts, ends, timezone)
        await self._ready()
        await self.runtime.store.set_quiet_hours(user_id, window)
        return window

    async def clear_quiet_hours(self, user_id: str) -> None:
        """Remove the user's quiet hours (none is fine): deliveries go out at once."""
        await self._ready()
        await self.runtime.store.set_quiet_hours(user_id, None)

    async def quiet_hours(self, user_id: str) -> QuietHours | None:
        """The user's quiet hours, if they have any."""
        await self._ready()
        return await self.runtime.store.quiet_hours(user_id)

    async def set_recipient(
        self,
        user_id: str,
        *,
        email: Field = UNCHANGED,
        webhook_url: Field = UNCHANGED,
        webhook_secret: Field = UNCHANGED,
    ) -> Recipient:
        """Change only the contact points given (None clears one); the user's contact
        points as they now stand. Checked as the command line checks them
        (``InvalidRecipientError`` names each field): a webhook URL needs a secret."""
        change = RecipientChange(
            user_id=user_id, email=email, webhook_url=webhook_url, webhook_secret=webhook_secret
        )
        if all(isinstance(value, Unchanged) for value in (email, webhook_url, webhook_secret)):
            raise InvalidRecipientError(
                ["nothing to change: give email, webhook_url or webhook_secret"]
            )
        await self._ready()
        stored = await self.runtime.store.recipient(user_id)
        if problems := recipient_problems(_to_check(stored, change)):
            raise InvalidRecipientError(problems)
        return await self.runtime.store.update_recipient(change)

    async def recipient(self, user_id: str) -> Recipient | None:
        """The user's contact points, if any are stored."""
        await self._ready()
        return await self.runtime.store.recipient(user_id)

    # -- the inbox ---------------------------------------------------------------------

    async def inbox(
        self, user_id: str, *, unread_only: bool = False, limit: int = 50
    ) -> Sequence[Notification]:
        """The user's in-app notifications, newest first."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        await self._ready()
        return await self.runtime.store.inbox(user_id, unread_only=unread_only, limit=limit)

    async def unread_count(self, user_id: str) -> int:
        await self._ready()
        return await self.runtime.store.unread_count(user_id)

    async def mark_read(self, user_id: str, notification_id: str) -> bool:
        """Mark one notification read (again is fine); False if it is not the user's."""
        await self._ready()
        return await self.runtime.store.mark_read(user_id, notification_id)

    async def mark_all_read(self, user_id: str) -> int:
        """Mark every unread notification of the user read; how many there were."""
        await self._ready()
        return await self.runtime.store.mark_all_read(user_id)

    # -- retention -----------------------------------------------------------------------

    async def prune(
        self, older_than: timedelta | str | None = None, *, dry_run: bool = False
    ) -> dict[str, int]:
        """Remove what no promise needs any more once older than ``older_than`` (a
        ``timedelta``, or text such as ``"90d"``; None: the ``retention`` setting), in
        small chunks, each its own transaction (``core.ports.Retention`` says what is
        kept); with ``dry_run``, count what would go and change nothing. Returns the
        rows removed (or removable) by table: deliveries, notifications, events,
        digests. ValueError when ``older_than`` is malformed, or None with retention
        off."""
        horizon = self._older_than(older_than)
        await self._ready()
        store = self.runtime.store
        if dry_run:
            return dict(await store.prunable(horizon))
        removed = dict.fromkeys(PRUNED_TABLES, 0)
        clock = asyncio.get_running_loop().time
        started = clock()
        async for chunk in store.prune(horizon):
            for table, count in chunk.items():
                removed[table] += count
            # As long again as the chunk took: a SQLite runner in another process, whose
            # writes wait for the file's one lock, gets its turn in between.
            await asyncio.sleep(clock() - started)
            started = clock()
        return removed

    def _older_than(self, older_than: timedelta | str | None) -> timedelta:
        if isinstance(older_than, str):
            try:
                return parse_duration(older_than)
            except ValueError as error:
                raise ValueError(f"older_than: {error}") from None
        if older_than is None:
            if self.settings.dispatch.retention is None:
                raise ValueError(
                    f"older_than: give {DURATION_FORMS}, or set retention (TIDINGS_RETENTION)"
                )
            return self.settings.dispatch.retention
        if older_than <= timedelta(0):
            raise ValueError(f"older_than: must be above zero, got {older_than}")
        return older_than

    # -- the dispatcher ------------------------------------------------------------------

    async def run_until_idle(self) -> DispatchSummary:
        """Dispatch until nothing is left to do now (events decided, due deliveries
        sent); what was done."""
        await self._ready()
        if self._running is not None:
            raise RuntimeError("the dispatcher is already running here: stop() it first")
        async with bootstrap.dispatcher(self.runtime) as dispatcher:
            return await dispatcher.run(until_idle=True)

    async def start(self) -> asyncio.Task[DispatchSummary]:
        """Run the dispatcher in this event loop until ``stop()``; its task."""
        await self._ready()
        if self._running is not None:
            raise RuntimeError("the dispatcher is already running here")
        senders = contextlib.AsyncExitStack()
        dispatcher = await senders.enter_async_context(bootstrap.dispatcher(self.runtime))

        async def run() -> DispatchSummary:
            async with senders:
                return await dispatcher.run()

        task = asyncio.create_task(run(), name="tidings-dispatcher")
        self._running = (dispatcher, task)
        return task

    async def stop(self) -> DispatchSummary:
        """Stop claiming, hand back the deliveries held but not started, let the sends
        in flight finish within ``shutdown_grace`` (then cut and hand them back), and
        return what the run did."""
        if self._running is None:
            raise RuntimeError("the dispatcher is not running here")
        dispatcher, task = self._running
        dispatcher.stop()
        try:
            return await task
        finally:
            self._running = None

    @contextlib.asynccontextmanager
    async def dispatching(self) -> AsyncIterator[asyncio.Task[DispatchSummary]]:
        """``async with tidings.dispatching():`` runs the dispatcher in this loop for the
        block, and stops it cleanly on the way out."""
        task = await self.start()
        try:
            yield task
        finally:
            await self.stop()

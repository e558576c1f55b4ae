"""Retention on every store (``core.ports.Retention``): random histories, then a pass.

Hypothesis draws a history (events of a few keys at several severities, some invalid,
decided under escalation and digests; deliveries claimed and settled delivered,
skipped, retrying or dead, one requeued; quiet hours holding some; notifications read;
the clock moving on) and a horizon. The store is read through its ports before and
after one pass of ``prune``, in chunks of a few rows so that windows end anywhere, and:

- what was removed is exactly what the rules allow (``removable``, written from the
  Retention docstring alone): nothing a promise needs, everything older that may go;
- ``prunable`` counted it beforehand, and finds nothing afterwards;
- decisions afterwards are those without the pass: a copy of the store taken before it
  and the pruned store go on with the same events and clock, and decide, digest and
  explain alike.

Memory and SQLite run many examples, PostgreSQL a few (each on a database of its own).
Concurrent passes and a drain on PostgreSQL: ``test_postgres_prune_beside_a_drain``.
"""

from __future__ import annotations

import asyncio
import copy
import sqlite3
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, time, timedelta
from functools import partial
from pathlib import Path

import attrs
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.adapters.conftest import LEASE, START
from tests.conftest import SERVER_URL, database_url
from tidings.adapters.memory import MemoryStore
from tidings.adapters.postgres import PostgresStore
from tidings.adapters.sqlite import SqliteStore
from tidings.adapters.zones import zone_named
from tidings.core import Event, Policy, Preference, Severity, decide_with
from tidings.core.decision import DecisionInputs
from tidings.core.digest import DIGEST_PREFIX
from tidings.core.ports import PRUNED_TABLES, DecideFn, Store
from tidings.core.quiet_hours import QuietHours
from tidings.core.records import (
    TERMINAL_EVENT_STATUSES,
    ChannelFailed,
    ChannelOutcome,
    ChannelSkipped,
    Delivered,
    DeliveryRecord,
    DeliveryStatus,
    EventRecord,
    EventStatus,
    Notification,
    Recipient,
    RecipientChange,
)
from tidings.testing import FakeClock

POLICY = Policy(
    cooldown=timedelta(hours=3), escalate_past_cooldown=True, digest_after_cooldown=True
)
DECIDE: DecideFn = partial(decide_with, policy=POLICY)
USERS = ("ana", "ben", "cleo")
KINDS = ("deploy", "quota")
KEYS = tuple((user, kind) for user in USERS for kind in KINDS)
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
FAR = datetime(2999, 1, 1, tzinfo=UTC)
SETTLED = (DeliveryStatus.DELIVERED, DeliveryStatus.SKIPPED, DeliveryStatus.DEAD)
WORKER = "w"
CHUNK = 3
"""Rows a window looks at: a few, so that windows end anywhere in a history."""

Key = tuple[str, str]


# -- histories ---------------------------------------------------------------------------


@attrs.frozen
class Round:
    """A stretch of a history: events stored, then decided; some deliveries settled
    (delivered, skipped, retrying or dead: ``OUTCOMES``), digests due sent, a user's
    inbox read, a dead delivery requeued; then the clock moves on."""

    events: tuple[tuple[int, Severity, bool], ...]
    settles: tuple[tuple[int, str], ...]
    digests: bool
    read: int | None
    requeue: bool
    minutes: int


ROUNDS = st.builds(
    Round,
    st.lists(
        st.tuples(
            st.integers(0, len(KEYS) - 1),
            st.sampled_from(list(Severity)),
            st.integers(0, 9).map(lambda n: n > 0),  # one in ten invalid: rejected
        ),
        max_size=6,
    ).map(tuple),
    st.lists(
        st.tuples(st.integers(1, 4), st.sampled_from(["delivered", "skipped", "retry", "dead"])),
        max_size=3,
    ).map(tuple),
    st.booleans(),
    st.none() | st.integers(0, len(USERS) - 1),
    st.integers(0, 5).map(lambda n: n == 0),
    st.integers(1, 300),
)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[Round], timedelta]:
    """A history, and a horizon somewhere inside it (or before it, or past it)."""
    rounds = draw(st.lists(ROUNDS, min_size=1, max_size=14))
    elapsed = sum(r.minutes for r in rounds)
    minutes = draw(st.integers(1, elapsed + 60))
    return rounds, timedelta(minutes=minutes)


PREFERENCES = st.lists(
    st.sampled_from(
        [
            Preference(("in_app",), Severity.INFO),
            Preference(("in_app", "email"), Severity.INFO),
            Preference(("in_app", "email", "webhook"), Severity.WATCH),
            Preference(("email",), Severity.INFO, digest=False),
        ]
    ),
    min_size=len(KEYS),
    max_size=len(KEYS),
)
OUTCOMES: dict[str, tuple[ChannelOutcome, timedelta | None]] = {
    "delivered": (Delivered(), None),
    "skipped": (ChannelSkipped("no email address"), None),
    "retry": (ChannelFailed(error="timed out", retryable=True), timedelta(minutes=30)),
    "dead": (ChannelFailed(error="550 no such user", retryable=False), None),
}
QUIET = QuietHours(starts=time(22, 0), ends=time(7, 0), zone=zone_named("Europe/Berlin"))


async def prepare(store: Store, preferences: Sequence[Preference]) -> None:
    for key, preference in zip(KEYS, preferences, strict=True):
        await store.set_preference(*key, preference)
    await store.set_quiet_hours("ben", QUIET)
    await store.update_recipient(RecipientChange(user_id="ana", email="ana@example.com"))


async def play(store: Store, clock: FakeClock, rounds: Sequence[Round]) -> list[str]:
    """Run the history; the ids of the events it stored."""
    stored: list[str] = []
    for stretch in rounds:
        for key, severity, valid in stretch.events:
            event_id = f"e{len(stored)}"
            stored.append(event_id)
            await store.enqueue([_event(event_id, KEYS[key], severity, valid)])
        await store.decide_claimable(WORKER, 1000, DECIDE, take={})
        for count, outcome in stretch.settles:
            await _settle(store, clock, count, outcome)
        if stretch.digests:
            await store.decide_due_digests(WORKER, 1000, DECIDE, take={})
        if stretch.read is not None:
            await store.mark_all_read(USERS[stretch.read])
        if stretch.requeue and (dead := await store.deliveries(DeliveryStatus.DEAD, limit=1)):
            await store.requeue_delivery(dead[0].delivery_id)
        clock.advance(timedelta(minutes=stretch.minutes))
    return stored


def _event(event_id: str, key: Key, severity: Severity, valid: bool) -> Event:
    return Event(
        event_id=event_id,
        user_id=key[0],
        kind=key[1],
        severity=severity,
        title=f"{severity.value} {event_id}" if valid else "",
        body="body",
    )


async def _settle(store: Store, clock: FakeClock, count: int, outcome: str) -> None:
    result, retry_in = OUTCOMES[outcome]
    for job in await store.claim_due_deliveries(WORKER, count):
        retry_at = clock() + retry_in if retry_in is not None else None
        assert await store.settle_delivery(WORKER, job.delivery_id, result, retry_at)


# -- what the ports show ---------------------------------------------------------------


@attrs.frozen
class View:
    """A store as its ports show it: the rows retention may touch, and what decisions read."""

    events: dict[str, EventRecord]
    notifications: dict[str, Notification]
    deliveries: dict[str, DeliveryRecord]
    pending_held: frozenset[str]
    inputs: dict[Key, DecisionInputs]
    digests_notified: dict[Key, int]


async def view(store: Store, event_ids: Sequence[str]) -> View:
    events = {}
    for event_id in event_ids:
        if (record := await store.event_record(event_id)) is not None:
            events[event_id] = record
    notifications = {
        notification.id: notification
        for user in USERS
        for notification in await store.inbox(user, limit=100_000)
    }
    deliveries = {d.delivery_id: d for d in await store.deliveries(limit=100_000)}
    held = await store.held_for_digests_at(FAR)
    inputs = {key: (await store.decision_inputs(*key))[0] for key in KEYS}
    return View(
        events=events,
        notifications=notifications,
        deliveries=deliveries,
        pending_held=frozenset(e.event_id for events in held.values() for e in events),
        inputs=inputs,
        digests_notified=dict(await store.digests_notified_since(EPOCH)),
    )


def removable(before: View, horizon: datetime) -> dict[str, set[str]]:
    """What the rules allow a pass to remove, and so what it must remove: written from
    ``core.ports.Retention`` alone."""
    notifications = before.notifications
    deliveries = {
        d.delivery_id
        for d in before.deliveries.values()
        if d.status in SETTLED
        and notifications[d.notification_id].created_at < horizon
        and (d.delivered_at is None or d.delivered_at < horizon)
    }
    latest: dict[Key, datetime] = {}
    for n in notifications.values():
        latest[(n.user_id, n.kind)] = max(latest.get((n.user_id, n.kind), EPOCH), n.created_at)
    delivering = {
        d.notification_id for d in before.deliveries.values() if d.delivery_id not in deliveries
    }
    gone = {
        n.id
        for n in notifications.values()
        if n.created_at < horizon
        and n.created_at < latest[(n.user_id, n.kind)]
        and n.id not in delivering
    }
    events = {
        event_id
        for event_id, record in before.events.items()
        if record.status in TERMINAL_EVENT_STATUSES
        and record.decided_at is not None
        and record.decided_at < horizon
        and (record.notification_id is None or record.notification_id in gone)
        and event_id not in before.pending_held
    }
    return {"deliveries": deliveries, "notifications": gone, "events": events}


def assert_promises_kept(after: View, before: View) -> None:
    """The rules' "never", each on its own (``removable`` implies them)."""
    for key in KEYS:
        last = [n for n in before.notifications.values() if (n.user_id, n.kind) == key]
        newest = max((n.created_at for n in last), default=None)
        assert {n.id for n in last if n.created_at == newest} <= after.notifications.keys()
    for delivery in before.deliveries.values():
        if delivery.status not in SETTLED:
            assert delivery.delivery_id in after.deliveries
            assert delivery.notification_id in after.notifications
    for event_id, record in before.events.items():
        if record.status is EventStatus.PENDING or event_id in before.pending_held:
            assert event_id in after.events
    for notification in after.notifications.values():
        if notification.event_id in before.events:  # not a digest's
            assert notification.event_id in after.events


def digest_notifications(found: View) -> dict[Key, int]:
    """Each key's notifications that are digests (their event id is the digest's)."""
    counted = Counter(
        (n.user_id, n.kind)
        for n in found.notifications.values()
        if n.event_id.startswith(DIGEST_PREFIX)
    )
    return dict(counted)


# -- going on after the pass ---------------------------------------------------------------


async def go_on(store: Store, clock: FakeClock, severities: Sequence[Severity]) -> object:
    """The same next hours on a store: a new event per key, decided, digests sent; what
    was decided, explained, and digested (without the ids stores make up)."""
    clock.advance(timedelta(hours=2))
    await store.enqueue(
        [
            _event(f"next-{n}", key, s, True)
            for n, (key, s) in enumerate(zip(KEYS, severities, strict=True))
        ]
    )
    await store.decide_claimable(WORKER, 1000, DECIDE, take={})
    clock.advance(timedelta(hours=4))
    await store.decide_due_digests(WORKER, 1000, DECIDE, take={})
    explained = [
        (r.status, r.explanation) if (r := await store.event_record(f"next-{n}")) else None
        for n in range(len(KEYS))
    ]
    inbox = sorted(
        [
            (n.user_id, n.kind, n.title, n.severity.value, n.created_at)
            for user in USERS
            for n in await store.inbox(user, limit=100_000)
            if n.created_at >= clock() - timedelta(hours=6)
        ]
    )
    return explained, inbox, await store.digests_notified_since(clock() - timedelta(hours=6))


# -- backends ---------------------------------------------------------------------------------

Twin = Callable[[Store], Awaitable[tuple[Store, Store]]]
"""Close nothing the caller holds; give back the store to prune and a copy of it as it is."""


@asynccontextmanager
async def memory_backend(clock: FakeClock, _: Path) -> AsyncIterator[tuple[Store, Twin]]:
    async def twin(store: Store) -> tuple[Store, Store]:
        return store, copy.deepcopy(store, {id(clock): clock})

    yield MemoryStore(clock=clock, lease=LEASE), twin


@asynccontextmanager
async def sqlite_backend(clock: FakeClock, folder: Path) -> AsyncIterator[tuple[Store, Twin]]:
    name = folder / f"{uuid.uuid4().hex}.db"
    opened: list[Store] = []

    async def twin(store: Store) -> tuple[Store, Store]:
        copied = name.with_suffix(".copy.db")
        with sqlite3.connect(name) as source, sqlite3.connect(copied) as target:
            source.backup(target)
        source.close()
        target.close()
        opened.append(SqliteStore(str(copied), clock=clock, lease=LEASE))
        return store, opened[-1]

    store = SqliteStore(str(name), clock=clock, lease=LEASE)
    try:
        yield store, twin
    finally:
        for other in opened:
            await other.close()
        await store.close()


def _admin(statement: str) -> None:
    with psycopg.connect(SERVER_URL, autocommit=True, connect_timeout=5) as admin:
        admin.execute(statement.encode())


@asynccontextmanager
async def postgres_backend(clock: FakeClock, _: Path) -> AsyncIterator[tuple[Store, Twin]]:
    name = f"tidings_test_{uuid.uuid4().hex[:12]}"
    copied = f"{name}_copy"
    _admin(f'CREATE DATABASE "{name}"')
    opened: list[Store] = []

    async def twin(store: Store) -> tuple[Store, Store]:
        await store.close()  # a template database must have no one connected
        _admin(f'CREATE DATABASE "{copied}" TEMPLATE "{name}"')
        opened.extend(
            PostgresStore(database_url(db), clock=clock, lease=LEASE) for db in (name, copied)
        )
        return opened[-2], opened[-1]

    store = PostgresStore(database_url(name), clock=clock, lease=LEASE)
    try:
        yield store, twin
    finally:
        for other in (store, *opened):
            await other.close()
        for db in (name, copied):
            _admin(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


BACKENDS = {"memory": memory_backend, "sqlite": sqlite_backend, "postgres": postgres_backend}
EXAMPLES = {"memory": 200, "sqlite": 80, "postgres": 8}


async def one_history(
    backend: str,
    folder: Path,
    preferences: Sequence[Preference],
    history: Sequence[Round],
    older_than: timedelta,
    severities: Sequence[Severity],
) -> None:
    clock = FakeClock(START)
    async with BACKENDS[backend](clock, folder) as (first, twin):
        await first.migrate()
        await prepare(first, preferences)
        stored = await play(first, clock, history)
        before = await view(first, stored)
        expected = removable(before, clock() - older_than)
        counted = await first.prunable(older_than)
        store, untouched = await twin(first)
        removed: Counter[str] = Counter()
        async for chunk in store.prune(older_than, chunk=CHUNK):
            removed.update(chunk)
        assert {table: removed[table] for table in PRUNED_TABLES} == dict(counted)
        assert {table: len(ids) for table, ids in expected.items()} == {
            table: counted[table] for table in expected
        }
        after = await view(store, stored)
        assert after.events == {
            k: v for k, v in before.events.items() if k not in expected["events"]
        }
        assert after.notifications == {
            k: v for k, v in before.notifications.items() if k not in expected["notifications"]
        }
        assert after.deliveries == {
            k: v for k, v in before.deliveries.items() if k not in expected["deliveries"]
        }
        assert_promises_kept(after, before)
        assert after.pending_held == before.pending_held
        assert after.inputs == before.inputs
        assert after.digests_notified == digest_notifications(after)
        assert set((await store.prunable(older_than)).values()) == {0}
        start = clock()
        pruned_went_on = await go_on(store, clock, severities)
        clock.set(start)
        assert pruned_went_on == await go_on(untouched, clock, severities)


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_a_pass_removes_what_may_go_and_changes_no_decision(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if backend == "postgres":
        request.getfixturevalue("postgres_url")  # skips, or fails, without a server

    @settings(
        max_examples=EXAMPLES[backend],
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(
        PREFERENCES,
        scenarios(),
        st.lists(st.sampled_from(list(Severity)), min_size=len(KEYS), max_size=len(KEYS)),
    )
    def check(
        preferences: list[Preference],
        scenario: tuple[list[Round], timedelta],
        severities: list[Severity],
    ) -> None:
        history, older_than = scenario
        asyncio.run(one_history(backend, tmp_path, preferences, history, older_than, severities))

    check()


def test_a_recipient_is_never_touched(tmp_path: Path) -> None:
    """Retention removes history, never set-up: preferences, quiet hours, contacts."""

    async def scenario() -> None:
        clock = FakeClock(START)
        async with sqlite_backend(clock, tmp_path) as (store, _):
            await store.migrate()
            await prepare(store, [Preference(("in_app",), Severity.INFO)] * len(KEYS))
            clock.advance(timedelta(days=400))
            async for _chunk in store.prune(timedelta(days=1)):
                pass
            assert await store.recipient("ana") == Recipient(user_id="ana", email="ana@example.com")
            assert await store.quiet_hours("ben") == QUIET
            assert len(await store.preferences("cleo")) == len(KINDS)

    asyncio.run(scenario())


# -- passes beside a drain, on PostgreSQL ---------------------------------------------------

AUDIT = """
CREATE TABLE pruned (tab text, id text, user_id text, kind text, at timestamptz, status text,
                     related text);
CREATE FUNCTION audit_pruned() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'events' THEN
        INSERT INTO pruned VALUES ('events', OLD.event_id, OLD.user_id, OLD.kind,
            OLD.decided_at, OLD.status,
            (SELECT status FROM digests WHERE id = OLD.digest_id));
    ELSIF TG_TABLE_NAME = 'notifications' THEN
        INSERT INTO pruned VALUES ('notifications', OLD.id, OLD.user_id, OLD.kind,
            OLD.created_at, NULL, OLD.event_id);
    ELSIF TG_TABLE_NAME = 'deliveries' THEN
        INSERT INTO pruned VALUES ('deliveries', OLD.id, NULL, OLD.channel, NULL, OLD.status,
            OLD.notification_id);
    ELSE
        INSERT INTO pruned VALUES ('digests', OLD.id, OLD.user_id, OLD.kind, OLD.decided_at,
            OLD.status, NULL);
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER events_pruned AFTER DELETE ON events FOR EACH ROW EXECUTE FUNCTION audit_pruned();
CREATE TRIGGER notifications_pruned AFTER DELETE ON notifications
    FOR EACH ROW EXECUTE FUNCTION audit_pruned();
CREATE TRIGGER deliveries_pruned AFTER DELETE ON deliveries
    FOR EACH ROW EXECUTE FUNCTION audit_pruned();
CREATE TRIGGER digests_pruned AFTER DELETE ON digests
    FOR EACH ROW EXECUTE FUNCTION audit_pruned();
"""
"""Every row a pass removes, as it stood when removed: a test's own record, so that what
went can be checked against what had to stay."""

BUSY_KEYS = 40
BUSY_EVENTS = 3000
BUSY_LANES = 3
BUSY_HORIZON = timedelta(milliseconds=300)
BUSY_POLICY: DecideFn = partial(
    decide_with, policy=Policy(cooldown=timedelta(milliseconds=50), digest_after_cooldown=True)
)


@attrs.define
class Drain:
    """What the drain did, as its calls answered; and when the passes ran."""

    decided: Counter[str] = attrs.Factory(Counter)
    settled: Counter[str] = attrs.Factory(Counter)
    pass_ends: list[datetime] = attrs.Factory(list)
    producing: bool = True
    draining: bool = True


async def _db_now(url: str) -> datetime:
    async with await psycopg.AsyncConnection.connect(url) as connection:
        cursor = await connection.execute("SELECT clock_timestamp()")
        found = await cursor.fetchone()
    assert found is not None
    now: datetime = found[0]
    return now


async def _produce(store: Store, drain: Drain) -> None:
    for start in range(0, BUSY_EVENTS, 150):
        await store.enqueue(
            [
                Event(
                    event_id=f"busy{n}",
                    user_id=f"user{n % BUSY_KEYS}",
                    kind="kind",
                    severity=Severity.WATCH,
                    title=f"Event {n}",
                    body="body",
                )
                for n in range(start, start + 150)
            ]
        )
        await asyncio.sleep(0.05)
    drain.producing = False


async def _lane(store: Store, drain: Drain, lane: int) -> None:
    while True:
        claim = await store.decide_claimable(
            WORKER, 100, BUSY_POLICY, lane=lane, lanes=BUSY_LANES, take={}
        )
        drain.decided.update(r.event_id for r in claim.recorded)  # a due digest goes first
        drain.decided.update(event_id for event_id, _ in claim.rejected)
        if not (claim.recorded or claim.rejected):
            if not drain.producing and (await store.backlog()).events == 0:
                return
            await asyncio.sleep(0.01)


async def _send_and_digest(store: Store, drain: Drain) -> None:
    while True:
        digests = await store.decide_due_digests(WORKER, 100, BUSY_POLICY, take={})
        drain.decided.update(r.event_id for r in digests.recorded)
        jobs = await store.claim_due_deliveries(WORKER, 200)
        for job in jobs:
            if await store.settle_delivery(WORKER, job.delivery_id, Delivered(), None):
                drain.settled[job.delivery_id] += 1
        backlog = await store.backlog()
        if not drain.draining and backlog.empty:
            return
        await asyncio.sleep(0.01)


async def _prune_while_draining(store: Store, url: str, drain: Drain) -> None:
    while drain.draining:
        async for _ in store.prune(BUSY_HORIZON, chunk=50):
            await asyncio.sleep(0)
        drain.pass_ends.append(await _db_now(url))


async def _busy(url: str) -> Drain:
    stores = [PostgresStore(url, lease=LEASE) for _ in range(3)]
    drainer, pruner, other_pruner = stores
    drain = Drain()
    try:
        await drainer.migrate()
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as connection:
            await connection.execute(AUDIT.encode())
        for n in range(BUSY_KEYS):
            await drainer.set_preference(
                f"user{n}", "kind", Preference(("in_app", "email"), Severity.INFO)
            )
        async with asyncio.TaskGroup() as group:
            group.create_task(_prune_while_draining(pruner, url, drain))
            group.create_task(_prune_while_draining(other_pruner, url, drain))
            sending = group.create_task(_send_and_digest(drainer, drain))
            async with asyncio.TaskGroup() as lanes:
                lanes.create_task(_produce(drainer, drain))
                for lane in range(BUSY_LANES):
                    lanes.create_task(_lane(drainer, drain, lane))
            drain.draining = False
            await sending
    finally:
        for store in stores:
            await store.close()
    return drain


def _rows(url: str, query: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as connection:
        return connection.execute(query.encode()).fetchall()


def test_postgres_prune_beside_a_drain(postgres_url: str) -> None:
    """Two pruning stores (connections of their own) pass again and again over a short
    horizon while three lanes decide a stream, digests are sent and deliveries settled:
    every event is decided once, every delivery settled once, and what went is only
    what the rules let go (a trigger records each removed row as it stood)."""
    drain = asyncio.run(_busy(postgres_url))
    events = {event_id for event_id in drain.decided if not event_id.startswith(DIGEST_PREFIX)}
    assert events == {f"busy{n}" for n in range(BUSY_EVENTS)}
    assert set(drain.decided.values()) == {1}  # events and digests, each decided once
    assert set(drain.settled.values()) == {1}
    pruned = _rows(postgres_url, "SELECT tab, id, user_id, kind, at, status, related FROM pruned")
    removed = Counter(str(row[0]) for row in pruned)
    assert removed["events"] and removed["notifications"] and removed["deliveries"]
    assert len({(row[0], row[1]) for row in pruned}) == len(pruned)  # each removed once
    for tab, _, _, _, _, status, related in pruned:
        assert tab != "events" or (status in ("notified", "skipped") and related != "pending")
        assert tab != "deliveries" or status == "delivered"
        assert tab != "digests" or status != "pending"
    # Every planned delivery was settled (none removed before), and none is left.
    [(kept_emails, open_deliveries)] = _rows(
        postgres_url,
        "SELECT count(*) FILTER (WHERE channel = 'email'),"
        " count(*) FILTER (WHERE status <> 'delivered') FROM deliveries",
    )
    assert open_deliveries == 0
    removed_emails = sum(1 for row in pruned if row[0] == "deliveries" and row[3] == "email")
    assert len(drain.settled) == int(str(kept_emails)) + removed_emails
    # No notification newer than the last horizon went; each key keeps its latest.
    last_horizon = max(drain.pass_ends) - BUSY_HORIZON
    went = [row for row in pruned if row[0] == "notifications"]
    assert all(isinstance(at, datetime) and at < last_horizon for *_, at, _, _ in went)
    kept = _rows(
        postgres_url, "SELECT user_id, kind, max(created_at) FROM notifications GROUP BY 1, 2"
    )
    latest = {(str(user), str(kind)): at for user, kind, at in kept if isinstance(at, datetime)}
    for _, _, user, kind, at, _, _ in went:
        assert isinstance(at, datetime)
        assert at < latest[(str(user), str(kind))]  # its key's latest stayed
    # An event stays while its notification does; nothing is left undecided.
    assert _rows(
        postgres_url,
        "SELECT count(*) FROM notifications n WHERE n.event_id NOT LIKE 'digest-%'"
        " AND NOT EXISTS (SELECT 1 FROM events e WHERE e.event_id = n.event_id)",
    ) == [(0,)]
    assert _rows(postgres_url, "SELECT count(*) FROM events WHERE status = 'pending'") == [(0,)]

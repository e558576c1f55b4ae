"""Only tidings' own intake can spare an event validation when it is claimed.

Events tidings stores are validated as they are stored and carry the database's intake
mark (adapters/intake_mark.py). A producer inserting rows itself into either SQL store
cannot give a row that mark by setting a column, ``validated`` included (which an
earlier version trusted): each bad field still ends the event ``rejected``, with the
field named, and the good rows beside it are notified.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from functools import partial
from pathlib import Path

import psycopg
import pytest

from tests.adapters.conftest import START
from tidings.adapters.postgres import PostgresStore
from tidings.adapters.sqlite import SqliteStore
from tidings.core import Event, Policy, Severity, decide_with
from tidings.core.ports import Store
from tidings.core.records import EventStatus
from tidings.testing import FakeClock

DECIDE = partial(decide_with, policy=Policy())

GOOD = {
    "user_id": "ana",
    "kind": "overload",
    "severity": "watch",
    "title": "Overload",
    "body": "Hours crossed 50",
    "payload_json": '{"hours": 51}',
}
BAD = {
    "global-kind": ("kind", {"kind": "_global"}),
    "empty-user": ("user_id", {"user_id": ""}),
    "long-title": ("title", {"title": "t" * 5000}),
    "array-payload": ("payload_json", {"payload_json": "[1]"}),
}
"""Rows a producer inserts marked ``validated``, each with one bad field: its name."""

INSERT = (
    "INSERT INTO events (event_id, user_id, kind, severity, title, body, payload_json,"
    " validated, enqueued_at) VALUES ({})"
)


def producer_rows() -> list[tuple[object, ...]]:
    """The bad rows and a good one, as a producer would insert them, flag set."""
    rows = [{"event_id": "good", **GOOD}]
    rows += [{"event_id": event_id, **GOOD, **bad} for event_id, (_, bad) in BAD.items()]
    return [
        (row["event_id"], row["user_id"], row["kind"], row["severity"], row["title"],
         row["body"], row["payload_json"], True, START.isoformat())
        for row in rows
    ]  # fmt: skip


def insert_into_postgres(url: str) -> None:
    with psycopg.connect(url) as producer:
        producer.cursor().executemany(
            INSERT.format(", ".join(["%s"] * 9)).encode(), producer_rows()
        )


def insert_into_sqlite(path: str) -> None:
    with sqlite3.connect(path) as producer:
        producer.executemany(INSERT.format(", ".join(["?"] * 9)), producer_rows())
    producer.close()


def backend(
    name: str, request: pytest.FixtureRequest, tmp_path: Path
) -> tuple[Callable[[], Store], Callable[[], None]]:
    """A way to open the backend's store, and the producer's insert into its database."""
    if name == "postgres":
        url = str(request.getfixturevalue("postgres_url"))
        return partial(PostgresStore, url), partial(insert_into_postgres, url)
    path = str(tmp_path / "tidings.db")
    return partial(SqliteStore, path, clock=FakeClock(START)), partial(insert_into_sqlite, path)


@pytest.mark.parametrize("name", ["postgres", "sqlite"])
def test_a_producers_validated_flag_spares_no_row_validation(
    name: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    open_store, insert = backend(name, request, tmp_path)

    async def migrate() -> None:
        store = open_store()
        try:
            await store.migrate()
        finally:
            await store.close()

    async def decide() -> None:
        store = open_store()
        try:
            claim = await store.decide_claimable("w", 100, DECIDE)
            assert [recorded.event_id for recorded in claim.recorded] == ["good"]
            assert sorted(event_id for event_id, _ in claim.rejected) == sorted(BAD)
            for event_id, (field, _) in BAD.items():
                record = await store.event_record(event_id)
                assert record is not None and record.status is EventStatus.REJECTED
                assert record.error is not None and f"{field}:" in record.error, record.error
            assert [n.event_id for n in await store.inbox("ana", limit=10)] == ["good"]
        finally:
            await store.close()

    asyncio.run(migrate())
    insert()
    asyncio.run(decide())


@pytest.mark.parametrize("name", ["postgres", "sqlite"])
def test_events_tidings_stores_carry_the_mark_and_invalid_ones_do_not(
    name: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """The mark is the database's own random number, set only on valid events (an
    ``Event`` value can be built without validation)."""
    open_store, _ = backend(name, request, tmp_path)
    valid = Event(event_id="valid", severity=Severity.WATCH, **_texts(GOOD))
    invalid = Event(event_id="invalid", severity=Severity.WATCH, **_texts(GOOD, kind="_global"))

    async def scenario() -> None:
        store = open_store()
        try:
            await store.migrate()
            assert await store.enqueue([valid, invalid]) == 2
        finally:
            await store.close()

    asyncio.run(scenario())
    marked = query(
        name,
        request,
        tmp_path,
        "SELECT event_id FROM events WHERE intake_mark = (SELECT mark FROM intake_secret)",
    )
    assert marked == [("valid",)]
    [(mark,)] = query(name, request, tmp_path, "SELECT mark FROM intake_secret")
    assert mark not in (0, 1)


def query(
    name: str, request: pytest.FixtureRequest, tmp_path: Path, sql: str
) -> list[tuple[object, ...]]:
    if name == "postgres":
        with psycopg.connect(str(request.getfixturevalue("postgres_url"))) as pg:
            return pg.execute(sql.encode()).fetchall()
    with sqlite3.connect(tmp_path / "tidings.db") as connection:
        found: list[tuple[object, ...]] = connection.execute(sql).fetchall()
    connection.close()
    return found


def _texts(fields: dict[str, str], **changed: str) -> dict[str, str]:
    texts = {**fields, **changed}
    del texts["severity"]
    return texts


def test_an_event_edited_after_it_was_stored_is_validated_again(postgres_url: str) -> None:
    """On PostgreSQL a row whose fields change after tidings stored it loses the mark
    (a trigger, migration 0006): an edit cannot slip an invalid field past a claim."""
    event = Event(event_id="edited", severity=Severity.WATCH, **_texts(GOOD))

    async def enqueue() -> None:
        store = PostgresStore(postgres_url)
        try:
            await store.migrate()
            await store.enqueue([event])
        finally:
            await store.close()

    async def decide() -> None:
        store = PostgresStore(postgres_url)
        try:
            claim = await store.decide_claimable("w", 10, DECIDE)
            [(event_id, error)] = claim.rejected
            assert event_id == "edited"
            assert [e.field for e in error.errors] == ["title"]
        finally:
            await store.close()

    asyncio.run(enqueue())
    with psycopg.connect(postgres_url) as producer:
        producer.execute("UPDATE events SET title = repeat('t', 5000) WHERE event_id = 'edited'")
    asyncio.run(decide())

"""Bad input against PostgreSQL: through the CLI, and rows a producer inserted itself.

Each bad event is refused alone, with every reason; the good ones around it are
dispatched as if it had not been there.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import psycopg

from tidings.adapters.postgres import PostgresStore
from tidings.core import Event, Policy, Severity, decide_with


def tidings(url: str, *argv: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tidings.runner.cli", "--database", url, *argv],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def line(event_id: str, **fields: object) -> str:
    event: dict[str, object] = {
        "event_id": event_id,
        "user_id": f"user-{event_id}",
        "kind": "overload",
        "severity": "watch",
        "title": "Overload",
        "body": "Hours crossed 50",
    }
    event.update(fields)
    return json.dumps(event)


def test_bad_lines_are_rejected_alone(postgres_url: str, tmp_path: Path) -> None:
    lines = [
        line("good-1"),
        '{"event_id": "broken", ',
        line("huge-body", body="x" * (64 * 1024 + 1)),
        line("long-title", title="t" * 201),
        line("nul-body", body="a\x00b"),
        line("nul-payload", payload={"k": "v\x00"}),
        line("crlf-title", title="Subject\r\nBcc: victim@example.com"),
        line("good-2", payload={"sql": "'); DROP TABLE events; --"}),
    ]
    source = tmp_path / "events.jsonl"
    source.write_text("\n".join(lines) + "\n")
    assert tidings(postgres_url, "migrate").returncode == 0

    enqueued = tidings(postgres_url, "--json", "enqueue", str(source))
    assert enqueued.returncode == 2
    assert json.loads(enqueued.stdout) == {"enqueued": 2, "duplicates": 0, "rejected": 6}
    for number, reason in [
        (2, "not valid JSON"),
        (3, "body: must be at most 65536 bytes"),
        (4, "title: must be at most 200 characters"),
        (5, "body: must not contain NUL characters"),
        (6, "payload: must not contain NUL characters"),
        (7, "title: must not contain line breaks"),
    ]:
        assert f"line {number}: " in enqueued.stderr
        assert reason in enqueued.stderr

    assert tidings(postgres_url, "run", "--until-idle").returncode == 0
    with psycopg.connect(postgres_url) as connection:
        notified = connection.execute(
            "SELECT event_id, payload_json FROM notifications ORDER BY event_id"
        ).fetchall()
    assert notified == [
        ("good-1", None),
        ("good-2", json.dumps({"sql": "'); DROP TABLE events; --"}, separators=(",", ":"))),
    ]


def test_producer_rows_are_validated_when_claimed(postgres_url: str) -> None:
    assert tidings(postgres_url, "migrate").returncode == 0
    insert = (
        "INSERT INTO events (event_id, user_id, kind, severity, title, body, payload_json)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (event_id) DO NOTHING"
    )
    with psycopg.connect(postgres_url) as connection:
        connection.execute(insert, ("ok", "ana", "overload", "watch", "T", "B", '{"a": 1}'))
        connection.execute(insert, ("bad", "", "_global", "urgent", "a\nb", "B", "[1]"))
        connection.execute(insert, ("ok", "ana", "overload", "watch", "T", "B", None))  # retry
    assert tidings(postgres_url, "run", "--until-idle").returncode == 0

    explained = tidings(postgres_url, "--json", "explain", "bad")
    record = json.loads(explained.stdout)
    assert record["status"] == "rejected"
    for field in ("user_id", "kind", "severity", "title", "payload_json"):
        assert f"{field}:" in record["error"]
    with psycopg.connect(postgres_url) as connection:
        rows = connection.execute("SELECT event_id, payload_json FROM notifications").fetchall()
    assert rows == [("ok", '{"a": 1}')]  # kept verbatim, spaces and all


def test_a_sleeping_runner_wakes_when_an_event_is_inserted(postgres_url: str) -> None:
    async def scenario() -> None:
        store = PostgresStore(postgres_url)
        try:
            await store.migrate()
            await store.wait_for_events(0.01)  # starts listening
            waiting = asyncio.create_task(store.wait_for_events(30))
            await asyncio.sleep(0.2)
            async with await psycopg.AsyncConnection.connect(postgres_url) as producer:
                await producer.execute(
                    "INSERT INTO events (user_id, kind, severity, title, body)"
                    " VALUES ('ana', 'overload', 'watch', 'T', 'B')"
                )
            # Asleep for up to 30 s: only the NOTIFY sent on commit can end it within 10.
            await asyncio.wait_for(waiting, 10)
        finally:
            await store.close()

    asyncio.run(scenario())


@contextlib.asynccontextmanager
async def producer_rows(url: str, insert: str) -> AsyncIterator[PostgresStore]:
    """A migrated store, after a producer ran ``insert`` on its database itself."""
    store = PostgresStore(url)
    try:
        await store.migrate()
        async with await psycopg.AsyncConnection.connect(url) as producer:
            await producer.execute(insert.encode())
        yield store
    finally:
        await store.close()


def test_a_row_without_user_or_kind_falls_in_one_lane_and_is_rejected(postgres_url: str) -> None:
    """Lanes split keys by a hash of user and kind; a producer row missing both must
    still land in exactly one lane, or it would stay pending forever."""

    async def scenario() -> None:
        async with producer_rows(
            postgres_url,
            "INSERT INTO events (event_id, severity, title, body)"
            " VALUES ('orphan', 'watch', 'T', 'B')",
        ) as store:
            decide = partial(decide_with, policy=Policy())
            claims = [
                await store.decide_claimable("w", 10, decide, lane=lane, lanes=3)
                for lane in range(3)
            ]
            rejected = [event_id for claim in claims for event_id, _ in claim.rejected]
            assert rejected == ["orphan"]
            assert (await store.backlog()).empty

    asyncio.run(scenario())


def test_a_row_marked_validated_that_is_not_is_validated_again(postgres_url: str) -> None:
    """``validated`` was tidings' own mark before the intake mark (migration 0006); a
    row a producer sets it on is checked and rejected, not trusted (more in
    ``test_validated_mark``)."""

    async def scenario() -> None:
        async with producer_rows(
            postgres_url,
            "INSERT INTO events (event_id, user_id, kind, severity, title, body,"
            " validated) VALUES ('loud', 'ana', 'overload', 'loud', 'T', 'B', true),"
            " ('nobody', NULL, 'overload', 'watch', 'T', 'B', true),"
            " ('fine', 'ana', 'overload', 'watch', 'T', 'B', true)",
        ) as store:
            claim = await store.decide_claimable("w", 10, partial(decide_with, policy=Policy()))
            assert sorted(event_id for event_id, _ in claim.rejected) == ["loud", "nobody"]
            assert [recorded.event_id for recorded in claim.recorded] == ["fine"]
            assert (await store.backlog()).empty

    asyncio.run(scenario())


def test_a_batch_of_more_keys_than_the_shared_lock_table_holds_is_decided(
    postgres_url: str,
) -> None:
    """Holding a key must not take an entry of the server's shared lock table: one
    batch of 20,000 keys would exhaust it at default settings (about 12,000 entries),
    and so would a few runners' lanes of a thousand events each."""

    async def scenario() -> None:
        store = PostgresStore(postgres_url)
        try:
            await store.migrate()
            await store.enqueue(
                [Event(event_id=f"k{n}", user_id=f"user{n}", kind="overload",
                       severity=Severity.WATCH, title="T", body="B") for n in range(20_000)]
            )  # fmt: skip
            claim = await store.decide_claimable("w", 20_000, partial(decide_with, policy=Policy()))
            assert len(claim.recorded) == 20_000
            assert (await store.backlog()).empty
        finally:
            await store.close()

    asyncio.run(scenario())

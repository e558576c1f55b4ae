"""A (user, kind)'s events are decided in the order they were accepted, however many
runner processes share the database, and whichever of them dies mid-drain.

With a 24 h cooldown each key is notified once, so an event decided out of order shows
twice: the key's notification goes to a later event, and the earlier one is skipped as
inside the cooldown of an event accepted after it.
"""

from __future__ import annotations

import asyncio
import re
import signal
from functools import partial
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.adapters.test_postgres_runners import (
    assert_drained,
    events_over_keys,
    finish,
    prepare,
    start_runner,
    wait_until_decided,
)
from tidings.adapters.postgres import PostgresStore, claims, decisions
from tidings.core import Event, Policy, Severity, decide_with
from tidings.core.records import EventStatus

KEYS = 500

DECIDED_BEFORE_AN_EARLIER_EVENT = (
    "SELECT count(*) FROM events later JOIN events earlier"
    " ON earlier.user_id = later.user_id AND earlier.kind = later.kind"
    " AND earlier.seq < later.seq"
    " WHERE later.decided_at IS NOT NULL"
    " AND (earlier.decided_at IS NULL OR earlier.decided_at > later.decided_at)"
)
"""Events decided while an earlier event of their key was not decided yet (still pending,
or decided only afterwards): none, at any moment. A batch decides its events at one
time, in order, so equal times are fine."""

NOT_THE_FIRST_NOTIFIED = (
    "SELECT count(*) FROM events notified WHERE notified.status = 'notified' AND EXISTS"
    " (SELECT 1 FROM events earlier WHERE earlier.user_id = notified.user_id"
    "  AND earlier.kind = notified.kind AND earlier.seq < notified.seq)"
)
"""Keys whose one notification went to an event other than their first."""


def count(url: str, sql: str) -> int:
    with psycopg.connect(url) as connection:
        row = connection.execute(sql.encode()).fetchone()
    assert row is not None
    return int(row[0])


def test_four_runners_decide_each_keys_events_in_order(postgres_url: str, tmp_path: Path) -> None:
    events = events_over_keys(4_000, KEYS, prefix="o")
    prepare(postgres_url, events)
    log = tmp_path / "runners.log"

    # Small batches: many transactions of each runner's lanes interleave.
    finish([start_runner(postgres_url, log, batch_size=50) for _ in range(4)], log)

    assert_drained(postgres_url, len(events), KEYS)
    stopped = re.findall(r"stopped: notified (\d+); skipped (\d+)", log.read_text())
    decided_by = [int(notified) + int(skipped) for notified, skipped in stopped]
    assert sum(1 for count in decided_by if count) >= 2, decided_by  # the race was real
    assert count(postgres_url, DECIDED_BEFORE_AN_EARLIER_EVENT) == 0
    assert count(postgres_url, NOT_THE_FIRST_NOTIFIED) == 0


def test_runners_killed_mid_drain_never_decide_past_an_earlier_event(
    postgres_url: str, tmp_path: Path
) -> None:
    """Three runners drain while, one after another, each is killed and replaced: the
    killed one's transaction rolls back, so the events it held are pending again behind
    where the others have got to. They must still come before their keys' later
    events, whoever decides them, and at no moment is an event decided ahead of one."""
    events = events_over_keys(4_000, KEYS, prefix="x")
    prepare(postgres_url, events)
    log = tmp_path / "runners.log"

    runners = [start_runner(postgres_url, log, batch_size=50) for _ in range(3)]
    for kill in range(6):
        wait_until_decided(postgres_url, len(events) * (kill + 1) // 8)
        runners[kill % 3].send_signal(signal.SIGKILL)
        runners[kill % 3].wait()
        assert count(postgres_url, DECIDED_BEFORE_AN_EARLIER_EVENT) == 0
        runners[kill % 3] = start_runner(postgres_url, log, batch_size=50)
    finish(runners, log)

    assert_drained(postgres_url, len(events), KEYS)
    assert count(postgres_url, DECIDED_BEFORE_AN_EARLIER_EVENT) == 0
    assert count(postgres_url, NOT_THE_FIRST_NOTIFIED) == 0


def test_a_claim_holding_an_event_decided_since_it_read_it_is_made_again(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A claim reads its candidates a moment before it holds their keys; should another
    transaction decide one of them in that moment, writing the batch finds it decided
    (adapters/postgres/claims.py): the batch is rolled back and claimed again from a
    fresh read, so the event keeps the decision it has, and is not decided twice."""
    raced: list[str] = []
    real_claim = claims.claim_in_key_order

    async def claim_then_race(*args: Any) -> tuple[list[Any], Any]:
        claimed = await real_claim(*args)
        if not raced:  # the other decides it as this transaction holds its key
            raced.append("first")
            with psycopg.connect(postgres_url, autocommit=True) as other:
                other.execute(
                    "UPDATE events SET status = 'skipped', reason = 'cooldown',"
                    " decided_at = now() WHERE event_id = 'first'"
                )
        return claimed

    async def scenario() -> None:
        store = PostgresStore(postgres_url)
        try:
            await store.migrate()
            await store.enqueue(
                [Event(event_id=event_id, user_id="ana", kind="overload",
                       severity=Severity.WATCH, title="T", body="B")
                 for event_id in ("first", "second")]
            )  # fmt: skip
            monkeypatch.setattr(decisions, "claim_in_key_order", claim_then_race)
            claim = await store.decide_claimable("w", 10, partial(decide_with, policy=Policy()))
            assert [recorded.event_id for recorded in claim.recorded] == ["second"]
            first = await store.event_record("first")
            assert first is not None and first.status is EventStatus.SKIPPED
            assert [n.event_id for n in await store.inbox("ana", limit=10)] == ["second"]
        finally:
            await store.close()

    asyncio.run(scenario())

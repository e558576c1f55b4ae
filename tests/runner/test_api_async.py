"""The asyncio API: the dispatcher runs inside the application's own event loop (here
the test's) and stops cleanly, leaving no task behind."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from tidings.runner.api import AsyncTidings, InvalidEventError


def in_loop(scenario: Callable[[], Awaitable[None]]) -> None:
    async def checked() -> None:
        await scenario()
        assert asyncio.all_tasks() == {asyncio.current_task()}  # nothing left running

    asyncio.run(checked())


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float = 10.0) -> None:
    async with asyncio.timeout(seconds):
        while not await check():
            await asyncio.sleep(0.01)


@pytest.mark.parametrize("database", ["memory", "sqlite"])
def test_the_dispatcher_runs_in_the_host_loop_and_stops_cleanly(
    database: str, tmp_path: Path
) -> None:
    url = "memory://" if database == "memory" else f"sqlite:///{tmp_path / 'app.db'}"

    async def scenario() -> None:
        async with AsyncTidings.open(url, poll_interval=0.01) as tidings:
            await tidings.migrate()
            async with tidings.dispatching() as task:
                first = await tidings.send(
                    user_id="ana", kind="overload", severity="watch", title="T", body="b"
                )

                async def notified() -> bool:
                    return await tidings.unread_count("ana") == 1

                await eventually(notified)  # decided while the test's own code runs
                ids = await tidings.enqueue(
                    [{"user_id": "ana", "kind": "overload", "severity": "critical",
                      "title": "Again", "body": "b"}]
                )  # fmt: skip

                async def skipped() -> bool:
                    return (await tidings.explain(ids[0]) or "").startswith("skipped: inside")

                await eventually(skipped)
                assert not task.done()
            assert task.done()
            summary = task.result()
            assert (summary.notified, summary.skipped) == (1, {"cooldown": 1})
            assert str(await tidings.explain(first)).startswith("notified via in_app")

    in_loop(scenario)


def test_start_and_stop_return_the_task_and_its_summary() -> None:
    async def scenario() -> None:
        async with AsyncTidings.open("memory://", poll_interval=0.01) as tidings:
            task = await tidings.start()
            with pytest.raises(RuntimeError, match="already running"):
                await tidings.start()
            with pytest.raises(RuntimeError, match="already running"):
                await tidings.run_until_idle()
            for n in range(5):
                await tidings.send(user_id=f"u{n}", kind="k", severity="info", title="T", body="")

            async def all_notified() -> bool:
                counts = [await tidings.unread_count(f"u{n}") for n in range(5)]
                return counts == [1] * 5

            await eventually(all_notified)
            summary = await tidings.stop()
            assert task.done()
            assert summary.notified == 5
            with pytest.raises(RuntimeError, match="not running"):
                await tidings.stop()
            assert (await tidings.run_until_idle()).notified == 0  # nothing left

    in_loop(scenario)


def test_closing_stops_a_running_dispatcher() -> None:
    async def scenario() -> None:
        tidings = AsyncTidings.open("memory://", poll_interval=0.01)
        task = await tidings.start()
        await tidings.close()
        assert task.done()
        assert task.result().notified == 0

    in_loop(scenario)


def test_run_until_idle_drains_and_bad_events_are_refused() -> None:
    async def scenario() -> None:
        async with AsyncTidings.open("memory://") as tidings:
            with pytest.raises(InvalidEventError, match="severity: must be one of"):
                await tidings.send(user_id="u", kind="k", severity="loud", title="T", body="")
            await tidings.send(user_id="u", kind="k", severity="info", title="T", body="")
            summary = await tidings.run_until_idle()
            assert (summary.notified, summary.rejected) == (1, 0)
            [notification] = await tidings.inbox("u")
            assert notification.title == "T"

    in_loop(scenario)

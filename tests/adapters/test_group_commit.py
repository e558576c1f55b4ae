"""Group commit: requests waiting while a transaction runs share the next one."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from adapters.sqlite.group_commit import GroupCommit


class Writer:
    """A stand-in for the SQLite writer: each call is one transaction, which the test
    holds open until it lets it finish."""

    def __init__(self) -> None:
        self.transactions: list[list[str]] = []
        self.release = asyncio.Event()
        self.fail_next = False

    async def run(self, requests: Sequence[str]) -> list[str]:
        self.transactions.append(list(requests))
        await self.release.wait()
        self.release.clear()
        if self.fail_next:
            self.fail_next = False
            raise OSError("disk full")
        return [f"done {request}" for request in requests]


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_requests_waiting_during_a_transaction_share_the_next() -> None:
    async def scenario() -> None:
        writer = Writer()
        group: GroupCommit[str, str] = GroupCommit(writer.run)
        first = asyncio.create_task(group.submit("a"))
        await settle()
        later = [asyncio.create_task(group.submit(name)) for name in ("b", "c")]
        await settle()
        writer.release.set()
        assert await first == "done a"
        await settle()
        writer.release.set()
        assert [await task for task in later] == ["done b", "done c"]
        assert writer.transactions == [["a"], ["b", "c"]]

    asyncio.run(scenario())


def test_a_cancelled_caller_cancels_nobody_else() -> None:
    async def scenario() -> None:
        writer = Writer()
        group: GroupCommit[str, str] = GroupCommit(writer.run)
        leader = asyncio.create_task(group.submit("a"))
        await settle()
        others = [asyncio.create_task(group.submit(name)) for name in ("b", "c")]
        await settle()
        leader.cancel()
        others[0].cancel()
        writer.release.set()
        await settle()
        writer.release.set()
        assert await others[1] == "done c"
        for task in (leader, others[0]):
            with pytest.raises(asyncio.CancelledError):
                await task
        # The transactions still ran: the writer finishes what it started.
        assert writer.transactions == [["a"], ["b", "c"]]

    asyncio.run(scenario())


def test_a_failed_transaction_fails_its_requests_only() -> None:
    async def scenario() -> None:
        writer = Writer()
        group: GroupCommit[str, str] = GroupCommit(writer.run)
        writer.fail_next = True
        failing = asyncio.create_task(group.submit("a"))
        await settle()
        after = asyncio.create_task(group.submit("b"))
        await settle()
        writer.release.set()
        with pytest.raises(OSError, match="disk full"):
            await failing
        await settle()
        writer.release.set()
        assert await after == "done b"

    asyncio.run(scenario())

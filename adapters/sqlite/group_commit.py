"""Decision batches that arrive together share one SQLite transaction.

SQLite has one writer. The dispatcher's workers each record their own shard of a
claim at the same moment; recorded one by one they would queue on the writer
thread, each paying for its own transaction and thread hop. Here a request made
while another transaction runs waits for it, and the next transaction takes every
request waiting by then (group commit).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

_Request = TypeVar("_Request")
_Answer = TypeVar("_Answer")


class GroupCommit(Generic[_Request, _Answer]):
    """Runs waiting requests together: ``run`` gets them all, in arrival order, and
    returns one answer per request. A failure of ``run`` is every request's failure."""

    def __init__(self, run: Callable[[Sequence[_Request]], Awaitable[list[_Answer]]]) -> None:
        self._run = run
        self._waiting: list[tuple[_Request, asyncio.Future[_Answer]]] = []
        self._turn = asyncio.Lock()

    async def submit(self, request: _Request) -> _Answer:
        answer: asyncio.Future[_Answer] = asyncio.get_running_loop().create_future()
        self._waiting.append((request, answer))
        async with self._turn:
            if not answer.done():  # no earlier turn took it: take everything waiting
                taken, self._waiting = self._waiting, []
                await self._run_together(taken)
        return await answer

    async def _run_together(self, taken: list[tuple[_Request, asyncio.Future[_Answer]]]) -> None:
        try:
            answers = await self._run([request for request, _ in taken])
        except asyncio.CancelledError:
            for _, answer in taken:
                answer.cancel()
            raise
        except Exception as error:
            for _, answer in taken:
                answer.set_exception(error)
            return
        for (_, future), result in zip(taken, answers, strict=True):
            future.set_result(result)

"""Decision batches that arrive together share one SQLite transaction.

SQLite has one writer. Callers recording batches at the same moment would queue on
the writer thread, each paying for its own transaction and thread hop. Here a request
made while a transaction runs waits for it, and the next transaction takes every
request waiting by then (group commit).

The transactions run in a task of their own: a caller that is cancelled stops
waiting for its answer, but neither cancels the others' nor the transaction, which
the writer thread finishes anyway.
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
        self._running: asyncio.Task[None] | None = None

    async def submit(self, request: _Request) -> _Answer:
        answer: asyncio.Future[_Answer] = asyncio.get_running_loop().create_future()
        self._waiting.append((request, answer))
        if self._running is None or self._running.done():
            self._running = asyncio.create_task(self._run_waiting())
        return await asyncio.shield(answer)

    async def _run_waiting(self) -> None:
        while self._waiting:
            taken, self._waiting = self._waiting, []
            try:
                answers = await self._run([request for request, _ in taken])
                if len(answers) != len(taken):
                    raise RuntimeError(f"{len(answers)} answers to {len(taken)} requests")
            except Exception as error:
                for _, answer in taken:
                    if not answer.done():
                        answer.set_exception(error)
                        answer.exception()  # seen: its caller may have stopped waiting
                continue
            except BaseException:
                for _, answer in [*taken, *self._waiting]:
                    answer.cancel()
                raise
            for (_, answer), result in zip(taken, answers, strict=True):
                if not answer.done():
                    answer.set_result(result)

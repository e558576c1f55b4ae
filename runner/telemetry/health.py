"""The runner's operational endpoints: ``GET /metrics`` for Prometheus and ``GET /healthz``.

A few lines of HTTP/1.1 on ``asyncio.start_server`` instead of a web framework: two
fixed GET routes need no more, and the runner gains no dependency. Each connection
answers one request and closes. Bind it to ``LOOPBACK`` unless a scraper elsewhere
needs it: neither route is authenticated. ``/healthz`` answers 503 when the database does not
answer a cheap query in time or the dispatch loop has stopped, naming only the kind
of failure: the database URL and error texts (which can carry hosts or credentials)
never reach the response. ``/metrics`` reads the store's backlog first, within its own
bound (``backlog.BacklogGauges``).
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import json
import logging
from collections.abc import AsyncIterator, Callable
from urllib.parse import urlsplit

import attrs
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from tidings.core.ports import PendingWork, StoreUnavailable
from tidings.runner.telemetry.backlog import BacklogGauges

LOOPBACK = "127.0.0.1"
_READ_TIMEOUT = 5.0
"""A client gets this long to send its request, so a silent one cannot hold a task."""
_MAX_HEADER_LINES = 100

log = logging.getLogger("tidings.health")


@attrs.frozen
class _Response:
    status: http.HTTPStatus
    content_type: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()

    def encode(self) -> bytes:
        lines = [
            f"HTTP/1.1 {self.status.value} {self.status.phrase}",
            f"Content-Type: {self.content_type}",
            f"Content-Length: {len(self.body)}",
            "Cache-Control: no-store",
            "Connection: close",
            *(f"{name}: {value}" for name, value in self.headers),
        ]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + self.body


def _text(status: http.HTTPStatus, **headers: str) -> _Response:
    return _Response(
        status, "text/plain; charset=utf-8", f"{status.phrase}\n".encode(), tuple(headers.items())
    )


async def _database_state(store: PendingWork, within: float) -> str:
    """Whether the store answers a cheap query in time: "ok", or what went wrong in a
    few words, never the error's own text."""
    try:
        await asyncio.wait_for(store.backlog(), within)
    except TimeoutError:  # before OSError, of which it is a subclass
        return f"no answer within {within:g}s"
    except (StoreUnavailable, OSError) as error:
        return f"unreachable ({type(error).__name__})"
    return "ok"


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str] | None:
    """The method and path of one request (headers read and ignored), or None when
    it is not HTTP."""
    request_line = await reader.readline()
    for _ in range(_MAX_HEADER_LINES):
        if await reader.readline() in (b"\r\n", b"\n", b""):
            break
    else:
        return None
    parts = request_line.decode("latin-1").split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        return None
    return parts[0], urlsplit(parts[1]).path


@attrs.frozen
class _Endpoints:
    registry: CollectorRegistry
    store: PendingWork
    alive: Callable[[], bool]
    database_timeout: float
    backlog: BacklogGauges

    async def answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            response = await self._response(reader)
            if response is not None:
                writer.write(response.encode())
                await writer.drain()
        except ConnectionError:
            pass  # the client left; there is no one to answer
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _response(self, reader: asyncio.StreamReader) -> _Response | None:
        try:
            async with asyncio.timeout(_READ_TIMEOUT):
                request = await _read_request(reader)
        except TimeoutError:
            return None
        except ValueError:  # a line longer than the reader's limit
            request = None
        if request is None:
            return _text(http.HTTPStatus.BAD_REQUEST)
        return await self._route(*request)

    async def _route(self, method: str, path: str) -> _Response:
        if path not in ("/metrics", "/healthz"):
            return _text(http.HTTPStatus.NOT_FOUND)
        if method != "GET":
            return _text(http.HTTPStatus.METHOD_NOT_ALLOWED, Allow="GET")
        try:
            return await (self._metrics() if path == "/metrics" else self._health())
        except Exception:
            log.exception("%s failed", path)
            return _text(http.HTTPStatus.INTERNAL_SERVER_ERROR)

    async def _metrics(self) -> _Response:
        await self.backlog.refresh()
        return _Response(http.HTTPStatus.OK, CONTENT_TYPE_LATEST, generate_latest(self.registry))

    async def _health(self) -> _Response:
        database = await _database_state(self.store, self.database_timeout)
        workers = "ok" if self.alive() else "stopped"
        healthy = database == "ok" and workers == "ok"
        body = {
            "status": "ok" if healthy else "unhealthy",
            "database": database,
            "workers": workers,
        }
        return _Response(
            http.HTTPStatus.OK if healthy else http.HTTPStatus.SERVICE_UNAVAILABLE,
            "application/json",
            json.dumps(body).encode(),
        )


@contextlib.asynccontextmanager
async def serve_health(
    host: str,
    port: int,
    registry: CollectorRegistry,
    store: PendingWork,
    alive: Callable[[], bool],
    *,
    database_timeout: float = 2.0,
    backlog_timeout: float = 1.0,
) -> AsyncIterator[int]:
    """Serve ``/metrics`` from ``registry`` and ``/healthz`` until the block ends; yields
    the bound port (``port=0`` picks a free one). ``database_timeout`` bounds the check,
    below the PostgreSQL pool's own 10 s wait so a probe never hangs on it. The backlog
    gauges join ``registry`` while the server runs, read from ``store`` at each scrape
    within ``backlog_timeout``: well inside Prometheus' default 10 s scrape timeout."""
    backlog = BacklogGauges(store, timeout=backlog_timeout)
    registry.register(backlog)
    try:
        endpoints = _Endpoints(registry, store, alive, database_timeout, backlog)
        server = await asyncio.start_server(endpoints.answer, host, port)
        try:
            yield int(server.sockets[0].getsockname()[1])
        finally:
            server.close()
            await server.wait_closed()
    finally:
        await backlog.close()
        registry.unregister(backlog)

"""``tidings run``: the dispatcher as a process, with its signals, its start-up and
shut-down lines, and (with ``--metrics-port``) Prometheus metrics and a health check.

``SIGINT`` or ``SIGTERM`` stops the runner gracefully: it claims nothing more, hands back
what it has not started and gives the sends in flight the grace period; a second signal
(an impatient operator's second Ctrl-C) stops it at once."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import logging
import signal

from tidings.runner import bootstrap
from tidings.runner.api import AsyncTidings
from tidings.runner.output import emit
from tidings.runner.telemetry import (
    DispatchObserver,
    DispatchSummary,
    LogObserver,
    shown_database,
)

log = logging.getLogger("tidings.runner")


async def run(args: argparse.Namespace, tidings: AsyncTidings) -> int:
    runtime, settings = tidings.runtime, tidings.settings
    worker_id = bootstrap.new_worker_id()
    observers: list[DispatchObserver] = [LogObserver()]
    metrics = None
    if args.metrics_port is not None:
        # Prometheus' client loads only in runners that serve metrics.
        from tidings.runner.telemetry.health import LOOPBACK, serve_health
        from tidings.runner.telemetry.metrics import MetricsObserver

        metrics = MetricsObserver(clock=runtime.clock)
        observers.append(metrics)
    wiring = bootstrap.dispatcher(runtime, observers=observers, worker_id=worker_id)
    async with wiring as dispatcher, contextlib.AsyncExitStack() as stack:
        loop = asyncio.get_running_loop()
        signals = itertools.count(1)
        for signum in (signal.SIGINT, signal.SIGTERM):
            # The first stops gracefully (shutdown_grace); the next one at once.
            loop.add_signal_handler(signum, lambda: dispatcher.stop(at_once=next(signals) > 1))
        if metrics is not None:
            port = await stack.enter_async_context(
                serve_health(
                    LOOPBACK, args.metrics_port, metrics.registry, runtime.store, dispatcher.alive
                )
            )
            log.info("metrics on http://%s:%d/metrics, health on /healthz", LOOPBACK, port)
        log.info(
            "runner %s started on %s: %s, lease %ss, email %s",
            worker_id,
            shown_database(settings.database_url),
            dispatcher.describe(),
            settings.lease.total_seconds(),
            f"via {settings.smtp.host}:{settings.smtp.port}" if settings.smtp else "not configured",
        )
        summary = await dispatcher.run(until_idle=args.until_idle)
    log.info("runner %s stopped: %s", worker_id, summary_text(summary))
    emit(args.json, summary_text(summary), summary_json(summary))
    return 0


def summary_text(summary: DispatchSummary) -> str:
    skipped = ", ".join(f"{reason} {count}" for reason, count in sorted(summary.skipped.items()))
    deliveries = ", ".join(f"{key} {count}" for key, count in sorted(summary.deliveries.items()))
    return (
        f"notified {summary.notified}; skipped {sum(summary.skipped.values())}"
        f"{f' ({skipped})' if skipped else ''}; rejected {summary.rejected}"
        f"{f'; deliveries: {deliveries}' if deliveries else ''}"
    )


def summary_json(summary: DispatchSummary) -> dict[str, object]:
    return {
        "notified": summary.notified,
        "skipped": dict(summary.skipped),
        "rejected": summary.rejected,
        "deliveries": dict(summary.deliveries),
    }

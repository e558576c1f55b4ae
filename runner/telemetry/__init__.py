"""What a running tidings tells its operators: log lines, the observers that count
decisions and deliveries, and what may be shown of a URL. Prometheus metrics and the
health endpoint (``metrics``, ``health``) load only in a runner that serves them."""

from tidings.runner.telemetry.logs import LogObserver, configure_logging
from tidings.runner.telemetry.observers import DispatchObserver, DispatchSummary
from tidings.runner.telemetry.redaction import scheme_of, scrub_urls, shown_database, shown_url

__all__ = [
    "DispatchObserver",
    "DispatchSummary",
    "LogObserver",
    "configure_logging",
    "scheme_of",
    "scrub_urls",
    "shown_database",
    "shown_url",
]

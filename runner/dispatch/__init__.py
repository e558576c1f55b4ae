"""The dispatch service: lanes that claim, decide and record; deliveries sent outside any
transaction, retried on schedule, under leases renewed while the runner lives."""

from tidings.runner.config import DispatchOptions
from tidings.runner.dispatch.dispatcher import Dispatcher
from tidings.runner.dispatch.senders import channel_senders, default_senders

__all__ = ["DispatchOptions", "Dispatcher", "channel_senders", "default_senders"]

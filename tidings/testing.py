"""What a host application's tests need from tidings, and what tidings' own tests use.

A fake clock here; hypothesis strategies and an in-memory tidings join it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

__all__ = ["FakeClock"]


class FakeClock:
    """A clock that only moves when told: ``clock()`` reads it, ``advance`` moves it,
    ``set`` puts it anywhere. Pass it wherever tidings takes ``clock``."""

    def __init__(self, start: datetime) -> None:
        _check_aware(start)
        self._now = start

    def __call__(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> datetime:
        """Move by ``delta`` (forward, or back to test a clock that jumps); returns the
        new reading."""
        self._now = self._now + delta
        return self._now

    def set(self, moment: datetime) -> datetime:
        """Jump to ``moment``; returns it."""
        _check_aware(moment)
        self._now = moment
        return moment


def _check_aware(moment: datetime) -> None:
    if moment.utcoffset() is None:
        raise ValueError("the fake clock needs timezone-aware datetimes")

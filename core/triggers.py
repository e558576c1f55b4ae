"""Edge triggers for producers that watch a measure over time."""

from __future__ import annotations

from typing import Any, Protocol, TypeVar


class _Ordered(Protocol):
    # ``Any``, not ``object``: int, float, Decimal and datetime compare only with their own.
    def __lt__(self, other: Any, /) -> bool: ...
    def __le__(self, other: Any, /) -> bool: ...


_T = TypeVar("_T", bound=_Ordered)


def crossed_upward(prior: _T, current: _T, threshold: _T) -> bool:
    """True when a measure went from below ``threshold`` to at or above it.

    Emitting only on the crossing, not on every reading above the threshold, keeps a
    steady overload from producing an event per tick (the reference's rule).
    """
    return prior < threshold <= current

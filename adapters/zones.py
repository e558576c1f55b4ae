"""IANA time zones by name, for quiet hours.

The tz data is read here, outside the pure core: core/quiet_hours.py takes a loaded zone
and only asks it for offsets. A name comes from users (the CLI, the API) and from stored
rows, so every bad one, whatever it holds, is one ValueError naming the field, never a
path read outside the tz database or an exception of another type.
"""

from __future__ import annotations

import functools
import re
from datetime import tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_MOST_CHARACTERS = 255
_SHOWN_TEXT = 32  # characters of a refused name quoted back, so a flood is not echoed
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_+\-]*(?:/[A-Za-z0-9_+\-]+)*")
"""The spelling of tz database names (``America/Port-au-Prince``, ``Etc/GMT+5``): no dot,
so no ``..`` and no file beside the zones (``zone.tab``); no leading slash."""
_MACHINE_LOCAL = frozenset({"localtime", "posixrules"})
"""Files some systems keep among the zones that name this machine's settings, not a zone:
a window stored with one would change meaning from one machine to the next."""


def zone_named(name: str) -> ZoneInfo:
    """The IANA zone called ``name`` (``Europe/Berlin``). Raises ValueError naming the
    ``timezone`` field for anything else: unknown, empty, a path, not text."""
    if not isinstance(name, str):
        raise ValueError(
            f"timezone: must be the name of an IANA time zone, not {type(name).__name__}"
        )
    if not name:
        raise ValueError("timezone: must not be empty (an IANA time zone such as Europe/Berlin)")
    if len(name) > _MOST_CHARACTERS or _NAME.fullmatch(name) is None or name in _MACHINE_LOCAL:
        raise ValueError(_unknown(name))
    return _loaded(name)


def stored_zone(zone: tzinfo) -> ZoneInfo:
    """``zone`` as every store keeps it, by name, and reads it back. A zone without an
    IANA name (a fixed offset, ``UTC+02:00``) is refused with ValueError rather than
    stored as a name that could not be read back."""
    return zone_named(str(zone))


@functools.cache
def _loaded(name: str) -> ZoneInfo:
    """Only names that load are cached (a raise caches nothing), so the cache holds at
    most the tz database's few hundred zones."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # Not found, a directory, or a file that is not a zone (ValueError).
        raise ValueError(_unknown(name)) from None


def _unknown(name: str) -> str:
    shown = name if len(name) <= _SHOWN_TEXT else name[:_SHOWN_TEXT] + "..."
    if name != "UTC" and not _has_zones():
        return (
            f"timezone: no IANA time zone data on this machine to find {shown!r} (install tzdata)"
        )
    return f"timezone: {shown!r} is not a known IANA time zone"


def _has_zones() -> bool:
    """Whether any tz data is found at all, so that a machine without it is told so
    rather than that every zone is unknown."""
    try:
        _loaded("UTC")
    except ValueError:
        return False
    return True

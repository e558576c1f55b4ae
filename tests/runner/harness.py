"""What the command-line tests share besides fixtures: the runner's type and a good line."""

from __future__ import annotations

import json
from collections.abc import Callable

Tidings = Callable[..., tuple[int, str, str]]
"""The ``tidings`` fixture: run one command; (status, stdout, stderr)."""


def event_line(**fields: object) -> str:
    """A valid event as a JSON line (no newline), ``fields`` overriding the defaults."""
    base: dict[str, object] = {
        "user_id": "ana",
        "kind": "overload",
        "severity": "watch",
        "title": "Overload",
        "body": "Hours crossed 50",
    }
    return json.dumps({**base, **fields})


def event_bytes(**fields: object) -> bytes:
    """``event_line`` as the bytes a file holds."""
    return event_line(**fields).encode()

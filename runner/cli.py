"""The ``tidings`` command line: parse, load settings, open the store, run one command.

Failures of the outside world (a bad setting, an unreachable database, a missing
file) become one line on stderr and an exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import re
import sqlite3
import sys
from collections.abc import Sequence

from tidings.core.ports import StoreUnavailable
from tidings.runner.clock import system_clock
from tidings.runner.config import ConfigError, Settings, load_settings
from tidings.runner.logs import configure_logging
from tidings.runner.parser import Command, build_parser
from tidings.runner.stores import open_store


def _flags(args: argparse.Namespace) -> dict[str, object]:
    flags: dict[str, object] = {"database_url": getattr(args, "database", None)}
    if getattr(args, "workers", None) is not None:
        flags["workers"] = args.workers
    return flags


async def _main(args: argparse.Namespace, settings: Settings) -> int:
    if args.handler is None:
        from tidings.runner.demo import demo  # loaded only for the tour

        return await demo(args, settings)
    store = open_store(settings.database_url, clock=system_clock, lease=settings.lease)
    # What is loaded by now (modules, classes, the store's driver) lives as long as the
    # process: the collector need not walk it again in each full collection, nor at exit.
    gc.freeze()
    try:
        await store.migrate()
        handler: Command = args.handler
        return await handler(args, store, settings)
    finally:
        await store.close()


_UNDECODED = re.compile("[\ud800-\udfff]")
"""What bytes that are not UTF-8 become in ``sys.argv`` (Python's surrogateescape)."""


def _undecodable(args: argparse.Namespace) -> list[str]:
    """The arguments that held bytes which are not UTF-8: no store can keep them and
    no terminal can print them, so they are refused before anything runs."""
    return [
        name
        for name, value in vars(args).items()
        if isinstance(value, str) and _UNDECODED.search(value)
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.json = getattr(args, "json", False)
    if undecodable := _undecodable(args):
        for name in undecodable:
            print(f"rejected: {name}: is not valid UTF-8 text", file=sys.stderr)
        return 2
    configure_logging()
    try:
        settings = load_settings(_flags(args), config_file=getattr(args, "config", None))
        return asyncio.run(_main(args, settings))
    except ConfigError as error:
        print(f"tidings: {error}", file=sys.stderr)
        return 2
    except (OSError, sqlite3.Error, StoreUnavailable) as error:
        print(f"tidings: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

"""The ``tidings`` command line: a thin shell that parses, opens tidings through the one
bootstrap (runner/bootstrap.py, as the Python API does), runs one command and prints.

Only ``tidings migrate`` (and ``demo``, on its own temporary database) changes a schema:
every other command first checks that the database is there and current, and exits 2
with one line saying to run ``tidings migrate`` if not. Failures of the outside world
(a bad setting, an unreachable database, a missing file) become one line on stderr and
an exit status, never a traceback.
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
from tidings.runner import bootstrap
from tidings.runner.api import AsyncTidings
from tidings.runner.cli.parser import Command, build_parser
from tidings.runner.config import POLICY_SWITCHES, ConfigError, Settings
from tidings.runner.telemetry import configure_logging


async def _main(args: argparse.Namespace, settings: Settings) -> int:
    if args.handler is None:
        from tidings.runner.cli.demo import demo  # loaded only for the tour

        return await demo(settings)
    tidings = AsyncTidings(bootstrap.open_runtime(settings))
    # What is loaded by now (modules, classes, the store's driver) lives as long as the
    # process: the collector need not walk it again in each full collection, nor at exit.
    gc.freeze()
    try:
        if not args.changes_schema:
            await tidings.check_schema()
        handler: Command = args.handler
        return await handler(args, tidings)
    finally:
        await tidings.close()


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
        settings = bootstrap.settings_for(
            getattr(args, "database", None),
            config_file=getattr(args, "config", None),
            overrides={name: getattr(args, name, None) for name in ("workers", *POLICY_SWITCHES)},
        )
        return asyncio.run(_main(args, settings))
    except (ConfigError, bootstrap.SchemaNotReady) as error:
        print(f"tidings: {error}", file=sys.stderr)
        return 2
    except (OSError, sqlite3.Error, StoreUnavailable) as error:
        print(f"tidings: {error}", file=sys.stderr)
        return 1

"""The ``tidings`` command: a thin shell over the Python API (runner/api.py) that
parses, calls and prints."""

from tidings.runner.cli.main import main

__all__ = ["main"]

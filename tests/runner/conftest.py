"""The CLI run in-process, as the command-line tests share it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.runner.harness import Tidings
from tidings.runner.cli import main


@pytest.fixture
def database(tmp_path: Path) -> Path:
    """The SQLite file the ``tidings`` fixture's commands use (it migrates the file first:
    commands other than ``migrate`` refuse a database that is not)."""
    return tmp_path / "tidings.db"


@pytest.fixture
def tidings(database: Path, capsys: pytest.CaptureFixture[str]) -> Tidings:
    """Run the CLI in-process against one migrated SQLite file; returns (status, stdout,
    stderr)."""

    def run(*argv: str) -> tuple[int, str, str]:
        status = main(["--database", f"sqlite:///{database}", *argv])
        captured = capsys.readouterr()
        return status, captured.out, captured.err

    status, _, err = run("migrate")
    assert status == 0, err
    return run

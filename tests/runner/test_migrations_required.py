"""Schema changes are explicit: only ``tidings migrate`` (and ``migrate()``) changes a
schema. Every other command refuses a database that is missing, empty or behind with one
line naming it (without credentials) and exit 2; a read creates no file; the Python API
raises ``SchemaNotReady``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tidings.runner.api import AsyncTidings
from tidings.runner.bootstrap import SchemaNotReady, SchemaState
from tidings.runner.cli import main
from tidings.runner.stores import migrations_for
from tidings.runner.sync_api import Tidings

SEND = ("send", "--user", "u42", "--kind", "k", "--severity", "info", "--title", "T", "--body", "b")
COMMANDS = (
    ("inbox", "u42"),
    ("prefs", "show", "u42"),
    ("prefs", "set", "u42", "k", "--channels", "in_app"),
    ("recipients", "set", "u42", "--email", "u42@example.com"),
    SEND,
    ("enqueue", "-"),
    ("run", "--until-idle"),
    ("read", "u42", "--all"),
    ("explain", "e1"),
    ("explain", "--user", "u42", "--kind", "k", "--severity", "info"),
    ("deliveries",),
    ("retry", "d1"),
    ("simulate",),
)


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def refusal(database: str, reason: str) -> str:
    return f"tidings: database {database} {reason}: run `tidings migrate` (migrate() in Python)\n"


@pytest.fixture
def empty_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A working directory with nothing in it, and no database named by the environment:
    commands use the default, ``sqlite:///tidings.db``."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TIDINGS_DATABASE_URL", raising=False)
    monkeypatch.delenv("TIDINGS_CONFIG", raising=False)
    yield tmp_path


@pytest.mark.parametrize("argv", COMMANDS, ids=[" ".join(argv) for argv in COMMANDS])
def test_no_command_but_migrate_creates_a_database(
    empty_directory: Path, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...]
) -> None:
    status, out, err = cli(capsys, *argv)

    assert (status, out) == (2, "")
    assert err == refusal("sqlite:///tidings.db", "does not exist")
    assert list(empty_directory.iterdir()) == []


def test_migrate_creates_the_database_and_names_what_it_applied(
    empty_directory: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    names = [f"{m.version:04d}_{m.name}" for m in migrations_for("sqlite:///tidings.db")]

    status, out, _ = cli(capsys, "migrate")
    assert status == 0
    assert out == (
        f"sqlite:///tidings.db: schema up to date, {len(names)} migration(s) applied:"
        f" {', '.join(names)}\n"
    )
    assert cli(capsys, "--json", "migrate")[1] == '{"applied": 0, "migrations": []}\n'
    assert cli(capsys, "inbox", "u42")[0] == 0


def forget_last_migration_sqlite(path: Path) -> None:
    with contextlib.closing(sqlite3.connect(path)) as connection, connection:
        connection.execute(
            "DELETE FROM schema_migrations WHERE version = (SELECT max(version) FROM"
            " schema_migrations)"
        )


def test_an_empty_or_behind_sqlite_database_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "app.db"
    path.touch()
    url = f"sqlite:///{path}"
    for argv in COMMANDS:
        assert cli(capsys, "--database", url, *argv) == (
            2,
            "",
            refusal(url, "has no tidings schema"),
        )
    with contextlib.closing(sqlite3.connect(path)) as connection:
        assert connection.execute("SELECT name FROM sqlite_master").fetchall() == []

    assert cli(capsys, "--database", url, "migrate")[0] == 0
    forget_last_migration_sqlite(path)
    for argv in COMMANDS:
        status, out, err = cli(capsys, "--database", url, *argv)
        assert (status, out, err) == (2, "", refusal(url, "is behind: 1 migration(s) not applied"))


def test_an_empty_or_behind_postgresql_database_is_refused_without_its_password(
    postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = postgres_url.replace("postgres@", "postgres:hunter2@")
    shown = f"postgresql://127.0.0.1:5432/{postgres_url.rpartition('/')[2]}"
    for argv in (("inbox", "u42"), ("run", "--until-idle"), SEND):
        assert cli(capsys, "--database", url, *argv) == (
            2,
            "",
            refusal(shown, "has no tidings schema"),
        )

    status, out, _ = cli(capsys, "--database", url, "--json", "migrate")
    assert status == 0
    assert json.loads(out)["migrations"] == [
        f"{m.version:04d}_{m.name}" for m in migrations_for(postgres_url)
    ]
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute(
            "DELETE FROM schema_migrations WHERE version = (SELECT max(version) FROM"
            " schema_migrations)"
        )
    status, out, err = cli(capsys, "--database", url, "inbox", "u42")
    assert (status, out, err) == (2, "", refusal(shown, "is behind: 1 migration(s) not applied"))
    assert "hunter2" not in err


def test_the_api_raises_schema_not_ready_and_creates_no_file(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    with Tidings.open(f"sqlite:///{path}") as tidings:
        with pytest.raises(SchemaNotReady) as raised:
            tidings.inbox("u42")
        assert raised.value.state is SchemaState.MISSING
        assert str(raised.value) == refusal(f"sqlite:///{path}", "does not exist").removeprefix(
            "tidings: "
        ).rstrip("\n")
        with pytest.raises(SchemaNotReady):
            tidings.send(user_id="u42", kind="k", severity="info", title="T", body="b")
        with pytest.raises(SchemaNotReady):
            tidings.check_schema()
        assert not path.exists()
        assert tidings.migrate()
        tidings.check_schema()
        assert tidings.inbox("u42") == []

    forget_last_migration_sqlite(path)
    with Tidings.open(f"sqlite:///{path}") as tidings:
        with pytest.raises(SchemaNotReady) as raised:
            tidings.unread_count("u42")
        assert (raised.value.state, raised.value.pending) == (SchemaState.BEHIND, 1)


def test_an_async_tidings_checks_the_schema_too(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with AsyncTidings.open(f"sqlite:///{tmp_path / 'app.db'}") as tidings:
            with pytest.raises(SchemaNotReady):
                await tidings.run_until_idle()
            with pytest.raises(SchemaNotReady):
                await tidings.start()

    asyncio.run(scenario())
    assert list(tmp_path.iterdir()) == []


def test_memory_is_born_current() -> None:
    with Tidings.open("memory://") as tidings:
        tidings.check_schema()
        tidings.send(user_id="u42", kind="k", severity="info", title="T", body="b")
        assert tidings.run_until_idle().notified == 1
        assert tidings.migrate() == ()

"""The README's examples work as they are pasted: every ``tidings`` line in its shell
blocks is a command the parser accepts (no pipes between alternatives, no brackets), its
events are one JSON object per line, and its Python examples run."""

from __future__ import annotations

import contextlib
import io
import json
import re
import shlex
from pathlib import Path

import pytest

from tidings.runner.cli import main
from tidings.runner.cli.parser import build_parser

README = Path(__file__).parents[2] / "README.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", README.read_text(), re.MULTILINE | re.DOTALL)


def command_lines() -> list[str]:
    lines = []
    for block in blocks("sh"):
        for line in block.replace("\\\n", " ").splitlines():
            if line.startswith("tidings "):
                lines.append(line)
    return lines


@pytest.mark.parametrize("line", command_lines())
def test_every_command_line_parses(line: str) -> None:
    argv = shlex.split(line, comments=True)
    assert argv[0] == "tidings"
    build_parser().parse_args(argv[1:])  # a usage error would exit 2


def test_the_cli_section_lists_the_commands_users_need() -> None:
    listed = set(command_lines())
    assert "tidings read u42 NOTIFICATION_ID    # one notification" in listed
    assert "tidings read u42 --all              # all of them" in listed
    assert len(command_lines()) >= 25


@pytest.fixture
def in_empty_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in ("TIDINGS_DATABASE_URL", "TIDINGS_CONFIG", "SMTP_HOST"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def test_the_event_example_enqueues_as_it_is(
    in_empty_directory: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    [events] = blocks("json")
    (in_empty_directory / "events.jsonl").write_text(events)
    assert main(["migrate"]) == 0
    capsys.readouterr()
    assert main(["--json", "enqueue", "events.jsonl"]) == 0
    assert json.loads(capsys.readouterr().out) == {"enqueued": 2, "duplicates": 0, "rejected": 0}


def test_the_python_examples_run_as_they_are(in_empty_directory: Path) -> None:
    decision, application, django, loop, host_test = (
        block for block in blocks("python") if "def verify" not in block
    )
    compile(django, "README.md", "exec")  # needs Django to run; its calls are in test_api.py
    # The host's property test is tests/core/test_host_example.py, word for word.
    assert host_test in (Path(__file__).parents[1] / "core" / "test_host_example.py").read_text()
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        for example in (decision, application, loop):
            exec(compile(example, "README.md", "exec"), {"__name__": "readme"})  # noqa: S102
    lines = printed.getvalue().splitlines()
    assert lines[0] == (
        "skipped: severity info is below the minimum watch set by the per-kind preference"
        " for burnout_overload"
    )
    assert lines[1].startswith("('0001_initial', ")
    assert lines[2].startswith("DispatchSummary(notified=1,")
    assert lines[3].startswith("notified via in_app, email: severity critical meets")
    assert lines[4].endswith(" Deploy failed")
    assert lines[5].startswith("notified via in_app: severity info meets")

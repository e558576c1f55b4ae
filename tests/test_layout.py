"""The shape the README promises: small groups in runner/, and docstrings that cite only
files the repository has."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
RUNNER = REPOSITORY / "runner"
MOST_RUNNER_IMPORTS = 6


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(RUNNER).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(["tidings", "runner", *parts])


def _runner_imports(path: Path) -> set[str]:
    """The runner modules ``path`` imports; a group imported through its package (such
    as ``tidings.runner.telemetry``) counts once."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tidings.runner"):
            module = node.module or ""
            if module == "tidings.runner":
                found |= {f"tidings.runner.{alias.name}" for alias in node.names}
            else:
                found.add(module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("tidings.runner")}
    found.discard(_module_name(path))
    return found


def test_no_runner_module_imports_more_than_six_of_the_others() -> None:
    counted = {_module_name(path): _runner_imports(path) for path in RUNNER.rglob("*.py")}
    assert len(counted) > 20  # the walk found the runner
    crowded = {
        name: sorted(found) for name, found in counted.items() if len(found) > MOST_RUNNER_IMPORTS
    }
    assert crowded == {}


def test_the_runner_is_grouped_by_concern() -> None:
    groups = {path.name for path in RUNNER.iterdir() if (path / "__init__.py").exists()}
    assert groups == {"cli", "dispatch", "replay", "telemetry"}


_CITED = re.compile(
    r"\b((?:core|adapters|runner|tests|bench)/[\w/]+(?:\.(?:py|sql|md))?|\w+\.md)\b"
)


def test_docstrings_cite_only_files_that_exist() -> None:
    missing = []
    for folder in ("core", "adapters", "runner", "tests", "bench", "tidings"):
        for path in (REPOSITORY / folder).rglob("*.py"):
            for cited in _CITED.findall(path.read_text(encoding="utf-8")):
                if not (REPOSITORY / cited).exists():
                    missing.append(f"{path.relative_to(REPOSITORY)}: {cited}")
    assert missing == []

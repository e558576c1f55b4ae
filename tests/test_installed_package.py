"""tidings as a host application gets it: built into a wheel and installed, with its
dependencies, into a fresh virtual environment, next to a host project that has top-level
``core`` and ``adapters`` packages of its own. What installs is one package, ``tidings``
(pyproject.toml), with ``py.typed``: nothing generic lands at the top of site-packages,
and the host's type checker reads tidings' types.

The wheel is built from a copy of the checkout, so no ``build/`` directory is left in it
or reused from it. Building needs the package index or pip's cache (for setuptools and
the dependencies): without them these tests fail, they never skip. About ten seconds on
two cores with a warm pip cache.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import attrs
import pytest

import tidings

ROOT = Path(__file__).resolve().parents[1]
HOST_EXAMPLE = ROOT / "tests" / "core" / "test_host_example.py"
GENERIC_NAMES = ("core", "adapters", "runner")

HOST_FILES = {
    "pyproject.toml": '[project]\nname = "host"\nversion = "1"\n\n[tool.mypy]\nstrict = true\n',
    "core/__init__.py": '"""The host\'s own core."""\n\nEvent = "host"\n',
    "adapters/__init__.py": '"""The host\'s own adapters."""\n\nNAME = "host adapters"\n',
    # Imports every module of tidings, then says where each top-level name came from.
    "imports.py": '''"""Which core, adapters and tidings the host gets."""

import json
import pkgutil
import sys

import adapters
import core
import tidings

for module in pkgutil.walk_packages(tidings.__path__, "tidings."):
    __import__(module.name)
stray = sorted(
    name for name in sys.modules if name.split(".")[0] in ("core", "adapters", "runner")
)
print(json.dumps({
    "core_event": core.Event,
    "core_file": core.__file__,
    "adapters_name": adapters.NAME,
    "tidings_file": tidings.__file__,
    "decide_module": tidings.decide.__module__,
    "top_level_modules": stray,
}))
''',
    "app.py": '''"""The host notifies a user through tidings' synchronous API."""

import json
import sys

from tidings import Tidings


def main(database: str) -> None:
    with Tidings.open(f"sqlite:///{database}") as notifier:
        notifier.migrate()
        notifier.send(
            user_id="u42", kind="overload", severity="info", title="Overload", body="50 h"
        )
        notifier.run_until_idle()
        inbox = notifier.inbox("u42")
    print(json.dumps([[n.user_id, n.kind, n.title, n.body] for n in inbox]))


if __name__ == "__main__":
    main(sys.argv[1])
''',
    "typed_ok.py": '''"""A correct call to tidings.decide."""

from datetime import UTC, datetime

from returns.result import Result

from tidings import Event, Plan, Preference, Severity, Skip, decide

event = Event(event_id="e1", user_id="u1", kind="k", severity=Severity.INFO, title="t", body="b")
result: Result[Plan, Skip] = decide(
    event,
    kind_preference=Preference(("email",), Severity.INFO),
    global_preference=None,
    last_sent_at=None,
    now=datetime.now(UTC),
)
''',
}
WRONG_NOW = 'now="2024-05-01T12:00:00+00:00",'


@attrs.frozen
class Installed:
    """A fresh environment with tidings installed, and the host project beside it."""

    python: Path
    bin: Path
    site_packages: Path
    host: Path


def run(*argv: str | Path, cwd: Path, status: int = 0) -> str:
    """Run a command to completion; its output, or a failure that shows it when it exits
    otherwise than with ``status``."""
    done = subprocess.run(
        [str(arg) for arg in argv],
        cwd=cwd,
        env=clean_environment(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    shown = f"{argv} exited {done.returncode}:\n{done.stdout}{done.stderr}"
    assert done.returncode == status, shown
    return done.stdout


def clean_environment() -> dict[str, str]:
    """This process's environment without what would lead a child to this checkout or
    change tidings' settings (pip's own settings, such as its index, stay)."""
    leaks = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "TIDINGS_")
    return {name: value for name, value in os.environ.items() if not name.startswith(leaks)}


def build_wheel(work: Path) -> Path:
    source = work / "source"
    shutil.copytree(
        ROOT,
        source,
        symlinks=True,  # tidings/core -> ../core, as in the checkout
        ignore=shutil.ignore_patterns(
            ".*", "build", "dist", "*.egg-info", "__pycache__", "*.db*", "tests", "bench"
        ),
    )
    dist = work / "dist"
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", dist, source, cwd=work)
    [wheel] = dist.glob("tidings-*.whl")
    return wheel


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    work = tmp_path_factory.mktemp("installed")
    wheel = build_wheel(work)
    venv = work / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=work)
    python = venv / "bin" / "python"
    pip = (sys.executable, "-m", "pip", "--python", python)
    run(*pip, "install", "--no-compile", f"{wheel}[testing]", cwd=work)
    site_packages = Path(
        run(
            python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))", cwd=work
        ).strip()
    )
    host = work / "host"
    for name, text in HOST_FILES.items():
        (host / name).parent.mkdir(parents=True, exist_ok=True)
        (host / name).write_text(text)
    shutil.copy(HOST_EXAMPLE, host / "test_host_property.py")
    return Installed(python=python, bin=venv / "bin", site_packages=site_packages, host=host)


def test_the_host_imports_its_own_core_beside_every_module_of_tidings(
    installed: Installed,
) -> None:
    found = json.loads(run(installed.python, "imports.py", cwd=installed.host))
    assert found["core_event"] == "host"
    assert found["adapters_name"] == "host adapters"
    assert Path(found["core_file"]) == installed.host / "core" / "__init__.py"
    assert Path(found["tidings_file"]) == installed.site_packages / "tidings" / "__init__.py"
    assert found["decide_module"] == "tidings.core.decision"
    # Only the host's two packages: no tidings module imported a top-level name.
    assert found["top_level_modules"] == ["adapters", "core"]


def test_site_packages_holds_tidings_alone_with_its_types_and_migrations(
    installed: Installed,
) -> None:
    site = installed.site_packages
    assert not {entry.name for entry in site.iterdir() if entry.name.split(".")[0] in GENERIC_NAMES}
    [dist_info] = site.glob("tidings-*.dist-info")
    assert (dist_info / "top_level.txt").read_text().split() == ["tidings"]
    package = site / "tidings"
    assert (package / "py.typed").is_file()
    for layer in GENERIC_NAMES:
        assert (package / layer).is_dir()
        assert not (package / layer).is_symlink()
        assert (package / layer / "__init__.py").is_file()
    for store in ("sqlite", "postgres"):
        assert list((package / "adapters" / store / "migrations").glob("*.sql"))


def test_the_tidings_command_tells_its_version(installed: Installed) -> None:
    shown = run(installed.bin / "tidings", "--version", cwd=installed.host)
    assert shown.strip() == f"tidings {tidings.__version__}"


def test_the_host_sends_drains_and_reads_the_inbox_with_the_sync_api(
    installed: Installed,
) -> None:
    database = installed.host / "app.db"
    inbox = json.loads(run(installed.python, "app.py", database, cwd=installed.host))
    assert inbox == [["u42", "overload", "Overload", "50 h"]]


def test_the_hosts_property_test_runs_on_the_installed_tidings_testing(
    installed: Installed,
) -> None:
    """The README's example, with hypothesis from the ``testing`` extra (tzdata comes with
    tidings itself)."""
    run(
        installed.python,
        "-c",
        "import test_host_property as example; "
        "example.test_critical_events_go_by_email_unless_in_cooldown()",
        cwd=installed.host,
    )


def test_the_hosts_mypy_strict_passes_correct_calls_and_catches_a_wrong_one(
    installed: Installed,
) -> None:
    """mypy reads tidings from the fresh environment (``--python-executable``), through
    ``py.typed``: without it every import of tidings would be an error."""
    host = installed.host
    mypy = (sys.executable, "-m", "mypy", "--python-executable", installed.python)
    checked = ("typed_ok.py", "app.py", "test_host_property.py")
    assert "Success: no issues found in 3 source files" in run(*mypy, *checked, cwd=host)

    correct = (host / "typed_ok.py").read_text()
    assert "now=datetime.now(UTC)," in correct
    wrong = correct.replace("now=datetime.now(UTC),", WRONG_NOW)
    (host / "typed_wrong.py").write_text(wrong)
    line = wrong.splitlines().index(f"    {WRONG_NOW}") + 1
    assert run(*mypy, "typed_wrong.py", cwd=host, status=1).splitlines() == [
        f'typed_wrong.py:{line}: error: Argument "now" to "decide" has incompatible type "str";'
        ' expected "datetime"  [arg-type]',
        "Found 1 error in 1 file (checked 1 source file)",
    ]

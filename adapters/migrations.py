"""Versioned SQL migrations shipped as numbered files beside each SQL store.

A file named ``0001_initial.sql`` is version 1. Stores record the versions they
applied, so ``migrate`` is idempotent and a newer release applies only what is new.
"""

from __future__ import annotations

from importlib import resources

import attrs


@attrs.frozen
class Migration:
    version: int
    name: str
    sql: str


def load_migrations(package: str) -> tuple[Migration, ...]:
    """The migrations in ``package``'s ``migrations`` folder, in version order."""
    folder = resources.files(package) / "migrations"
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            version, _, name = entry.name.removesuffix(".sql").partition("_")
            found.append(Migration(int(version), name, entry.read_text(encoding="utf-8")))
    return tuple(sorted(found, key=lambda migration: migration.version))

"""Imports go one way: cli → flows → tasks → {connectors, store/audit} → config → {errors, domain, clock}.

This reads every module's imports (ast, no execution) and fails on an upward or sideways one.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"firebreak.config": "config", "firebreak.connectors": "connectors", "firebreak.tasks": "tasks",
           "firebreak.flows": "flows"}
RANK = {"firebreak.errors": 0, "firebreak.domain": 0, "firebreak.clock": 1, "firebreak.config": 2,
        "firebreak.connectors": 3, "firebreak.store": 3, "firebreak.audit": 3, "firebreak.tasks": 4,
        "firebreak.flows": 5, "firebreak.cli": 6}
# Connectors and the store are siblings: neither may import the other.
SIBLINGS = {("firebreak.connectors", "firebreak.store"), ("firebreak.connectors", "firebreak.audit"),
            ("firebreak.store", "firebreak.connectors"), ("firebreak.audit", "firebreak.connectors")}


def _layer(module: str) -> str | None:
    for name in sorted(RANK, key=len, reverse=True):
        if module == name or module.startswith(name + "."):
            return name
    return None


def _modules():  # type: ignore[no-untyped-def]
    for pkg, folder in {**FOLDERS, "firebreak": "firebreak"}.items():
        for path in (ROOT / folder).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            rel = path.relative_to(ROOT / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            yield ".".join([pkg, *parts]), path


def test_imports_go_one_way() -> None:
    bad = []
    for module, path in _modules():
        mine = _layer(module)
        if mine is None:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                theirs = _layer(name)
                if theirs is None or theirs == mine:
                    continue
                if RANK[theirs] > RANK[mine] or (mine, theirs) in SIBLINGS:
                    bad.append(f"{module} imports {name}")
    assert not bad, "\n".join(bad)


def test_every_package_folder_is_listed_in_pyproject() -> None:
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = set()
    for pkg, folder in {**FOLDERS, "firebreak": "firebreak"}.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            found.add(".".join([pkg, *rel.parts]))
    assert found <= listed, f"add to pyproject packages: {sorted(found - listed)}"

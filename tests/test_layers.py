"""Imports go one way, and each folder holds one role (docs/ARCHITECTURE.md draws it):

    core (domain, errors, clock) → store, audit │ config → connectors → tasks → flows → web → cli

and beside the product, the tools: drill, sandbox, bench. Besides the order:

- tasks/ are plain functions: no Prefect, no web framework;
- flows/ orchestrate with Prefect and serve no HTTP;
- connectors/ never touch the store, and the store never reads config;
- product code never imports the tools (the CLI, which runs them, may).

This reads every module's imports (ast, no execution) and fails on any that breaks a rule.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"firebreak.config": "config", "firebreak.connectors": "connectors", "firebreak.tasks": "tasks",
           "firebreak.flows": "flows"}

# The layers, lowest first. A module may import its own layer and any lower one, except
# where SIBLINGS says two layers of the same rank stay apart.
RANK = {
    "firebreak.errors": 0, "firebreak.domain": 0, "firebreak.clock": 1,
    "firebreak.store": 2, "firebreak.audit": 2, "firebreak.config": 2,
    "firebreak.connectors": 3,
    "firebreak.tasks": 4,
    "firebreak.flows": 5,
    "firebreak.web": 6,
    "firebreak.cli": 7,
    # Tools around the product: they may use anything; nothing of the product uses them.
    "firebreak.drill": 8, "firebreak.sandbox": 8, "firebreak.bench": 8,
}
SIBLINGS = {("firebreak.store", "firebreak.config"), ("firebreak.config", "firebreak.store"),
            ("firebreak.config", "firebreak.audit"), ("firebreak.audit", "firebreak.config"),
            ("firebreak.store", "firebreak.audit"),  # the audit log is written through the store
            # Connectors speak to platforms; what they return is stored by the stages.
            ("firebreak.connectors", "firebreak.store"), ("firebreak.connectors", "firebreak.audit")}
TOOLS = {"firebreak.drill", "firebreak.sandbox", "firebreak.bench"}
# The CLI starts the tools (`firebreak drill`, `sandbox`, `bench`, `up --sandbox`).
MAY_USE_TOOLS = {"firebreak.cli", *TOOLS}
# Third-party packages a layer must not import.
FORBIDDEN = {
    "firebreak.tasks": {"prefect", "fastapi", "starlette", "uvicorn"},
    "firebreak.connectors": {"prefect", "fastapi", "starlette", "uvicorn", "sqlalchemy", "alembic"},
    "firebreak.config": {"prefect", "fastapi", "starlette", "uvicorn", "sqlalchemy", "httpx"},
    "firebreak.store": {"prefect", "fastapi", "starlette", "uvicorn", "httpx"},
    "firebreak.flows": {"fastapi", "starlette", "uvicorn"},
}
for core in ("firebreak.errors", "firebreak.domain", "firebreak.clock"):
    FORBIDDEN[core] = {"prefect", "fastapi", "starlette", "uvicorn", "sqlalchemy", "httpx", "pydantic"}


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


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            # `from firebreak.tasks import approve`: the submodule is what is imported.
            names += [f"{node.module}.{a.name}" for a in node.names if node.module.startswith("firebreak")]
    return names


def violations() -> list[str]:
    bad = []
    for module, path in _modules():
        mine = _layer(module)
        if module == "firebreak":  # the namespace itself: a docstring and the version
            mine = "firebreak.domain"
        if mine is None:
            bad.append(f"{module} is in no layer: give it a place in tests/test_layers.py RANK")
            continue
        for name in _imports(path):
            top = name.split(".")[0]
            if top in FORBIDDEN.get(mine, set()):
                bad.append(f"{module} imports {name} ({mine} may not use {top})")
                continue
            theirs = _layer(name)
            if theirs is None or theirs == mine:
                continue
            if theirs in TOOLS:
                if mine not in MAY_USE_TOOLS:
                    bad.append(f"{module} imports the tool {name}")
            elif RANK[theirs] > RANK[mine] and mine not in TOOLS:
                bad.append(f"{module} imports {name} (upward: {mine} → {theirs})")
            elif (mine, theirs) in SIBLINGS:
                bad.append(f"{module} imports {name} ({mine} and {theirs} stay apart)")
    return sorted(set(bad))


def test_imports_go_one_way() -> None:
    bad = violations()
    assert not bad, "\n".join(bad)


def test_the_rules_catch_what_they_forbid(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The checker itself: a planted upward import, Prefect in a task and a product import
    of the sandbox are each reported."""
    for folder in ("config", "connectors", "tasks", "flows", "firebreak"):
        (tmp_path / folder).mkdir()
    (tmp_path / "tasks" / "bad.py").write_text("import prefect\nfrom firebreak.flows import steps\n")
    (tmp_path / "connectors" / "bad.py").write_text("from firebreak.sandbox.server import SandboxServer\n"
                                                    "from firebreak.store.db import Database\n")
    (tmp_path / "firebreak" / "cli").mkdir()
    (tmp_path / "firebreak" / "cli" / "ok.py").write_text("from firebreak.sandbox.server import SandboxServer\n")
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    found = "\n".join(violations())
    assert "firebreak.tasks.bad imports prefect" in found
    assert "firebreak.tasks.bad imports firebreak.flows" in found
    assert "firebreak.connectors.bad imports the tool firebreak.sandbox.server" in found
    assert "firebreak.connectors.bad imports firebreak.store.db (firebreak.connectors and firebreak.store stay apart)" in found
    assert "firebreak.cli.ok" not in found


def test_every_package_folder_is_listed_in_pyproject() -> None:
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = set()
    for pkg, folder in {**FOLDERS, "firebreak": "firebreak"}.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            found.add(".".join([pkg, *rel.parts]))
    assert found <= listed, f"add to pyproject packages: {sorted(found - listed)}"


def test_the_architecture_picture_names_every_module() -> None:
    """docs/ARCHITECTURE.md draws the layers as they are: every module is named in it."""
    import re

    doc = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    layers = doc[doc.index("## Layers"):doc.index("## The chain")]
    missing = []
    for module, path in _modules():
        if path.stem == "__init__":
            continue
        if not re.search(rf"(?<![\w/]){re.escape(path.stem)}(?!\w)", layers):
            missing.append(str(path.relative_to(ROOT)))
    assert not missing, f"name these in the Layers section of docs/ARCHITECTURE.md: {missing}"

"""Every package the code imports is declared in pyproject.toml, not merely installed because
something else pulls it in (a transitive dependency can vanish in any upgrade).

Product code (and the tools beside it) may use `project.dependencies`; the scripts and the
tests may also use the `train` and `test` extras. Read with ast, nothing is imported.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ["firebreak", "config", "connectors", "tasks", "flows"]
SCRIPTS = {p.stem for p in (ROOT / "scripts").glob("*.py")}  # the scripts import each other, and tests them


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared(*extras: str) -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = list(project["dependencies"]) + [s for e in extras for s in project["optional-dependencies"][e]]
    return {_norm(re.split(r"[<>=!~\[;\s]", s, maxsplit=1)[0]) for s in specs}


def _third_party_imports(folders: list[str]) -> dict[str, set[str]]:
    """top-level module -> files that import it"""
    found: dict[str, set[str]] = {}
    for folder in folders:
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names = [node.module]
                for name in names:
                    top = name.split(".")[0]
                    if top in sys.stdlib_module_names or top in ("firebreak", "tests", "__future__") or top in SCRIPTS:
                        continue
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def _undeclared(folders: list[str], allowed: set[str]) -> list[str]:
    dists = packages_distributions()
    bad = []
    for module, files in sorted(_third_party_imports(folders).items()):
        names = {_norm(d) for d in dists.get(module, [module])}
        if not names & allowed:
            bad.append(f"{module} ({', '.join(sorted(names))}) imported by {', '.join(sorted(files)[:3])}")
    return bad


def test_product_imports_are_declared_dependencies() -> None:
    assert _undeclared(PRODUCT, _declared()) == []


def test_script_imports_are_declared_with_the_train_extra() -> None:
    assert _undeclared(["scripts"], _declared("train", "test")) == []


def test_test_imports_are_declared_with_the_test_extra() -> None:
    # The training scripts' own tests need what the scripts need.
    assert _undeclared(["tests"], _declared("test", "train")) == []

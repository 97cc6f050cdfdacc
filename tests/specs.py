"""Where the platforms' published API specs are: the one place every test that reads them asks.

The specs live outside the repository, in the workspace's `shared/specs` beside the checkout
(`../shared/specs`), or wherever `FIREBREAK_SPECS` points. A checkout without them (a fresh
laptop) skips what needs them, saying so; CI sets `FIREBREAK_REQUIRE_SPECS=1`, and there a
missing spec fails the run instead of passing unchecked.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SPECS = Path(os.environ.get("FIREBREAK_SPECS") or ROOT.parent / "shared" / "specs")
REQUIRED = os.environ.get("FIREBREAK_REQUIRE_SPECS", "").strip() == "1"


def available() -> bool:
    return SPECS.is_dir()


def missing_message(path: Path) -> str:
    return (f"API spec {path} is missing: put the platforms' specs in {ROOT.parent / 'shared' / 'specs'} "
            "or set FIREBREAK_SPECS to their folder")


def spec_path(*parts: str) -> Path:
    """A spec file or folder; skips the test without it, or fails it where specs are required."""
    path = SPECS.joinpath(*parts)
    if not path.exists():
        if REQUIRED:
            pytest.fail(missing_message(path), pytrace=False)
        pytest.skip(missing_message(path))
    return path

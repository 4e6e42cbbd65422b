"""Each demo family trains once per test session (quick mode); every test of that family
reads the same run. Families whose optional packages are missing are skipped here and
fail in CI (see tests/conftest.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from attnscope.demos import DemoResult, get_family, list_families

NAMES = list(list_families())


def require(name: str) -> None:
    for package in get_family(name).requires:
        if importlib.util.find_spec(package) is None:
            pytest.skip(f"demo {name!r} needs {package}")


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """``demo_run(name) -> (out, result)`` of the trained quick run, made once."""
    runs: dict[str, tuple[Path, DemoResult]] = {}

    def get(name: str) -> tuple[Path, DemoResult]:
        require(name)
        if name not in runs:
            out = tmp_path_factory.mktemp(name)
            runs[name] = out, get_family(name).run(out, seed=0, quick=True)
        return runs[name]

    return get

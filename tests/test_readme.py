"""The README, executed: every Python and shell block runs (tiny models, see
tests/readme_world.py) so a stale line fails here; blocks that need a model path or
minutes of runtime carry a visible ``# readme-test: skip (reason)`` first line and are
reported as skipped with that reason. Its development map is checked against the tree,
and the recipes it gives name files that exist."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.readme_runner import blocks

pytest.importorskip("lightning")
pytest.importorskip("torch_geometric")
pytest.importorskip("zarr")
pytest.importorskip("matplotlib")

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")
BLOCKS = blocks(README)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("readme") / "results.json"
    proc = subprocess.run([sys.executable, "-m", "tests.readme_runner", str(REPO / "README.md"),
                           str(out)], cwd=REPO, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {r["line"]: r for r in json.loads(out.read_text(encoding="utf-8"))}


@pytest.mark.parametrize("block", BLOCKS, ids=[f"{b.lang}-line{b.line}" for b in BLOCKS])
def test_readme_block_runs(block, results):
    if block.skip:
        pytest.skip(f"README line {block.line}: {block.skip}")
    error = results[block.line]["error"]
    assert error is None, f"README.md line {block.line} ({block.lang}) failed:\n{error}"


def test_most_blocks_run_and_every_skip_says_why():
    assert all(b.skip and b.skip != "no reason given" for b in BLOCKS if b.skip)
    run = [b for b in BLOCKS if not b.skip]
    assert len(run) >= 12 and len(run) > len(BLOCKS) / 2


def _map() -> list[str]:
    """The lines of the development map (the fenced block that starts ``attnscope/``)."""
    found = re.search(r"^```\n(attnscope/\n.*?)^```", README, re.S | re.M)
    assert found, "the README has no development map block starting with 'attnscope/'"
    return found.group(1).splitlines()


def test_development_map_matches_the_tree():
    root = REPO / "attnscope"
    lines = _map()
    # top-level entries: names at the start of map lines, or after two spaces on them
    top: set[str] = set()
    current = ""
    named: list[tuple[str, str]] = []  # (package the line describes, file named on it)
    for line in lines[1:]:
        if line.startswith("  ") and not line.startswith("   ") and line.strip():
            first = line.split()[0]
            current = first.rstrip("/") if first.endswith("/") else ""
        if line.startswith(("tests/", "benchmarks/")):
            current = "-"
        if current == "-":
            continue
        if current == "" or line.startswith("  ") and not line.startswith("   "):
            # a second column of top-level entries: "  maps.py  ...   errors.py  ..."
            top.update(re.findall(r"(?:^  |\s\s)(\w+\.py|\w+/)(?=\s\s|$)", line))
        for name in re.findall(r"(?<![\w./])(\w+\.py|\w+/)(?=[\s(,;:]|$)", line):
            if name != current + "/" and name not in top:
                named.append((current, name))
    actual = {p.name for p in root.glob("*.py")} | {
        p.name + "/" for p in root.iterdir() if (p / "__init__.py").is_file()}
    assert top == actual, f"map misses {sorted(actual - top)}, names absent {sorted(top - actual)}"
    for package, name in named:
        where = root / package if package else root
        hits = list(where.rglob(name.rstrip("/"))) if name.endswith("/") else list(
            where.rglob(name))
        assert hits, f"the map names {name!r} under {package or 'attnscope'}/, not in the tree"


@pytest.mark.parametrize("what", ["add a strategy", "add a store form", "add a figure"])
def test_recipe_names_files_that_exist(what):
    line = next((ln for ln in README.splitlines() if ln.lower().startswith(f"- **{what}")),
                None)
    assert line, f"the README's development section has no '{what}' recipe line"
    paths = re.findall(r"`((?:attnscope|tests)/[\w./]+)`", line)
    assert paths, f"the '{what}' recipe names no file"
    for p in paths:
        assert (REPO / p).exists(), f"the '{what}' recipe names {p}, which does not exist"

"""Installs with pip: every third-party import is a base dependency or declared in the
extra attnscope/_extras.py names for it, the README says which extras each command
needs, and a command whose extra is missing prints one line naming it (exit code 2)."""

from __future__ import annotations

import ast
import contextlib
import re
import subprocess
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

import attnscope
from attnscope._extras import COMMANDS, EXTRAS

tomllib = pytest.importorskip("tomllib")  # Python 3.11+
REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
BASE = {"torch", "numpy", "typer", "rich"}


def _requirement_names(reqs: list[str]) -> set[str]:
    return {re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0].lower().replace("_", "-") for r in reqs}


def third_party_imports() -> set[str]:
    found = set()
    for path in Path(attnscope.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.add(node.module.split(".")[0])
    return {m for m in found if m not in sys.stdlib_module_names
            and m not in ("attnscope", "__future__")}


def test_every_direct_import_is_declared_in_its_extra():
    extras = PYPROJECT["project"]["optional-dependencies"]
    base = _requirement_names(PYPROJECT["project"]["dependencies"])
    dists = packages_distributions()
    for module in sorted(third_party_imports()):
        names = {d.lower().replace("_", "-") for d in dists.get(module, [module])}
        if module in BASE:
            assert names & base, f"{module} is a base dependency missing from pyproject"
            continue
        assert module in EXTRAS, f"attnscope imports {module!r}: add it to _extras.EXTRAS"
        extra = EXTRAS[module]
        assert names & _requirement_names(extras[extra]), \
            f"{module!r} ({names}) is not declared in the [{extra}] extra of pyproject.toml"


def test_the_readme_names_each_commands_extras():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    rows = {}
    for line in readme.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 2 and "attnscope" in cells[0] and cells[1] != "extras":
            extras = re.match(r"`([\w,]+)`|none", cells[1])
            if extras is None:
                continue
            for cmd in re.findall(r"`(?:attnscope )?([a-z]+)`", cells[0]):
                rows[cmd] = set(extras.group(1).split(",")) if extras.group(1) else set()
    for command, needed in COMMANDS.items():
        assert rows.get(command) == set(needed), \
            f"README's extras table: `{command}` should need {sorted(needed) or 'none'}"


# installed as sitecustomize in a child's PYTHONPATH: the modules named in
# ATTNSCOPE_TEST_HIDE look uninstalled there and in every process it starts
HIDER = """
import importlib.util, os, sys
hidden = set(filter(None, os.environ.get("ATTNSCOPE_TEST_HIDE", "").split(",")))
class Hider:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in hidden:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Hider())
real = importlib.util.find_spec
importlib.util.find_spec = lambda n, p=None: None if n.split(".")[0] in hidden else real(n, p)
"""


def run_hidden(hidden: set[str], args: list[str], tmp_path: Path, timeout: int = 120):
    """``python *args`` with ``hidden`` modules looking uninstalled, as in a venv that
    lacks them."""
    site = tmp_path / "hider"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(HIDER, encoding="utf-8")
    env = {"PYTHONPATH": f"{site}:{REPO}", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
           "ATTNSCOPE_TEST_HIDE": ",".join(sorted(hidden)), "MPLBACKEND": "Agg"}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True,
                          cwd=tmp_path, timeout=timeout, env=env)


def cli_hidden(hidden: set[str], argv: list[str], tmp_path: Path):
    return run_hidden(hidden, ["-m", "attnscope.cli", *argv], tmp_path)


@pytest.mark.parametrize("argv, says", [
    (["demo", "--list"], "attnscope demo needs the store, plot, lightning extras: "
                         "pip install 'attnscope[store,plot,lightning]'"),
    (["plot", "runs/attn"], "pip install 'attnscope[store,plot]'"),
    (["stats", "runs/attn"], "attnscope stats needs the store extra: "
                             "pip install 'attnscope[store]'"),
])
def test_a_command_without_its_extra_is_one_line_and_exit_2(argv, says, tmp_path):
    """Every optional module hidden, as in a venv with no extras."""
    proc = cli_hidden(set(EXTRAS), argv, tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0] and "Traceback" not in proc.stderr


def test_missing_extra_line_and_a_command_that_needs_no_extra(tmp_path):
    """An import missing past the up-front check gets the same line (cli.main prints it);
    a module of the user's own code is not ours to name."""
    from attnscope._extras import missing_extra

    err = ModuleNotFoundError("No module named 'networkx'", name="networkx")
    assert missing_extra(err) == ("this needs the optional package 'networkx', which is not "
                                  "installed: pip install 'attnscope[plot]'")
    assert missing_extra(ModuleNotFoundError("x", name="mypkg")) is None  # the user's own
    strategies = cli_hidden(set(EXTRAS), ["strategies"], tmp_path)
    assert strategies.returncode == 0 and "sdpa" in strategies.stdout  # needs no extra


def _dependency_closure(requirements: list[str]) -> set[str]:
    """Normalised names of the distributions ``requirements`` pull in, transitively
    (markers evaluated for this interpreter; optional extras of dependencies left out)."""
    from importlib.metadata import PackageNotFoundError, requires

    from packaging.requirements import Requirement

    seen: set[str] = set()
    todo = list(requirements)
    while todo:
        req = Requirement(todo.pop())
        name = req.name.lower().replace("_", "-")
        if name in seen or (req.marker and not req.marker.evaluate({"extra": ""})):
            continue
        seen.add(name)
        with contextlib.suppress(PackageNotFoundError):
            todo.extend(requires(req.name) or [])
    return seen


def hidden_without(extra: str) -> set[str]:
    """The optional modules a venv with only ``extra`` (or ``"none"``) lacks: those of
    the other extras, unless the extra's own dependencies install them."""
    extras = PYPROJECT["project"]["optional-dependencies"]
    pulled = _dependency_closure(extras.get(extra, []))
    dists = packages_distributions()
    return {m for m, e in EXTRAS.items() if e != extra
            and not {d.lower().replace("_", "-") for d in dists.get(m, [m])} & pulled}


@pytest.mark.parametrize("extra", ["none", "store", "plot", "hf", "pyg", "lightning"])
def test_each_extra_alone_runs_its_smoke_commands(extra, tmp_path):
    """What `.ci/extras` checks in fresh venvs, here with the other extras hidden: an
    import of one extra must not reach a module of another (a plot of an in-memory map
    must not need zarr)."""
    hidden = hidden_without(extra)
    assert extra == "none" or hidden, "nothing hidden: the check would be vacuous"
    probe = run_hidden(hidden, ["-c", "import zarr"], tmp_path)
    assert (probe.returncode != 0) == ("zarr" in hidden), probe.stderr
    proc = run_hidden(hidden, [str(REPO / ".ci" / "extras_smoke.py"), extra], tmp_path,
                      timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"extras smoke [{extra}]: ok" in proc.stdout

"""The package's layering, executed: each rule of the README's development map is a test
over the import statements of every module (function-level imports included).

- the store never imports the capture engine (``attnscope.capturing``);
- no package imports another package's private module (``attnscope.plot._matrix`` is
  for ``attnscope.plot`` and the packages inside it);
- no core module imports the package root (``import attnscope``, ``from attnscope import
  capture``: circular, and it drags the whole API in) or the applications (the root
  itself names ``translate`` lazily; tests/test_public_api.py checks ``import attnscope``
  loads no application);
- no module is over 12 KB.

``KNOWN`` lists what still breaks a rule in an area another change owns; an entry that
no longer applies fails too, so the list only shrinks.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import attnscope

ROOT = Path(attnscope.__file__).parent
APPS = ("attnscope.text", "attnscope.hierarchy", "attnscope.demos", "attnscope.evaluate",
        "attnscope.cli")
MAX_BYTES = 12 * 1024

# (rule, module, what it imports or its size) -> who fixes it
KNOWN: dict[tuple[str, str, str], str] = {
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_of(path: Path) -> str:
    name = module_name(path)
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def is_module(dotted: str) -> bool:
    """Whether ``attnscope.x.y`` is a module or package of this tree."""
    rel = Path(*dotted.split(".")[1:]) if "." in dotted else Path()
    return (ROOT / rel).with_suffix(".py").is_file() or (ROOT / rel / "__init__.py").is_file()


def owner(dotted: str) -> str:
    """The longest prefix of ``dotted`` that is a module (drops imported names)."""
    parts = dotted.split(".")
    return next((".".join(parts[:i]) for i in range(len(parts), 0, -1)
                 if is_module(".".join(parts[:i]))), dotted)


def imports(path: Path) -> list[tuple[str, bool]]:
    """Every dotted name imported, and whether it is the ``a`` of ``from a import b``
    (``from a import b`` gives ``(a, True)`` and ``(a.b, False)``)."""
    out: list[tuple[str, bool]] = []
    pkg = package_of(path)
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(a.name, False) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                base = ".".join(up + ([node.module] if node.module else []))
            out += [(base, True)] + [(f"{base}.{a.name}", False) for a in node.names]
    return out


MODULES = sorted(ROOT.rglob("*.py"))
CORE = [p for p in MODULES if not module_name(p).startswith(APPS)]


def violations() -> set[tuple[str, str, str]]:
    found: set[tuple[str, str, str]] = set()
    for path in MODULES:
        me, pkg = module_name(path), package_of(path)
        core = not me.startswith(APPS)
        if path.stat().st_size > MAX_BYTES:
            found.add(("size", me, ""))
        for name, from_base in imports(path):
            if not name.startswith("attnscope"):
                continue
            if me.startswith("attnscope.store") and name.startswith("attnscope.capturing"):
                found.add(("store-capturing", me, owner(name)))
            parts = name.split(".")
            for i, part in enumerate(parts[1:], 1):
                dotted = ".".join(parts[: i + 1])
                if part.startswith("_") and not part.startswith("__") and is_module(dotted):
                    home = ".".join(parts[:i])
                    if not (pkg == home or pkg.startswith(home + ".")):
                        found.add(("private", me, dotted))
                    break
            if core and me != "attnscope" and not from_base and (
                    name == "attnscope" or (name.startswith("attnscope.") and name.count(".") == 1
                                            and not is_module(name))):
                found.add(("root", me, name))
            if core and me != "attnscope" and name.startswith(APPS):
                found.add(("apps", me, owner(name)))
    return found


FOUND = violations()


@pytest.mark.parametrize("rule", ["store-capturing", "private", "root", "apps", "size"])
def test_layering_rule(rule):
    new = sorted(v for v in FOUND if v[0] == rule and v not in KNOWN)
    assert not new, f"{rule} rule broken (see tests/test_layering.py): {new}"


def test_known_exceptions_still_apply():
    gone = sorted(k for k in KNOWN if k not in FOUND)
    assert not gone, f"fixed, remove from KNOWN in tests/test_layering.py: {gone}"


def test_the_checker_sees_each_kind_of_break(tmp_path, monkeypatch):
    """The rules above must be able to fail: a fake tree with one break of each."""
    fake = tmp_path / "attnscope"
    for rel, text in {
        "__init__.py": "", "store/__init__.py": "from attnscope.capturing import api\n",
        "capturing/__init__.py": "", "capturing/api.py": "", "plot/__init__.py": "",
        "plot/_matrix.py": "", "viewer/__init__.py": "",
        "viewer/render.py": "def f():\n    from attnscope.plot._matrix import x\n",
        "analysis/__init__.py": "import attnscope\nfrom attnscope import capture\n",
        "sources/__init__.py": "from attnscope import plot\nfrom attnscope.text import t\n",
        "text/__init__.py": "", "big.py": "#" * (MAX_BYTES + 1),
    }.items():
        (fake / rel).parent.mkdir(parents=True, exist_ok=True)
        (fake / rel).write_text(text)
    globals_ = globals()
    monkeypatch.setitem(globals_, "ROOT", fake)
    monkeypatch.setitem(globals_, "MODULES", sorted(fake.rglob("*.py")))
    got = violations()
    assert ("store-capturing", "attnscope.store", "attnscope.capturing.api") in got
    assert ("private", "attnscope.viewer.render", "attnscope.plot._matrix") in got
    assert ("root", "attnscope.analysis", "attnscope") in got
    assert ("root", "attnscope.analysis", "attnscope.capture") in got
    assert ("apps", "attnscope.sources", "attnscope.text") in got
    assert ("size", "attnscope.big", "") in got
    assert not any(v[1] == "attnscope.sources" and v[0] == "root" for v in got)  # a subpackage

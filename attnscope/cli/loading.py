"""Load what a command needs from what a user types: ``pkg.module:factory`` specs, local
Hugging Face model directories, and checkpoints.

Example:
    >>> model = load_model("mypkg.models:make_net", checkpoint="runs/best.ckpt")
    >>> loader = make_loader(load_data("mypkg.data:test_set"), batch_size=64)  # attnscope.data

Every failure a user can fix raises a :class:`LoadError` whose message is one line;
checkpoints are read by :mod:`attnscope.cli.checkpoints`.
Left out on purpose: downloads (Hugging Face models must already be on disk).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from attnscope.cli.checkpoints import apply_state_dict, read_checkpoint
from attnscope.cli.errors import LoadError, one_line


def import_object(spec: str, what: str = "factory") -> Any:
    """The object named by ``pkg.module:name`` (or ``path/file.py:name``); the current
    directory is searched first, as ``python -m`` does (only while importing)."""
    module_name, sep, attr = spec.rpartition(":")
    if not sep or not module_name or not attr:
        raise LoadError(f"{what} {spec!r} must look like 'pkg.module:{what}'")
    try:
        with _search_path(os.getcwd()):
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
        raise LoadError(f"importing {module_name!r} failed: {err}") from err
    except LoadError:
        raise
    except Exception as err:  # the user's module raised: keep its traceback as the cause
        raise LoadError(f"importing {module_name!r} failed: {one_line(err)}") from err
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
        with _search_path(os.getcwd()):  # factories may import lazily
            return obj()
    except Exception as err:
        raise LoadError(f"calling {spec}() failed: {one_line(err)}") from err


def load_model(spec: str | os.PathLike, checkpoint: str | os.PathLike | None = None,
               trust: bool = False, generate: bool = False, causal: bool = False) -> nn.Module:
    """A model in eval mode, from ``pkg.module:factory`` or a Hugging Face directory,
    with ``checkpoint`` (a state_dict, Lightning or ``model_state_dict`` file) applied."""
    path = Path(spec)
    if ":" not in str(spec) or path.is_dir():
        if not path.is_dir():
            raise LoadError(f"model {str(spec)!r} is neither 'pkg.module:factory' nor a "
                            "directory holding a Hugging Face model")
        model = _load_hf(path, generate, causal)
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
        raise LoadError(f"cannot load a tokenizer from {str(path)!r}: {one_line(err)}"
                        ) from err


def _load_hf(path: Path, generate: bool = False, causal: bool = False) -> nn.Module:
    """A local Hugging Face model: sequence classifiers get their head, ``causal`` asks
    for the language-model head of a decoder-only model, others AutoModel."""
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
        if causal and getattr(config, "is_encoder_decoder", False):
            raise LoadError(f"{str(path)!r} holds an encoder-decoder "
                            f"({type(config).__name__}); generate takes decoder-only "
                            "models, use `attnscope translate` for this one")
        auto = (transformers.AutoModelForCausalLM if causal
                else transformers.AutoModelForSequenceClassification if heads
                else transformers.AutoModelForSeq2SeqLM
                if generate and getattr(config, "is_encoder_decoder", False)
                else transformers.AutoModel)
        return auto.from_pretrained(path, local_files_only=True)
    except LoadError:
        raise
    except Exception as err:
        raise LoadError(f"cannot load the Hugging Face model in {str(path)!r}: "
                        f"{one_line(err)}") from err
    finally:
        if bars:
            transformers.utils.logging.enable_progress_bar()


def _import_file(file: Path) -> Any:
    """Run a ``.py`` file as a module. It is registered in ``sys.modules`` only while it
    runs (dataclasses and pickling look it up there); its folder is searched for
    sibling modules, as ``python file.py`` would."""
    if not file.is_file():
        raise LoadError(f"cannot import {str(file)!r}: no such file")
    spec = importlib.util.spec_from_file_location(file.stem, file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    previous = sys.modules.get(file.stem)
    sys.modules[file.stem] = module
    try:
        with _search_path(str(file.resolve().parent)):
            spec.loader.exec_module(module)
    finally:
        if previous is None:
            sys.modules.pop(file.stem, None)
        else:
            sys.modules[file.stem] = previous
    return module


@contextlib.contextmanager
def _search_path(folder: str) -> Iterator[None]:
    """``folder`` first on ``sys.path`` inside the block; removed again afterwards."""
    if folder in sys.path:
        yield
        return
    sys.path.insert(0, folder)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(folder)

"""Where ``attnscope translate`` gets its sentences: ``--input``, a text file (one per
line) or the first N examples of a data set (strings, token-id tensors, ``(src, tgt)``
pairs or dicts with a ``text``/``source``/``input_ids`` field)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from attnscope.text.protocol import TextModelError

FIELDS = ("text", "source", "sentence", "src", "input_ids")


def read_lines(path: str | Path) -> list[str]:
    """Non-empty lines of a UTF-8 text file, stripped."""
    file = Path(path)
    if not file.is_file():
        raise TextModelError(f"sentence file {str(file)!r} does not exist")
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise TextModelError(f"sentence file {str(file)!r} is not UTF-8 text") from None
    found = [ln.strip() for ln in lines if ln.strip()]
    if not found:
        raise TextModelError(f"sentence file {str(file)!r} holds no sentences")
    return found


def dataset_inputs(data: Any, n: int, pad_id: int | None = None) -> list[str | list[int]]:
    """The first ``n`` sources of a Dataset or DataLoader, padding dropped."""
    out: list[str | list[int]] = []
    items = iter(data)
    while len(out) < n:
        try:
            item = next(items)
        except StopIteration:
            break
        out += _sources(item, pad_id)
    if not out:
        raise TextModelError("the data set is empty")
    return out[:n]


def _sources(item: Any, pad_id: int | None) -> list[str | list[int]]:
    if isinstance(item, str):
        return [item]
    if isinstance(item, Mapping):
        for key in FIELDS:
            if key in item:
                return _sources(item[key], pad_id)
        raise TextModelError(f"data items are dicts without a source field ({', '.join(FIELDS)}"
                             f"); keys: {', '.join(map(str, list(item)[:6]))}")
    if isinstance(item, (tuple, list)) and item and not isinstance(item[0], int):
        return _sources(item[0], pad_id)  # (source, target, ...)
    if isinstance(item, (list, tuple)):
        item = torch.tensor(item)
    if isinstance(item, torch.Tensor) and item.dtype in (torch.int64, torch.int32, torch.int16):
        rows = item.reshape(-1, item.shape[-1]) if item.ndim else item.reshape(1, 1)
        return [[int(t) for t in r.tolist() if pad_id is None or int(t) != pad_id]
                for r in rows]
    raise TextModelError(f"cannot read a sentence from a data item of type "
                         f"{type(item).__name__}; use strings, token-id tensors, (source, "
                         "target) pairs or dicts with a 'text' field")

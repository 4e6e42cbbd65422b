"""Which captured module is which level of a hierarchical sequence model (attention
across epochs, across channels within an epoch, over time within an epoch and
channel), and its per-call maps grouped back into ``(epoch, channel)`` structure.

Such models run their lower levels in a loop (``for e: for c: temporal(x[:, e, c])``)
or fold the loop into the batch (``x.reshape(b * e * c, ...)``), or both (loop over
epochs, channels folded). Either way a module yields ``items`` maps per sample:
``calls per model call x (rows per call / samples per model call)``. The epoch level
has 1 item, the channel level one per epoch, the temporal level one per (epoch,
channel). Calls are taken as the outer loop and folded rows as the inner one, in
sample-major order (``reshape(b, e, c, ...)``) -- what the usual code does.

Left out on purpose: more than three levels, and levels whose loop order is channel
then epoch (pass ``--epoch-module`` etc. and reorder the input instead).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

import numpy as np

from attnscope.errors import SelectionError
from attnscope.maps import Recording
from attnscope.stitching import stitch

LEVELS = ("epoch", "channel", "temporal")


@dataclass
class Level:
    """One level of the hierarchy, for all samples.

    Attributes:
        weights: ``epoch``: ``(sample, head, epoch, epoch)``; ``channel``: ``(sample,
            epoch, head, query, channel)``; ``temporal``: ``(sample, epoch, channel, head,
            query, time)``; NaN where calls differed in size.
        calls: calls of the module per model call; ``folded``: rows per sample per call.
    """

    level: str
    module: str
    weights: np.ndarray
    calls: int
    folded: int
    chosen_by: str

    def describe(self) -> str:
        heads, q, k = self.weights.shape[-3:]
        grid = {"epoch": "", "channel": f" -> {self.weights.shape[1]} epochs",
                "temporal": f" -> {self.weights.shape[1]} epochs x "
                            f"{self.weights.shape[2]} channels"}[self.level]
        how = f"{self.calls} call{'s' if self.calls != 1 else ''} per model call"
        how += f" x {self.folded} folded in the batch" if self.folded > 1 else ""
        shape = f"1-D over {k}" if q == 1 else f"{q}x{k}"
        return (f"{self.level} level: {self.module!r} ({self.chosen_by}; {how}{grid}; "
                f"{heads} head{'s' if heads != 1 else ''}, {shape})")


@dataclass
class _Found:
    module: str
    calls: int
    folded: int
    query: int
    key: int


def capture_globs(globs: dict[str, str | None]) -> list[str] | None:
    """``include`` for the capture: None (the default capture) when no level is named;
    the globs when all are; else every module (``include`` narrows the capture, and the
    levels left to detection may sit anywhere), so softmax anywhere counts and levels
    are then told apart by their call structure."""
    given = [g for g in globs.values() if g]
    if not given:
        return None
    return given if len(given) == len(LEVELS) else ["*"]


def _survey(rec: Recording, batch: int) -> dict[str, _Found]:
    """Calls and folded rows per sample of every dense module, from the first model call."""
    out = {}
    for name in rec.modules:
        maps = [m for m in rec.maps if m.module == name and m.forward_index == 0]
        if not maps or maps[0].is_graph:
            continue
        rows = int(maps[0].weights.shape[0])
        if rows % batch:
            continue  # not a per-sample structure this module can be grouped into
        q, k = (int(v) for v in maps[0].weights.shape[2:4])
        out[name] = _Found(name, len(maps), rows // batch, q, k)
    return out


def _by_glob(found: dict[str, _Found], level: str, glob: str) -> _Found:
    hits = [f for n, f in found.items() if fnmatchcase(n, glob)]
    if not hits:
        raise SelectionError(f"--{level}-module {glob!r} matches none of the captured "
                             f"modules: {', '.join(found) or 'none'}")
    return hits[-1]  # several layers: the last (deepest) one


def find_levels(rec: Any, batch: int, globs: dict[str, str | None],
                num_epochs: int | None = None, num_channels: int | None = None, *,
                found: dict[str, _Found] | None = None, step: str | None = None
                ) -> dict[str, Level]:
    """Assign modules to levels (globs first, then by their call structure) and group
    their maps. ``batch``: samples in the first model call; ``num_epochs`` /
    ``num_channels``: from the input when it is ``(batch, epoch, channel, time)``.
    ``rec`` may be a store, with ``found`` from :func:`survey_store` and its ``step``."""
    found = _survey(rec, batch) if found is None else found
    picked: dict[str, tuple[_Found, str]] = {}
    for level in LEVELS:
        if globs.get(level):
            picked[level] = (_by_glob(found, level, str(globs[level])),
                             f"--{level}-module {globs[level]}")
    used = {f.module for f, _ in picked.values()}
    free = [f for f in found.values() if f.module not in used]
    if "epoch" not in picked:  # one square map per sample
        square = [f for f in free if f.calls * f.folded == 1 and f.query == f.key > 1
                  and (num_epochs is None or f.key == num_epochs)]
        if square:
            picked["epoch"] = (square[-1], "one square map per sample")
    epochs = picked["epoch"][0].key if "epoch" in picked else num_epochs
    if not epochs:
        raise SelectionError("found no attention across epochs (one square map per sample); "
                             "name it with --epoch-module, captured: " + ", ".join(found))
    free = [f for f in free if f.module != picked["epoch"][0].module]
    items = lambda f: f.calls * f.folded  # noqa: E731
    if "channel" not in picked:
        per_epoch = [f for f in free if items(f) == epochs]
        if per_epoch:
            picked["channel"] = (per_epoch[-1], f"{epochs} maps per sample, one per epoch")
    channels = num_channels or (picked["channel"][0].key if "channel" in picked and
                                picked["channel"][0].query == 1 else None)
    if "temporal" not in picked:
        many = [f for f in free if "channel" not in picked or f.module !=
                picked["channel"][0].module]
        per_cell = [f for f in many if items(f) > epochs and items(f) % epochs == 0
                    and (channels is None or items(f) == epochs * channels)]
        if per_cell:
            picked["temporal"] = (per_cell[-1], f"{items(per_cell[-1])} maps per sample, "
                                  "one per (epoch, channel)")
    if channels is None and "temporal" in picked:
        channels = items(picked["temporal"][0]) // epochs
    return {level: _group(rec, f, level, how, epochs, channels, step)
            for level, (f, how) in sorted(picked.items(), key=lambda kv: LEVELS.index(kv[0]))}


def survey_store(store: Any, step: str) -> tuple[dict[str, _Found], int]:
    """What :func:`_survey` finds in a recording, from a store's ``step``: calls are the
    entries ``name``, ``name[1]`` ...; samples are the step's ``sample_ids`` (or the
    fewest rows any module has), folded rows the rest."""
    from attnscope.entries import base_name, is_effective

    calls: dict[str, list[str]] = {}
    for entry in store.modules:
        if is_effective(entry) or not store.segments(entry, step):
            continue
        if store.module_info(entry).get("graph"):
            continue
        calls.setdefault(base_name(entry), []).append(entry)
    rows = {name: store.num_samples(entries[0], step) for name, entries in calls.items()}
    ids = store.labels(step).get("sample_ids")
    batch = len(ids) if isinstance(ids, list) and ids else min(rows.values(), default=0)
    found = {}
    for name, entries in calls.items():
        if not batch or rows[name] % batch:
            continue
        q, k = (int(v) for v in store.read(entries[0], step, samples=[0]).shape[-2:])
        found[name] = _Found(name, len(entries), rows[name] // batch, q, k)
    return found, batch


def _group(rec: Any, f: _Found, level: str, how: str, epochs: int,
           channels: int | None, step: str | None = None) -> Level:
    if isinstance(rec, Recording):
        w = stitch(rec, f.module, along="call", steps="call").float().numpy()
    else:  # a store: one entry per call
        w = np.asarray(stitch(rec, f.module, along="call", step=step), dtype=np.float32)
    # (rows, calls, head, query, key); rows = samples x folded, sample-major
    rows, calls = w.shape[:2]
    n = rows // f.folded
    w = w.reshape(n, f.folded, calls, *w.shape[2:]).swapaxes(1, 2)
    w = w.reshape(n, calls * f.folded, *w.shape[3:])  # (sample, item, head, query, key)
    want = {"epoch": 1, "channel": epochs, "temporal": epochs * (channels or 0)}[level]
    if w.shape[1] != want:
        grid = {"epoch": "1", "channel": f"{epochs} epochs",
                "temporal": f"{epochs} epochs x {channels} channels"}[level]
        raise SelectionError(f"{level} level {f.module!r} gives {w.shape[1]} maps per sample, "
                             f"expected {want} ({grid}); check --{level}-module")
    if level == "epoch":
        return Level(level, f.module, w[:, 0], f.calls, f.folded, how)
    shape = (epochs,) if level == "channel" else (epochs, int(channels or 0))
    return Level(level, f.module, w.reshape(n, *shape, *w.shape[2:]), f.calls, f.folded, how)


def check_names(names: Sequence[str] | None, channels: int | None) -> None:
    if names and channels and len(names) != channels:
        raise SelectionError(f"--channel-names gives {len(names)} names but the model has "
                             f"{channels} channels")

"""The store's schema in one place: file names, step names, and the typed metadata that
every reader validates on open.

Everything read from disk is checked here before any other code trusts it, so damaged or
fuzzed JSON gives one :class:`StoreError` naming the file and field, never a raw
``KeyError``/``TypeError`` somewhere later, and no size from disk is used unchecked.

Step labels (``open_writer(..., labels=)``), by key; a list is used on an axis only when
its length equals the axis (:mod:`attnscope.sources.labels` resolves them):

- ``tokens``: both axes of self-attention; ``query_tokens`` / ``key_tokens``: one axis.
- ``source_tokens``: the encoder's input (encoder self-attention, cross-attention keys);
  ``target_tokens``: the decoder's (decoder self-attention, cross-attention queries).
- ``time_steps``, ``channels``, ``classes`` (``true->pred``), ``nodes`` (graph maps).
- ``sample_<key>``: one list per stored sample of the step, in sample order, for labels
  that change from sample to sample (``sample_source_tokens``, ``sample_epoch_labels``).

Example:
    >>> epoch_step(3), TEST_STEP
    ('epoch_003', 'test')
    >>> meta = validate_meta(json.loads(path.read_text()), path)   # StoreMeta
"""

from __future__ import annotations

import re
from typing import Any, NotRequired, TypedDict

from attnscope.entries import entry_name
from attnscope.store.errors import StoreError

__all__ = ["DTYPES", "FORMAT", "JOURNAL_FILE", "META_FILE", "TEST_STEP", "VERSION",
           "JournalEntry", "MapRecord", "ModuleInfo", "StepInfo", "StoreMeta", "check_step",
           "entry_name", "epoch_of", "epoch_step", "jsonable", "step_dir_name",
           "validate_entry", "validate_meta"]

FORMAT = "attnscope-store"
VERSION = 1
META_FILE = "attnscope.json"  # model, module registry, steps (see StoreMeta)
JOURNAL_FILE = "journal.jsonl"  # one line per committed batch (see JournalEntry)
TEST_STEP = "test"
DTYPES = ("float16", "float32")
MAX_DIM = 1 << 31  # no axis of an attention map is longer; larger is damage
_STEP_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
_DIR_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}(~[0-9]{1,6})?$")
_KEY_RE = re.compile(r"^m[0-9]{4,8}$")
_SEG_RE = re.compile(r"^b[0-9]{6,9}(\.[0-9]{1,6})?$")
_EPOCH_RE = re.compile(r"^epoch_([0-9]{3,})$")
_FORM_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


class ModuleInfo(TypedDict):
    """One stored entry (``name``, ``name[2]``, ``name@effective``) in ``modules``."""

    key: str  # directory of the entry inside each step, ``m0003``
    module: str
    call_index: int
    kind: str
    graph: bool
    num_heads: int
    heads: list[int] | None
    reduced: str | None
    source: str | None
    effective: bool
    axes: NotRequired[list[str]]  # graph entries: dims between sample and (edge, head)


class StepInfo(TypedDict, total=False):
    """One step in ``steps``; ``dir`` names its directory when an overwrite moved it."""

    dtype: str
    keepbits: int | None
    labels: dict[str, Any]
    heads: dict[str, dict[str, Any]]
    dir: str
    notes: list[str]  # what the capture did not record, and why (one line each)


class StoreMeta(TypedDict):
    """The whole of ``attnscope.json``."""

    format: str
    version: int
    created: float | None
    model: str | None
    keepbits: int | None
    modules: dict[str, ModuleInfo]
    steps: dict[str, StepInfo]


class MapRecord(TypedDict, total=False):
    """One entry's segment of a committed batch, inside a journal line. ``form`` names
    the segment form (:mod:`attnscope.store.forms`); records written before forms were
    named lack it, and readers infer it from the segment's files."""

    key: str
    seg: str
    forward: int
    rows: list[int] | None
    shape: list[int]
    form: str


class JournalEntry(TypedDict):
    batch: int
    time: float
    maps: list[MapRecord]


# -- step names ---------------------------------------------------------------------------

def epoch_step(epoch: int) -> str:
    """Step name of a training epoch: ``epoch_003``."""
    return f"epoch_{int(epoch):03d}"


def epoch_of(step: str) -> int | None:
    """The epoch number of an ``epoch_003`` step, else None."""
    found = _EPOCH_RE.match(step)
    return int(found.group(1)) if found else None


def check_step(step: Any) -> str:
    """Step names become directory names, so keep them to a safe alphabet."""
    if not isinstance(step, str) or not _STEP_RE.match(step):
        raise StoreError(
            f"invalid step name {step!r}; use letters, digits, '_', '.', '-' (e.g. 'epoch_003')"
        )
    return step


# -- validation ---------------------------------------------------------------------------

class _Check:
    """Type checks that name the file and the field that failed."""

    def __init__(self, what: str, fix: str) -> None:
        self.what, self.fix = what, fix

    def fail(self, field: str, why: str) -> StoreError:
        return StoreError(f"{self.what} is damaged: {field} {why}; {self.fix}")

    def of(self, value: Any, types: type | tuple[type, ...], field: str) -> Any:
        if isinstance(value, bool) and bool not in (types if isinstance(types, tuple)
                                                    else (types,)):
            raise self.fail(field, f"is {value!r}, not a {_names(types)}")
        if not isinstance(value, types):
            raise self.fail(field, f"is a {type(value).__name__}, not a {_names(types)}")
        return value

    def count(self, value: Any, field: str, low: int = 0, high: int = MAX_DIM) -> int:
        self.of(value, int, field)
        if not low <= value <= high:
            raise self.fail(field, f"= {value} is outside {low}..{high}")
        return value

    def ints(self, value: Any, field: str, optional: bool = True) -> list[int] | None:
        if value is None and optional:
            return None
        for i, v in enumerate(self.of(value, list, field)):
            self.count(v, f"{field}[{i}]")
        return value

    def text(self, value: Any, field: str, optional: bool = False,
             pattern: re.Pattern | None = None) -> str | None:
        if value is None and optional:
            return None
        self.of(value, str, field)
        if pattern is not None and not pattern.match(value):
            raise self.fail(field, f"= {value[:60]!r} is not a valid name")
        return value


def _names(types: type | tuple[type, ...]) -> str:
    return " or ".join(t.__name__ for t in (types if isinstance(types, tuple) else (types,)))


def validate_meta(obj: Any, where: Any) -> StoreMeta:
    """``obj`` (parsed ``attnscope.json``) checked field by field; returned as is."""
    c = _Check(f"'{where}'", "restore it or re-capture into a new store")
    c.of(obj, dict, "the document")
    if obj.get("format") != FORMAT:
        raise StoreError(f"'{where}' is not attnscope store metadata; is this the right "
                         "directory?")
    version = c.count(obj.get("version"), "version", 0, 1 << 20)
    if version > VERSION:
        raise StoreError(f"'{where}' has store format version {version}; upgrade attnscope "
                         "to read it")
    if obj.get("created") is not None:
        c.of(obj["created"], (int, float), "created")
    c.text(obj.get("model"), "model", optional=True)
    if obj.get("keepbits") is not None:
        c.count(obj["keepbits"], "keepbits", 0, 23)
    keys: set[str] = set()
    for name, info in c.of(obj.get("modules"), dict, "modules").items():
        f = f"modules[{name[:60]!r}]"
        c.of(info, dict, f)
        key = c.text(info.get("key"), f + ".key", pattern=_KEY_RE)
        if key in keys:
            raise c.fail(f + ".key", f"{key} is used by two entries")
        keys.add(key)
        c.text(info.get("module"), f + ".module")
        c.count(info.get("call_index"), f + ".call_index")
        c.text(info.get("kind"), f + ".kind")
        c.of(info.get("graph"), bool, f + ".graph")
        c.count(info.get("num_heads"), f + ".num_heads")
        c.ints(info.get("heads"), f + ".heads")
        c.text(info.get("reduced"), f + ".reduced", optional=True)
        c.text(info.get("source"), f + ".source", optional=True)
        c.of(info.get("effective", False), bool, f + ".effective")
        for i, axis in enumerate(c.of(info.get("axes", []), list, f + ".axes")):
            c.text(axis, f"{f}.axes[{i}]")  # graph dims between sample and (edge, head)
    for step, info in c.of(obj.get("steps"), dict, "steps").items():
        f = f"steps[{step[:60]!r}]"
        c.text(step, f"step name {step[:60]!r}", pattern=_STEP_RE)
        c.of(info, dict, f)
        if "dtype" in info and info["dtype"] not in DTYPES:
            raise c.fail(f + ".dtype", f"= {info['dtype']!r} is not one of {DTYPES}")
        if info.get("keepbits") is not None:
            c.count(info["keepbits"], f + ".keepbits", 0, 23)
        c.of(info.get("labels", {}), dict, f + ".labels")
        for entry, heads in c.of(info.get("heads", {}), dict, f + ".heads").items():
            g = f"{f}.heads[{entry[:60]!r}]"
            c.of(heads, dict, g)
            c.count(heads.get("num_heads", 0), g + ".num_heads")
            c.ints(heads.get("heads"), g + ".heads")
        if "dir" in info:
            c.text(info["dir"], f + ".dir", pattern=_DIR_RE)
        for note in c.of(info.get("notes", []), list, f + ".notes"):
            c.text(note, f + ".notes")
    return obj


def validate_entry(obj: Any, step: str, line: int) -> JournalEntry:
    """One parsed journal line of ``step``, checked; shapes are bounded by :data:`MAX_DIM`."""
    c = _Check(f"the journal of step {step!r} (line {line})",
               f"re-capture step {step!r} (or delete it)")
    c.of(obj, dict, "the line")
    c.count(obj.get("batch"), "batch", 0, 10**9)
    for i, rec in enumerate(c.of(obj.get("maps"), list, "maps")):
        f = f"maps[{i}]"
        c.of(rec, dict, f)
        c.text(rec.get("key"), f + ".key", pattern=_KEY_RE)
        c.text(rec.get("seg"), f + ".seg", pattern=_SEG_RE)
        shape = c.ints(rec.get("shape"), f + ".shape", optional=False)
        if not 2 <= len(shape) <= 6:
            raise c.fail(f + ".shape", f"{shape} has {len(shape)} axes")
        c.text(rec.get("form"), f + ".form", optional=True, pattern=_FORM_RE)
        rows = c.ints(rec.get("rows"), f + ".rows")
        if rows is not None and len(rows) != shape[0]:
            raise c.fail(f + ".rows", f"names {len(rows)} samples but the shape {shape} has "
                         f"{shape[0]}")
    return obj


def step_dir_name(meta: StoreMeta, step: str) -> str:
    """Directory of ``step`` under ``steps/``: its own name unless an overwrite moved it."""
    return meta["steps"].get(step, {}).get("dir", step)


def jsonable(value: Any, field: str = "labels") -> Any:
    """``value`` as plain JSON types: NumPy arrays/scalars and tensors become lists and
    numbers, so labels are refused (or accepted) when a writer opens, not at a commit."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, dict):
        return {str(k): jsonable(v, f"{field}[{k!r}]") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v, f"{field}[{i}]") for i, v in enumerate(value)]
    tolist = getattr(value, "tolist", None)  # numpy arrays and scalars, torch tensors
    if callable(tolist):
        return jsonable(tolist(), field)
    raise StoreError(f"{field} holds a {type(value).__name__}; labels must be strings, "
                     "numbers, lists or dicts of them (NumPy arrays and tensors are fine)")

"""What a writer's ``form=`` policy (``probs``, ``qk``, ``qk16``) records about each
entry: the form its maps were stored in (``module_info(name)["form"]``), and a ``note``
(plus one warning) whenever a ``qk`` store had to keep a map as probabilities because
its queries and keys were not reachable, or the layout check rebuilt it so its inputs
would not match the recorded map (``m.qk_note``).
"""

from __future__ import annotations

from typing import Any

from attnscope import notes
from attnscope.maps import AttentionMap
from attnscope.store.forms import SegmentForm

WANTS = {"probs": "probs", "qk": "qk", "qk16": "qk"}  # policy -> what entries should hold


def note_form(info: dict[str, Any], policy: str, form: SegmentForm, m: AttentionMap,
              warned: set[str], name: str) -> None:
    """Set the entry ``name``'s ``form`` in its metadata ``info`` on its first map, and
    a ``note`` whenever the map is held otherwise than the policy asked."""
    wanted = WANTS.get(policy, "probs")
    if wanted == form.holds == "probs":
        return
    info.setdefault("form", form.holds)
    if form.holds == wanted or wanted == "probs":  # a map that brought only its inputs
        return
    why = getattr(m, "qk_note", None) or (f"queries and keys are not reachable for "
                                          f"{m.source or 'this'} maps")
    note = f"{why}; stored as {form.holds if form.holds != 'probs' else 'probabilities'}"
    if info["form"] != form.holds:  # earlier calls were stored as the policy asked
        note = f"some calls: {note}"
    if note not in info.get("note", ""):
        info["note"] = f"{info['note']} | {note}" if info.get("note") else note
    if name not in warned:
        warned.add(name)
        notes.note(f"{name!r}: {note}")  # one line, no source path


def merge_notes(modules: dict[str, Any], later: dict[str, dict[str, Any]]) -> bool:
    """Add the notes gathered (by :func:`note_form`) for entries registered by an earlier
    commit to their module metadata; whether anything changed."""
    changed = False
    for name, extra in later.items():
        info, note = modules.get(name), extra.get("note")
        if info is None or not note:
            continue
        if info.get("form") != extra.get("form") and not note.startswith("some calls"):
            note = f"some calls: {note}"
        if note not in info.get("note", ""):
            info["note"] = f"{info['note']} | {note}" if info.get("note") else note
            changed = True
    return changed

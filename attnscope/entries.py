"""Entry names: how one module's maps are named in a store, a recording's listing and a
figure title. This module is the only place that builds or parses them.

* a module called once per forward: its qualified name, ``encoder.layers.0.self_attn``;
* called several times per forward (a loop over epochs or generated tokens): the first
  call keeps the plain name, later ones are ``name[1]``, ``name[2]`` ... (call index);
* the matrix that really multiplies V when probabilities are changed after the softmax
  (a relative-position bias, tsai's ConvTranPlus): ``name@effective``.

Example:
    >>> entry_name("dec.cross_attn", 3)
    'dec.cross_attn[3]'
    >>> parse_entry("enc.attn[2]@effective")
    ('enc.attn', 2, True)
"""

from __future__ import annotations

import re

EFFECTIVE = "@effective"
_ENTRY = re.compile(r"(?P<module>.*?)(?:\[(?P<call>\d+)\])?(?P<effective>@effective)?")


def entry_name(module: str, call_index: int = 0, effective: bool = False) -> str:
    """``module``, ``module[call_index]`` (after the first call), then ``@effective``."""
    name = module if call_index == 0 else f"{module}[{call_index}]"
    return f"{name}{EFFECTIVE}" if effective else name


def parse_entry(entry: str) -> tuple[str, int, bool]:
    """``(module, call_index, effective)`` of an entry name."""
    found = _ENTRY.fullmatch(entry)
    assert found is not None  # every string matches: all parts are optional
    return found["module"], int(found["call"] or 0), found["effective"] is not None


def base_name(entry: str) -> str:
    """The module an entry came from (``"attn[2]"``, ``"attn@effective"`` -> ``"attn"``)."""
    return parse_entry(entry)[0]


def is_effective(entry: str) -> bool:
    """Whether the entry holds an effective matrix rather than softmax probabilities."""
    return entry.endswith(EFFECTIVE)

"""What a diagnostic reports (:class:`Finding`, one class for ``attnscope stats`` and
translate's per-example checks) and the thresholds it is judged by (:class:`Thresholds`,
relative to what uniform or random attention gives; see
:mod:`attnscope.analysis.baselines`)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

DIFFUSE_KEYS = 4  # rows with fewer allowed keys are not judged diffuse
NOTES = ("zero_rows", "sink")  # usual in healthy models: reported, not warned about


@dataclass(frozen=True)
class Thresholds:
    """Relative thresholds (see :mod:`attnscope.analysis.baselines`): each is a lift over
    what uniform attention over the row's allowed keys gives (0 = uniform, 1 = all),
    except ``diffuse`` (0 = random rows, 1 = uniform) and ``padding`` (a fraction of
    the mass uniform attention would put on the padding)."""

    diffuse: float = 0.6  # closer to uniform than to random rows
    dead: float = 0.9  # lift of the one key every query picks
    repetition: float = 0.5  # lift of the mass on earlier copies of the query's token
    padding: float = 0.05  # mass on padding / what uniform attention puts there
    positional: float = 0.6  # lift of the mass on the first and last key
    share: float = 0.5  # head-level patterns: fraction of samples that must show them


@dataclass
class Finding:
    """One diagnostic: a pattern in one head (``head`` None: a whole map) of one
    entry/step, or one check of one example (``flagged`` False: checked, not found).
    ``value`` is the raw number (e.g. mass on the first/last key), ``uniform`` what
    uniform attention gives there, ``threshold`` where it fires."""

    code: str
    module: str = ""
    step: str = ""
    head: int | None = None
    samples: int = 1  # how many samples show it
    of: int = 1  # out of how many
    value: float = float("nan")  # mean size of the effect where it shows
    message: str = field(default="")
    flagged: bool = True
    uniform: float | None = None
    threshold: float | None = None

    @property
    def severity(self) -> str:
        """``note`` for patterns usual in healthy models, else ``warning``."""
        return "note" if self.code in NOTES else "warning"

    def line(self) -> str:
        where = f"{self.module}" + (f" @ {self.step}" if self.step else "")
        head = "" if self.head is None else f" head {self.head}"
        base = "" if self.uniform is None else f", uniform {self.uniform:.3g}"
        return (f"{where}{head}: {self.code} ({self.samples}/{self.of} samples, "
                f"{self.value:.3g}{base}) - {self.message}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: NaN becomes None; ``check`` repeats ``code`` (the key translate's
        diagnostics.json has always used)."""
        out = {k: None if isinstance(v, float) and math.isnan(v) else v
               for k, v in asdict(self).items()}
        out["check"], out["severity"] = self.code, self.severity
        return out


__all__ = ["DIFFUSE_KEYS", "NOTES", "Finding", "Thresholds"]

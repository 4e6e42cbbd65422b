"""What uniform and random attention give, so every diagnostic threshold is relative.

A number such as "64% of the mass on the first/last key" means nothing without the
number of keys: over 4 keys uniform attention already puts 50% there. Each diagnostic
therefore scores a row by its **lift** over uniform attention on the keys that row could
see (:func:`~attnscope.analysis.metrics.allowed_keys`):

    lift = (x - u) / (1 - u)      0 = what uniform attention gives, 1 = all of it

and fires when the mean lift over rows crosses its threshold. Diffuseness is measured
against random attention instead (rows drawn uniformly from the simplex, Dirichlet(1)):
``(H/Hmax - r_k) / (1 - r_k)`` is 0 for a typical random row over ``k`` keys and 1 for
a uniform one, with ``r_k = (harmonic(k) - 1) / log k`` its expected normalised entropy.
"""

from __future__ import annotations

import numpy as np

from attnscope.analysis.kinds import row_mean


def random_norm_entropy(k: np.ndarray) -> np.ndarray:
    """Expected normalised entropy of a Dirichlet(1) row over ``k`` keys (NaN for k<2):
    ``(H_k - 1) / log k``, H_k the k-th harmonic number."""
    k = np.asarray(k, dtype=np.float64)
    kmax = int(np.nanmax(k)) if k.size else 1
    harmonic = np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, max(kmax, 1) + 1))])
    idx = np.clip(np.nan_to_num(k), 0, kmax).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(k >= 2, (harmonic[idx] - 1.0) / np.log(np.maximum(k, 2)), np.nan)


def lift(x: np.ndarray, u: np.ndarray) -> np.ndarray:
    """``(x - u) / (1 - u)``: 0 at the uniform value ``u``, 1 at the maximum; NaN where
    uniform attention already gives everything (``u >= 1``)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(u < 1 - 1e-9, (x - u) / (1 - u), np.nan)


def mass_lift(z: np.ndarray, on: np.ndarray, allowed: np.ndarray, rows: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mass on the keys ``on`` (broadcastable to ``(..., query, key)``) per (sample,
    head): ``(mass, uniform mass, mean lift)``, each the mean over ``rows``."""
    on = np.broadcast_to(on, z.shape)
    mass = (z * on).sum(-1)
    k = allowed.sum(-1)
    u = np.where(k > 0, (allowed & on).sum(-1) / np.maximum(k, 1), 1.0)
    scored = rows & (u < 1 - 1e-9)
    return row_mean(mass, rows), row_mean(u, rows), row_mean(lift(mass, u), scored)


def diffuse_score(norm_entropy_rows: np.ndarray, keys: np.ndarray, rows: np.ndarray
                  ) -> np.ndarray:
    """Mean over rows of ``(H/Hmax - r_k) / (1 - r_k)``: 0 = random, 1 = uniform."""
    r = random_norm_entropy(keys)
    with np.errstate(invalid="ignore", divide="ignore"):
        score = (norm_entropy_rows - r) / (1 - r)
    return row_mean(np.nan_to_num(score, nan=0.0), rows & (keys >= 2))

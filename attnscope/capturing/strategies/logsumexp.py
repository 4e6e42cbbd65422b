"""Attention normalised as ``exp(scores - logsumexp(scores))`` instead of a softmax call
(Hugging Face Reformer's ``LSHSelfAttention`` and ``LocalSelfAttention``).

No softmax call reveals these probabilities, and LSH attention computes them over
hashed, sorted buckets and several hash rounds, so they are not a ``(query, key)`` map of
the call (Reformer's own ``output_attentions`` holds them per chunk, in hash-sorted
order). This strategy records nothing: it leaves a note naming the module and the
layout, so the attention is never silently missing. Deliberately left out: unsorting
LSH buckets and hash rounds into a dense map.
"""

from __future__ import annotations

import torch

from attnscope.capturing import aliases
from attnscope.capturing.registry import Strategy, register_strategy
from attnscope.capturing.session import CaptureSession

_SITES = aliases.sites("logsumexp", torch, torch.Tensor)


@register_strategy
class LogsumexpStrategy(Strategy):
    name = "logsumexp"
    description = ("notes attention normalised as exp(scores - logsumexp) (Reformer LSH and "
                   "local attention): not recorded, a note names it")

    def handlers(self, session: CaptureSession):
        def on_logsumexp(func, args, kwargs):
            out = func(*args, **kwargs)
            owner = session.owner()
            if owner is None or owner.name in session.claimed or \
                    not session.wants(owner, session.attention_named()):
                return out
            cls = type(owner.module).__name__
            session.note(
                f"{owner.name or '<root>'}: {cls} normalises its scores as exp(scores - "
                "logsumexp(scores)) over chunks of hashed, sorted buckets (Reformer LSH or "
                "chunked local attention), not with a softmax call: no (query, key) map of "
                "the call exists, not recorded")
            return out

        return aliases.table(_SITES, on_logsumexp)

"""Hugging Face BigBird block-sparse attention, rebuilt as one dense map.

BigBird computes five softmaxes over gathered key blocks (first and last query blocks
over every key; the others over a sliding window of three blocks, the first and last
key blocks, and random blocks). None of them is ``(query, key)`` of the call, so the
softmax strategy would refuse them. This strategy wraps the module's
``bigbird_block_sparse_attention`` and ``torch_gather_b2`` on the instance (restored on
exit) to get q, k, the masks and the random block indices the call really used, then
rebuilds the dense probabilities: a key block gathered twice for one query block (in
eval the random blocks are block 0, the first global block again) gets the mass of both
slots, so ``map @ V`` is the layer's output. Key blocks never gathered for a query block
are exact zeros, recorded as masked (``-0.0``) like any key the model did not see.

Why not HF's own ``output_attentions`` map: it writes duplicated slots over each other,
so its rows sum to less than one in eval (measured 0.80-0.83 on a random tiny model).
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import torch
from torch import nn

from attnscope._memory import check_map
from attnscope.capturing.registry import Removable, Strategy, register_strategy
from attnscope.capturing.session import CaptureSession
from attnscope.capturing.strategies.returns import _MethodPatch

_PENALTY = -10000.0  # what BigBird adds for a masked slot (exp of it is exactly 0)


def block_counts(rand: torch.Tensor, blocks: int) -> tuple[torch.Tensor, torch.Tensor]:
    """How often each key block is a slot of each query block: ``(global, gated)``, both
    ``(batch, head, q_block, k_block)``. ``gated`` slots (middle sliding windows, random
    blocks) are dropped for padded queries, as BigBird's band and random masks do;
    ``rand``: ``(batch, head, blocks - 2, r)`` random key blocks of query blocks 1..-2."""
    b, h = rand.shape[:2]
    glob = rand.new_zeros(b, h, blocks, blocks, dtype=torch.float32)
    gated = torch.zeros_like(glob)
    glob[:, :, 0] = glob[:, :, -1] = 1  # first and last query blocks see every key
    ones = torch.ones(rand.shape, dtype=torch.float32, device=rand.device)
    gated[:, :, 1:-1].scatter_add_(-1, rand.long(), ones)  # random blocks
    for i in range(1, blocks - 1):
        glob[:, :, i, 0] += 1
        glob[:, :, i, -1] += 1
        window = range(max(i - 1, 0), min(i + 2, blocks))
        if i in (1, blocks - 2):  # their sliding blocks are masked by the keys only
            for j in (0, 1, 2) if i == 1 else (blocks - 3, blocks - 2, blocks - 1):
                glob[:, :, i, j] += 1
            glob[:, :, i, 0 if i == 1 else -1] -= 1  # (the global block is one of them)
        else:
            for j in window:
                gated[:, :, i, j] += 1
    return glob, gated


def dense_probabilities(q: torch.Tensor, k: torch.Tensor, rand: torch.Tensor,
                        from_mask: torch.Tensor, to_mask: torch.Tensor,
                        block: int) -> torch.Tensor:
    """``(batch, head, query, key)`` probabilities of one block-sparse call."""
    n, blocks = q.shape[-2], q.shape[-2] // block
    glob, gated = block_counts(rand, blocks)
    queries = from_mask.reshape(q.shape[0], 1, n, 1).float()  # 1 = real query
    counts = glob.repeat_interleave(block, 2).repeat_interleave(block, 3) + \
        gated.repeat_interleave(block, 2).repeat_interleave(block, 3) * queries
    scores = (q.float() @ k.float().transpose(-1, -2)) / math.sqrt(q.shape[-1])
    scores = scores + (1.0 - to_mask.reshape(k.shape[0], 1, 1, n).float()) * _PENALTY
    return torch.softmax(scores + counts.log(), dim=-1)  # log(0): never gathered


def _method(module: nn.Module, name: str) -> bool:
    """Whether ``module`` has a callable ``name``, looked up on its class and instance
    dict: ``getattr`` on an ``nn.Module`` raises and catches for every missing name,
    which costs a millisecond per capture over a model's modules."""
    return callable(module.__dict__.get(name, getattr(type(module), name, None)))


@register_strategy
class BigBirdStrategy(Strategy):
    name = "bigbird"
    description = "Hugging Face BigBird block-sparse attention, rebuilt dense"

    def attach(self, session: CaptureSession) -> list[Removable]:
        handles: list[Removable] = []
        for module, name in session.names.items():
            if _method(module, "bigbird_block_sparse_attention") and \
                    _method(module, "torch_gather_b2") and name not in session.claimed:
                session.claimed.add(name)
                handles += self._patch(session, module)
        return handles

    @staticmethod
    def _patch(session: CaptureSession, module: nn.Module) -> list[Removable]:
        gather = module.torch_gather_b2
        attend = module.bigbird_block_sparse_attention
        signature = inspect.signature(attend)
        seen: dict[str, Any] = {}

        def gathered(params: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
            seen.setdefault("rand", indices)  # the key blocks; values use the same
            return gather(params, indices)

        def attention(*args: Any, **kwargs: Any) -> Any:
            seen.clear()
            out = attend(*args, **kwargs)
            frame = session.frame_of(module)
            if frame is None or not session.wants(frame, True):
                return out
            bound = signature.bind(*args, **kwargs).arguments
            rand = seen.get("rand")
            if rand is None or rand.ndim != 4:
                session.note(f"{frame.name}: BigBird block-sparse attention not recorded: "
                             "its random key blocks were not seen")
                return out
            q, k = bound["query_layer"], bound["key_layer"]
            masks = bound["from_mask"], bound["to_mask"]
            samples = session.sample_rows(q.shape[0])  # only what the selection keeps
            heads = session.selection.head_index(q.shape[1], frame.name)
            if samples == []:
                return out
            if samples is not None:
                q, k, rand = q[samples], k[samples], rand[samples]
                masks = tuple(m[samples] for m in masks)
            if heads is not None:
                q, k, rand = q[:, heads], k[:, heads], rand[:, heads]
            check_map(frame.name, (*q.shape[:3], k.shape[-2]), 4)
            with torch.no_grad():
                dense = dense_probabilities(q, k, rand, *masks, int(bound["from_block_size"]))
            session.record(frame, dense, kind="self", source="bigbird", selected=True,
                           heads=heads, samples=samples, owned=True)
            return out

        return [_MethodPatch(module, "torch_gather_b2", gathered),
                _MethodPatch(module, "bigbird_block_sparse_attention", attention)]

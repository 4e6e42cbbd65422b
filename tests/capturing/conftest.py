from __future__ import annotations

import sys

import pytest
import torch
from torch import nn


def hook_state(model: nn.Module) -> dict:
    """Every hook dict of every module (PyG's included), instance attributes, the torch
    function mode stack and the module globals a capture may patch."""
    state: dict = {"modes": torch._C._len_torch_function_stack()}
    for name, module in model.named_modules():
        for attr, value in vars(module).items():
            if "hook" in attr and isinstance(value, dict):
                state[(name, attr)] = tuple(value.keys())
        state[(name, "attrs")] = tuple(sorted(vars(module)))
        state[(name, "training")] = module.training
        cls_module = sys.modules.get(type(module).__module__)
        if cls_module is not None:
            state[(name, "globals")] = {k: id(v) for k, v in vars(cls_module).items()
                                        if "softmax" in k.lower()}
    return state


@pytest.fixture
def assert_untouched():
    """Call with a model before and after: fails if anything capture added remains."""
    snapshots: dict[int, dict] = {}

    def check(model: nn.Module) -> None:
        now = hook_state(model)
        before = snapshots.setdefault(id(model), now)
        assert now == before

    return check

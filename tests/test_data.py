"""The batch protocol (attnscope.data): inputs, target and batch size of every batch
shape the library reads, and loaders that keep data-set order."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from attnscope.data import (
    batch_size,
    dataset_length,
    first_rows,
    make_loader,
    model_inputs,
    split_batch,
)
from attnscope.errors import DataError


def test_batches_of_every_shape():
    x, y = torch.ones(2, 3), torch.zeros(2)
    assert split_batch([x, y]) == ((x,), {}, y)
    args, kwargs, target = split_batch((x, x, y))
    assert len(args) == 2 and target is y
    args, kwargs, target = split_batch({"input_ids": x, "labels": y})
    assert args == () and list(kwargs) == ["input_ids"] and target is y
    with pytest.raises(DataError, match="inputs and a target"):
        split_batch(x)
    with pytest.raises(DataError, match="target under one of"):
        split_batch({"input_ids": x})


def test_model_inputs_leave_the_target_out():
    x, y = torch.ones(3, 2), torch.zeros(3)
    assert model_inputs(x) == ((x,), {})
    assert model_inputs((x, y)) == ((x,), {})
    assert model_inputs([x]) == ((x,), {})
    assert model_inputs({"input_ids": x, "labels": y}) == ((), {"input_ids": x})
    with pytest.raises(DataError, match="cannot call a model"):
        model_inputs("text")


@pytest.mark.parametrize("batch, size", [
    (torch.ones(5, 2), 5),
    ((torch.ones(4, 2), torch.zeros(4)), 4),
    ({"labels": torch.zeros(7), "input_ids": torch.ones(6, 3)}, 6),  # target left out
    (((torch.ones(3, 2), torch.ones(3, 1)), torch.zeros(3)), 3),  # nested inputs
    ((torch.tensor(1.0), torch.ones(2, 2)), 2),  # scalars are not the batch axis
    ("no tensor", 1),
])
def test_batch_size(batch, size):
    assert batch_size(batch) == size


def test_first_rows_cuts_tensors_only():
    x = torch.arange(10).reshape(5, 2)
    args, kwargs = first_rows((x, "mode"), {"mask": torch.ones(5), "scale": 2.0}, 2)
    assert args[0].shape == (2, 2) and args[1] == "mode"
    assert kwargs["mask"].shape == (2,) and kwargs["scale"] == 2.0


def test_loaders_keep_data_set_order():
    data = TensorDataset(torch.arange(10.0), torch.arange(10.0))
    assert [int(b[0][0]) for b in make_loader(data, 4)] == [0, 4, 8]
    shuffled = DataLoader(data, batch_size=3, shuffle=True)
    ordered = make_loader(shuffled)
    assert [int(b[0][0]) for b in ordered] == [0, 3, 6, 9]
    assert dataset_length(ordered) == 10
    assert dataset_length(iter([1, 2])) is None

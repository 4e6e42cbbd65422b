"""The capture context's options: filters, selection, errors, declared weights, call
indices, wrapped models."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import attnscope
from tests.capturing import models
from tests.capturing.cases import _decoder, _encoder


def test_classifier_softmax_is_not_attention_and_the_error_says_what_to_do():
    model = models.Classifier()
    with pytest.raises(attnscope.NoAttentionFoundError) as err, attnscope.capture(model):
        model(torch.randn(2, 4))
    message = str(err.value)
    assert "Classifier" in message and "include=" in message
    assert "\n" not in message


def test_include_makes_any_module_softmax_attention():
    model = models.Classifier()
    with attnscope.capture(model, include=["Classifier"]) as rec:
        probs = model(torch.randn(2, 4))
    assert rec.maps[0].module == "" and rec.maps[0].weights.shape == (2, 1, 1, 3)
    assert torch.allclose(rec.maps[0].weights[:, 0, 0], probs)


def test_model_that_never_ran_says_so():
    with pytest.raises(attnscope.NoAttentionFoundError, match="never called"), \
            attnscope.capture(models.Classifier()):
        pass


def test_include_pattern_that_matches_nothing_lists_real_names():
    model, _ = _encoder()
    with pytest.raises(attnscope.SelectionError, match="layers.0"):
        with attnscope.capture(model, include="encoder.layer.*"):
            pass


def test_include_and_exclude_select_modules_and_subtrees():
    model, inputs = _decoder()
    with torch.no_grad(), attnscope.capture(model, include="layers.1") as rec:
        model(*inputs)
    assert rec.modules == ["layers.1.self_attn", "layers.1.multihead_attn"]
    with torch.no_grad(), attnscope.capture(model, exclude=["*.self_attn"]) as rec:
        model(*inputs)
    assert rec.modules == ["layers.0.multihead_attn", "layers.1.multihead_attn"]
    assert [m.kind for m in rec] == ["cross", "cross"]
    with torch.no_grad(), attnscope.capture(model, include="MultiheadAttention",
                                             kinds={"*.multihead_attn": "self"}) as rec:
        model(*inputs)
    assert [m.kind for m in rec] == ["self"] * 4


def test_selection_of_heads_samples_mean_and_dtype():
    model, inputs = _encoder()
    with torch.no_grad():
        with attnscope.capture(model) as full:
            model(*inputs)
        with attnscope.capture(model, heads=[2, 0], samples=[2, 0], dtype="float16") as part:
            model(*inputs)
        with attnscope.capture(model, heads=[1, 3], reduce="mean") as mean:
            model(*inputs)
    for f, p, m in zip(full, part, mean):
        assert p.weights.dtype == torch.float16 and p.heads == [2, 0] and p.samples == [2, 0]
        assert torch.allclose(p.weights.float(), f.weights[[2, 0]][:, [2, 0]], atol=1e-3)
        assert m.weights.shape[1] == 1 and m.reduced == "mean"
        assert torch.allclose(m.weights, f.weights[:, [1, 3]].mean(1, keepdim=True), atol=1e-6)


def test_sdpa_selection_is_computed_not_sliced():
    torch.manual_seed(0)
    model = models.GQAModel().eval()
    x = torch.randn(3, 6, 32)
    with torch.no_grad():
        with attnscope.capture(model) as full:
            out_full = model(x)
        with attnscope.capture(model, heads=3, samples=[1, 7]) as part:
            out_part = model(x)
    assert torch.allclose(out_full, out_part, atol=1e-6)
    for f, p in zip(full, part):
        assert p.weights.shape == (1, 1, 6, 6)  # sample 7 does not exist in a batch of 3
        assert torch.allclose(p.weights, f.weights[[1]][:, [3]], atol=1e-6)


def test_a_head_that_does_not_exist_is_a_clear_error():
    model, inputs = _encoder()
    with pytest.raises(attnscope.SelectionError, match="4 heads"), attnscope.capture(
            model, heads=[9]):
        model(*inputs)


def test_modules_called_in_a_loop_get_call_indices():
    torch.manual_seed(0)
    model = models.EpochLoop().eval()
    x = torch.randn(2, 3, 5, 8)
    with torch.no_grad(), attnscope.capture(model) as rec:
        model(x)
        model(x[:1])
    assert [(m.forward_index, m.call_index) for m in rec] == [
        (0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    for m in rec.maps[:3]:
        _, w = model.epoch_attention(x[:, m.call_index], x[:, m.call_index],
                                     x[:, m.call_index], average_attn_weights=False)
        assert torch.allclose(m.weights, w, atol=2e-6)


def test_relative_bias_gives_an_effective_matrix_but_dropout_does_not():
    torch.manual_seed(0)
    convtran = models.ConvTranLike().eval()
    annotated = models.AnnotatedEncoder().train()
    with attnscope.capture(convtran) as rec_bias:
        convtran(torch.randn(2, 3, 12))
    with attnscope.capture(annotated) as rec_drop:
        annotated(torch.randn(2, 6, 16), torch.ones(2, 1, 6))
    assert rec_bias.maps[0].effective is not None
    assert all(m.effective is None for m in rec_drop)
    assert rec_bias.modules == ["attention_layer"]  # the classifier softmax is not attention


class HandBuilt(nn.Module):
    """Weights by exp()/sum(), kept on the module and returned."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(4, 4)

    def normalize(self, scores: torch.Tensor) -> torch.Tensor:
        e = scores.exp()
        return e / e.sum(-1, keepdim=True)

    def forward(self, x):
        weights = self.normalize(self.proj(x) @ x.transpose(-1, -2))
        self.last_weights = weights
        return weights @ x, weights


class Holder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.block = HandBuilt()

    def forward(self, x):
        return self.block(x)[0]


@pytest.mark.parametrize("options", [
    {"returns": {"block": 1}},
    {"returns": {"HandBuilt": "last_weights"}},
    {"methods": {"block": "normalize"}},
])
def test_declared_weights(options, assert_untouched):
    torch.manual_seed(0)
    model = Holder()
    x = torch.randn(2, 5, 4)
    assert_untouched(model)
    with attnscope.capture(model, **options) as rec:
        model(x)
    _, expected = model.block(x)
    assert len(rec) == 1 and rec.maps[0].weights.shape == (2, 1, 5, 5)
    assert torch.allclose(rec.maps[0].weights[:, 0], expected, atol=1e-6)
    del model.block.last_weights
    assert_untouched(model)


def test_declared_method_must_exist():
    with pytest.raises(attnscope.SelectionError, match="no method"), attnscope.capture(
            Holder(), methods={"block": "missing"}):
        pass


def test_compiled_and_data_parallel_models_are_captured_on_the_inner_module():
    model, inputs = _encoder()
    compiled = torch.compile(model)
    wrapped = nn.DataParallel(model)
    with torch.no_grad():
        for outer in (compiled, wrapped):
            with attnscope.capture(outer) as rec:
                outer(*inputs)
            assert rec.modules == ["layers.0.self_attn", "layers.1.self_attn"]


def test_strategies_can_be_listed_and_restricted():
    names = attnscope.list_strategies()
    assert {"sdpa", "mha", "softmax", "pyg", "returns"} <= set(names)
    model, inputs = _encoder()
    with pytest.raises(attnscope.NoAttentionFoundError), attnscope.capture(
            model, strategies=["sdpa"]):
        model(*inputs)
    with pytest.raises(attnscope.SelectionError, match="unknown strategies"):
        with attnscope.capture(model, strategies=["nope"]):
            pass


def test_register_a_new_strategy_in_one_class():
    from attnscope.capturing.registry import _REGISTRY

    @attnscope.register_strategy
    class Logits(attnscope.Strategy):
        name = "test-sigmoid"
        description = "sigmoid gates as one-key attention"

        def handlers(self, session):
            def on_sigmoid(func, args, kwargs):
                out = func(*args, **kwargs)
                owner = session.owner()
                if owner is not None:
                    session.record(owner, out[:, None, None, :], kind="self", source=self.name)
                return out

            return {torch.sigmoid: on_sigmoid}

    try:
        model = nn.Sequential(nn.Linear(3, 4))
        x = torch.randn(2, 3)
        with pytest.raises(attnscope.NoAttentionFoundError), attnscope.capture(
                model, strategies=["test-sigmoid"]):
            torch.sigmoid(model(x))  # called outside the model: no owner, no map
        gate = nn.Sequential(nn.Linear(3, 4), nn.Sigmoid())
        with attnscope.capture(gate, strategies=["test-sigmoid"]) as rec:
            gate(x)
        assert rec.maps[0].module == "1" and rec.maps[0].source == "test-sigmoid"
    finally:
        _REGISTRY.pop("test-sigmoid")


def test_unbatched_multihead_attention():
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(8, 2).eval()
    x, mem = torch.randn(4, 8), torch.randn(6, 8)
    with torch.no_grad(), attnscope.capture(mha) as rec:
        out, avg = mha(x, mem, mem)
    _, per_head = mha(x, mem, mem, average_attn_weights=False)
    assert avg.shape == (4, 6)  # the caller got what it asked for
    assert rec.maps[0].kind == "cross" and rec.maps[0].weights.shape == (1, 2, 4, 6)
    assert torch.allclose(rec.maps[0].weights[0], per_head, atol=1e-6)


def test_graph_map_rebuilds_a_dense_matrix():
    from tests.capturing.cases import _graph

    model, (x, edge_index) = _graph("gat")()
    with torch.no_grad(), attnscope.capture(model) as rec:
        model(x, edge_index)
    m = rec.maps[0]
    dense = m.to_dense(5)  # (head, query=dst, key=src)
    assert dense.shape == (3, 5, 5)
    assert torch.allclose(dense.sum(-1), torch.ones(3, 5), atol=1e-5)
    src, dst = m.edge_index[:, 0]
    assert dense[:, dst, src].equal(m.weights[0])


def test_pyg_layer_without_its_softmax_patch_left_behind():
    import torch_geometric.nn.conv.gat_conv as gat_module
    from torch_geometric.utils import softmax

    from tests.capturing.cases import _graph

    model, inputs = _graph("gat")()
    with attnscope.capture(model):
        assert gat_module.softmax is not softmax
        model(*inputs)
    assert gat_module.softmax is softmax


def test_sdpa_inside_a_module_not_named_attention_is_captured_by_default():
    class Mixer(nn.Module):
        def forward(self, x):
            return F.scaled_dot_product_attention(x, x, x)

    model = nn.Sequential(nn.Linear(4, 4), Mixer())
    with attnscope.capture(model) as rec:
        model(torch.randn(2, 3, 4))
    assert rec.modules == ["1"] and rec.maps[0].weights.shape == (2, 1, 3, 3)


def test_custom_message_passing_through_the_utils_package(assert_untouched):
    from tests.capturing.graph_models import PackageSoftmaxAttention

    torch.manual_seed(0)
    layer = PackageSoftmaxAttention()
    x, edge_index = torch.randn(4, 6), torch.tensor([[0, 1, 2, 3, 1], [1, 2, 3, 0, 0]])
    assert_untouched(layer)
    with attnscope.capture(layer) as rec:
        layer(x, edge_index)
    m = rec.maps[0]
    assert m.kind == "graph" and m.weights.shape == (5, 2)
    assert torch.equal(m.edge_index, edge_index)
    assert torch.allclose(m.weights, layer.last_alpha, atol=1e-6)
    del layer.last_alpha
    assert_untouched(layer)


def test_left_padded_causal_lm_rows_without_any_key_are_zeros_as_sdpa_computes_them():
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = dict(vocab_size=60, n_embd=32, n_layer=2, n_head=4, n_positions=32)
    model = GPT2LMHeadModel(GPT2Config(**config, attn_implementation="sdpa")).eval()
    eager = GPT2LMHeadModel(GPT2Config(**config, attn_implementation="eager")).eval()
    eager.load_state_dict(model.state_dict())
    ids = torch.randint(0, 60, (2, 7))
    mask = torch.ones_like(ids)
    mask[0, :2] = 0  # left padding: queries 0 and 1 of sample 0 may see no key
    with torch.no_grad(), attnscope.capture(model) as rec:
        model(input_ids=ids, attention_mask=mask)
        reference = eager(input_ids=ids, attention_mask=mask, output_attentions=True)
    for m, expected in zip(rec.maps, reference.attentions):
        assert torch.all(m.weights[0, :, :2] == 0)  # eager's min-float masking: uniform
        live = torch.ones(2, 7, dtype=torch.bool)
        live[0, :2] = False
        assert (m.weights.transpose(1, 2)[live] - expected.transpose(1, 2)[live]).abs().max() \
            < 2e-5


def test_sample_selection_leaves_maps_with_a_folded_batch_axis_whole():
    class Folding(nn.Module):
        """Per-epoch attention computed with epochs folded into the batch axis."""

        def __init__(self) -> None:
            super().__init__()
            self.epoch_attention = nn.MultiheadAttention(8, 2, batch_first=True)
            self.sequence_attention = nn.MultiheadAttention(8, 2, batch_first=True)

        def forward(self, x):  # (batch, epochs, time, 8)
            b, e, t, c = x.shape
            flat = x.reshape(b * e, t, c)
            pooled = self.epoch_attention(flat, flat, flat)[0].mean(1).reshape(b, e, c)
            return self.sequence_attention(pooled, pooled, pooled)[0]

    torch.manual_seed(0)
    model = Folding().eval()
    with torch.no_grad(), attnscope.capture(model, samples=[1]) as rec:
        model(torch.randn(3, 4, 5, 8))
    folded, sequence = rec.maps
    assert folded.weights.shape[0] == 12 and folded.samples is None
    assert sequence.weights.shape[0] == 1 and sequence.samples == [1]


def test_a_built_in_strategy_cannot_be_replaced_silently():
    from attnscope.capturing.registry import strategy_classes

    builtin = strategy_classes()["sdpa"]
    with pytest.raises(attnscope.OptionError, match="taken by the built-in"):
        @attnscope.register_strategy
        class Mine(attnscope.Strategy):
            name = "sdpa"
    assert strategy_classes()["sdpa"] is builtin

    @attnscope.register_strategy(replace=True)
    class Replacement(attnscope.Strategy):
        name = "sdpa"

    try:
        assert strategy_classes()["sdpa"] is Replacement
    finally:
        attnscope.register_strategy(builtin)


def test_a_dtype_a_store_cannot_hold_fails_before_anything_runs(tmp_path):
    model, inputs = _encoder()
    calls = []
    with pytest.raises(attnscope.OptionError, match="'bfloat16' cannot be stored"):
        with attnscope.capture(model, store=tmp_path / "s", dtype="bfloat16"):
            calls.append(model(*inputs))
    assert not calls and not (tmp_path / "s").exists()
    with attnscope.capture(model, dtype="bfloat16") as rec:  # in memory it is fine
        model(*inputs)
    assert rec.maps[0].weights.dtype == torch.bfloat16


def test_unknown_kind_and_dtype_are_one_clear_error():
    model, inputs = _encoder()
    with pytest.raises(attnscope.OptionError, match="kind 'crosss' is not one of self, cross"):
        with attnscope.capture(model, kinds={"*": "crosss"}):
            model(*inputs)
    with pytest.raises(attnscope.OptionError, match="dtype 'int8' is not one of"):
        with attnscope.capture(model, dtype="int8"):
            model(*inputs)

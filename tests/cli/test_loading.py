"""attnscope.cli.loading: factories, Hugging Face directories and checkpoints, with one-line
errors for everything a user can get wrong."""

from __future__ import annotations

import sys

import pytest
import torch
from torch.utils.data import DataLoader, SequentialSampler

from attnscope.cli.checkpoints import apply_state_dict, read_checkpoint
from attnscope.cli.errors import CheckpointError, LoadError
from attnscope.cli.loading import load_data, load_model
from attnscope.data import make_loader
from attnscope.errors import AttnscopeError
from tests.evaluate import fixtures

REGRESSOR = "tests.evaluate.fixtures:make_regressor"


def one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert "\n" not in text and isinstance(err.value, AttnscopeError)
    return text


@pytest.fixture
def trained_state() -> dict[str, torch.Tensor]:
    model = fixtures.make_regressor()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)  # differs from a fresh factory model
    return model.state_dict()


def test_factory_model_is_in_eval_mode():
    model = load_model(REGRESSOR)
    assert isinstance(model, fixtures.LSTMAttentionRegressor) and not model.training


@pytest.mark.parametrize("wrap", [
    lambda sd: sd,
    lambda sd: {"state_dict": {f"model.{k}": v for k, v in sd.items()}, "epoch": 3},
    lambda sd: {"model_state_dict": sd, "optimizer_state_dict": {}},
    lambda sd: {"state_dict": {f"module.{k}": v for k, v in sd.items()}},
], ids=["raw", "lightning", "model_state_dict", "ddp"])
def test_checkpoint_layouts_load(tmp_path, trained_state, wrap):
    path = tmp_path / "model.ckpt"
    torch.save(wrap(trained_state), path)
    model = load_model(REGRESSOR, checkpoint=path)
    for key, value in model.state_dict().items():
        assert torch.equal(value, trained_state[key]), key


def test_lightning_prefix_ignores_keys_outside_the_model(tmp_path, trained_state):
    state = {f"model.{k}": v for k, v in trained_state.items()}
    state["loss_fn.pos_weight"] = torch.ones(1)  # a LightningModule's own buffer
    torch.save({"state_dict": state}, tmp_path / "l.ckpt")
    load_model(REGRESSOR, checkpoint=tmp_path / "l.ckpt")


def test_pickled_checkpoint_is_refused_naming_the_flag(tmp_path, trained_state):
    torch.save({"state_dict": trained_state, "extra": fixtures.PickledThing()}, tmp_path / "p.pt")
    with pytest.raises(CheckpointError) as err:
        load_model(REGRESSOR, checkpoint=tmp_path / "p.pt")
    assert "--trust-checkpoint" in one_line(err) and "PickledThing" in str(err.value)
    model = load_model(REGRESSOR, checkpoint=tmp_path / "p.pt", trust=True)
    assert torch.equal(model.head.weight, trained_state["head.weight"])


def test_whole_pickled_module_loads_only_when_trusted(tmp_path, trained_state):
    saved = fixtures.make_regressor()
    saved.load_state_dict(trained_state)
    torch.save(saved, tmp_path / "whole.pt")
    with pytest.raises(CheckpointError, match="trust-checkpoint"):
        read_checkpoint(tmp_path / "whole.pt")
    assert torch.equal(read_checkpoint(tmp_path / "whole.pt", trust=True)["head.bias"],
                       trained_state["head.bias"])


@pytest.mark.parametrize("content", [lambda good: good[: len(good) // 2], lambda good: b"",
                                     lambda good: b"not a checkpoint at all"],
                         ids=["truncated", "empty", "garbage"])
def test_corrupt_checkpoint_is_one_line(tmp_path, trained_state, content):
    torch.save(trained_state, tmp_path / "good.pt")
    (tmp_path / "bad.pt").write_bytes(content((tmp_path / "good.pt").read_bytes()))
    with pytest.raises(CheckpointError) as err:
        read_checkpoint(tmp_path / "bad.pt")
    assert "truncated or not a PyTorch checkpoint" in one_line(err)


def test_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_model(REGRESSOR, checkpoint=tmp_path / "nope.ckpt")


def test_mismatched_keys_are_counted_and_shown(tmp_path, trained_state):
    state = dict(trained_state)
    del state["head.weight"], state["head.bias"]
    state["decoder.weight"] = torch.zeros(2)
    torch.save(state, tmp_path / "m.pt")
    with pytest.raises(CheckpointError) as err:
        load_model(REGRESSOR, checkpoint=tmp_path / "m.pt")
    text = one_line(err)
    assert "2 missing keys (head.weight, head.bias)" in text
    assert "1 unexpected keys (decoder.weight)" in text


def test_wrong_shapes_are_named():
    model = fixtures.make_regressor()
    state = dict(model.state_dict())
    state["head.weight"] = torch.zeros(1, 5)
    with pytest.raises(CheckpointError, match=r"head.weight \(1, 5\) vs \(1, 8\)"):
        apply_state_dict(model, state)


def test_dict_without_state_dict(tmp_path):
    torch.save({"epoch": 3, "note": "hi"}, tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match="without a state_dict"):
        read_checkpoint(tmp_path / "x.pt")


@pytest.mark.parametrize("spec, message", [
    ("tests.evaluate.fixtures:make_nothing", "has no factory 'make_nothing'; callables there"),
    ("no_such_pkg.models:make", "cannot import 'no_such_pkg.models': no module named "
                                "'no_such_pkg'"),
    ("tests.evaluate.no_such_module:make", "no module named 'tests.evaluate.no_such_module'"),
    ("tests.evaluate.fixtures:make_broken", "calling tests.evaluate.fixtures:make_broken() "
                                            "failed: ValueError: the factory needs a config"),
    ("tests.evaluate.fixtures:make_regression_data", "returned TensorDataset, expected a "
                                                     "torch.nn.Module"),
    ("tests.evaluate.fixtures", "is neither 'pkg.module:factory' nor a directory"),
    ("no/such/dir", "neither 'pkg.module:factory' nor a directory"),
])
def test_bad_model_specs(spec, message):
    with pytest.raises(LoadError) as err:
        load_model(spec)
    assert message in one_line(err)


def test_directory_without_config(tmp_path):
    with pytest.raises(LoadError, match="has no config.json"):
        load_model(tmp_path)


def test_data_factories_and_loaders():
    data = load_data("tests.evaluate.fixtures:make_regression_data")
    loader = make_loader(data, batch_size=16)
    assert loader.batch_size == 16 and isinstance(loader.sampler, SequentialSampler)
    shuffled = load_data("tests.evaluate.fixtures:make_shuffled_loader")
    ordered = make_loader(shuffled)
    assert isinstance(ordered, DataLoader) and isinstance(ordered.sampler, SequentialSampler)
    assert ordered.batch_size == 7
    with pytest.raises(LoadError, match="returned int, expected a torch Dataset"):
        load_data("tests.evaluate.fixtures:NOT_CALLABLE")
    pair = load_data("tests.evaluate.fixtures:make_tensor_pair")
    assert len(pair) == 40 and len(pair[0]) == 2
    with pytest.raises(LoadError, match="must look like 'pkg.module:factory'"):
        load_data("tests.evaluate.fixtures")


def test_python_file_spec(tmp_path):
    (tmp_path / "mymodels.py").write_text(
        "import torch\n\ndef make():\n    return torch.nn.Linear(2, 1)\n")
    assert isinstance(load_model(f"{tmp_path / 'mymodels.py'}:make"), torch.nn.Linear)


def test_loading_leaves_sys_path_and_sys_modules_as_found(tmp_path, monkeypatch):
    (tmp_path / "helper_layers.py").write_text("import torch\nWIDTH = 3\n")
    (tmp_path / "file_models.py").write_text(
        "import dataclasses\nimport torch\nfrom helper_layers import WIDTH\n\n"
        "@dataclasses.dataclass\nclass Config:\n    width: int = WIDTH\n\n"
        "def make():\n    return torch.nn.Linear(Config().width, 1)\n")
    monkeypatch.chdir(tmp_path)
    path_before = list(sys.path)
    model = load_model(f"{tmp_path / 'file_models.py'}:make")
    assert model.in_features == 3  # sibling module and dataclass resolved while importing
    assert sys.path == path_before and "file_models" not in sys.modules
    sys.modules.pop("helper_layers", None)  # a normal import; the test cleans it up


def test_a_failing_factory_keeps_its_error_as_the_cause():
    with pytest.raises(LoadError) as err:
        load_model("tests.evaluate.fixtures:make_broken")
    assert isinstance(err.value.__cause__, ValueError)
    assert "needs a config" in str(err.value.__cause__)


def test_hugging_face_directory(tmp_path):
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1,
                                     num_attention_heads=2, intermediate_size=32,
                                     num_labels=3, max_position_embeddings=16)
    transformers.BertForSequenceClassification(config).save_pretrained(tmp_path)
    model = load_model(tmp_path)
    assert type(model).__name__ == "BertForSequenceClassification" and not model.training


@pytest.mark.filterwarnings("ignore:.*LeafSpec")
def test_real_lightning_checkpoint_loads_safely(tmp_path):
    """A checkpoint written by a Lightning Trainer (hparams, loops, optimizer states and
    a ``model.``-prefixed state_dict with a loss module beside it) needs no trust."""
    lightning = pytest.importorskip("lightning")

    class Module(lightning.LightningModule):
        def __init__(self, lr: float = 1e-3) -> None:
            super().__init__()
            self.save_hyperparameters()
            self.model = fixtures.make_regressor()
            self.loss_fn = torch.nn.MSELoss()

        def training_step(self, batch, index):
            x, y = batch
            return self.loss_fn(self.model(x)[0].squeeze(-1), y)

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)

    trainer = lightning.Trainer(max_steps=1, logger=False, enable_checkpointing=False,
                                enable_progress_bar=False, enable_model_summary=False,
                                default_root_dir=tmp_path)
    module = Module()
    trainer.fit(module, DataLoader(fixtures.make_regression_data(), batch_size=8))
    trainer.save_checkpoint(tmp_path / "last.ckpt")
    model = load_model(REGRESSOR, checkpoint=tmp_path / "last.ckpt")
    assert torch.equal(model.head.weight, module.model.head.weight)

from __future__ import annotations

import json
import pickle
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch

from eventseq.data import SequenceDataset, load_prepared
from eventseq.data.batch import Batch
from eventseq.data.schema import Schema
from eventseq.errors import FileFormatError, OutputError
from eventseq.objectives.supervised import SupervisedModule
from eventseq.saved import CONFIG_FILE, WEIGHTS_FILE, load_model, save_model




@pytest.fixture(scope="module")
def batch(prepared_dir) -> Batch:
    """The first 24 entities of the prepared synthetic data, as one padded batch."""
    prepared = load_prepared(prepared_dir)
    return SequenceDataset.from_table(prepared.table, prepared.schema).collate(np.arange(24))


def _outputs(module: SupervisedModule, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        return module.predict_outputs(batch), module.embed(batch)


def _fresh_module(trained, seed: int) -> SupervisedModule:
    """A differently initialised module with the trained one's architecture (eval mode)."""
    torch.manual_seed(seed)
    module = trained.module
    return SupervisedModule(module.schema, module.encoder_config, module.head_config).eval()


def test_round_trip_gives_identical_outputs(trained, batch, tmp_path):
    saved = save_model(trained.module, tmp_path / "model")
    loaded = load_model(saved)
    assert not loaded.training
    expected_proba, expected_embedding = _outputs(trained.module, batch)
    proba, embedding = _outputs(loaded, batch)
    assert torch.equal(proba, expected_proba)
    assert torch.equal(embedding, expected_embedding)
    # the model saved by train() is the same trained module
    proba_from_run, _ = _outputs(load_model(trained.model_dir), batch)
    assert torch.equal(proba_from_run, expected_proba)


def test_model_directory_holds_exactly_json_config_and_safetensors(trained):
    # the combined default model adds its aggregates part: JSON and LightGBM's text format (test_combined.py)
    assert sorted(p.name for p in trained.model_dir.iterdir()) == ["combined.json", CONFIG_FILE, "lightgbm-0.txt",
                                                                  WEIGHTS_FILE]
    payload = json.loads((trained.model_dir / CONFIG_FILE).read_text())  # plain JSON, no pickle
    assert payload["kind"] == "supervised"
    schema = Schema.from_dict(payload["schema"])
    assert schema.fingerprint() == trained.module.schema.fingerprint()
    assert schema.id_column == "entity_id" and [t.name for t in schema.targets] == ["label"]
    assert payload["model"]["encoder"]["sequence_encoder"]["hidden_size"] == 8
    tensors = safetensors.torch.load_file(trained.model_dir / WEIGHTS_FILE)
    assert set(tensors) == set(trained.module.state_dict())


def test_saved_extra_information_comes_back(trained):
    loaded = load_model(trained.model_dir)
    assert loaded.saved_info["metrics"] == json.loads(json.dumps(trained.metrics))  # nested: parts, weights
    assert loaded.saved_info["train_config"]["data"]["max_len"] == 512


def test_loading_never_unpickles(trained, batch, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("load_model must not unpickle")

    for target, name in [(pickle, "load"), (pickle, "loads"), (torch, "load"), (torch.serialization, "load")]:
        monkeypatch.setattr(target, name, refuse)
    loaded = load_model(trained.model_dir)
    assert torch.equal(_outputs(loaded, batch)[0], _outputs(trained.module, batch)[0])


# ------------------------------------------------------------------ load errors name the file


def _edit_config(directory: Path, change: Callable[[dict], None]) -> None:
    payload = json.loads((directory / CONFIG_FILE).read_text())
    change(payload)
    (directory / CONFIG_FILE).write_text(json.dumps(payload))


def _truncate_weights(directory: Path) -> None:
    data = (directory / WEIGHTS_FILE).read_bytes()
    (directory / WEIGHTS_FILE).write_bytes(data[: len(data) // 2])


def _drop_one_tensor(directory: Path) -> None:
    tensors = safetensors.torch.load_file(directory / WEIGHTS_FILE)
    tensors.pop(sorted(tensors)[0])
    safetensors.torch.save_file(tensors, directory / WEIGHTS_FILE)


def _set_hidden_size(payload: dict) -> None:
    payload["model"]["encoder"]["sequence_encoder"]["hidden_size"] = 16


CORRUPTIONS: dict[str, tuple[Callable[[Path], None], str]] = {
    "missing config.json": (lambda d: (d / CONFIG_FILE).unlink(), CONFIG_FILE),
    "corrupt config.json": (lambda d: (d / CONFIG_FILE).write_text('{"kind": "supervised", '), CONFIG_FILE),
    "config.json not utf-8": (lambda d: (d / CONFIG_FILE).write_bytes(b"\xff\xfe\x00"), CONFIG_FILE),
    "config.json not an object": (lambda d: (d / CONFIG_FILE).write_text("[1, 2]"), CONFIG_FILE),
    "unknown kind": (lambda d: _edit_config(d, lambda p: p.update(kind="mystery")), CONFIG_FILE),
    "no schema section": (lambda d: _edit_config(d, lambda p: p.pop("schema")), CONFIG_FILE),
    "bad option value": (
        lambda d: _edit_config(d, lambda p: p["model"]["encoder"]["sequence_encoder"].update(hidden_size="abc")),
        CONFIG_FILE,
    ),
    "missing weights": (lambda d: (d / WEIGHTS_FILE).unlink(), WEIGHTS_FILE),
    "truncated weights": (_truncate_weights, WEIGHTS_FILE),
    "garbage weights": (lambda d: (d / WEIGHTS_FILE).write_bytes(b"not safetensors" * 10), WEIGHTS_FILE),
    "weights of another architecture": (lambda d: _edit_config(d, _set_hidden_size), WEIGHTS_FILE),
    "weights missing a tensor": (_drop_one_tensor, WEIGHTS_FILE),
}


@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
def test_broken_model_directory_is_a_file_format_error_naming_the_file(trained, tmp_path, corruption):
    directory = tmp_path / "model"
    shutil.copytree(trained.model_dir, directory)
    corrupt, culprit = CORRUPTIONS[corruption]
    corrupt(directory)
    with pytest.raises(FileFormatError, match=re.escape(str(directory / culprit))):
        load_model(directory)


def test_missing_model_directory_is_a_file_format_error(tmp_path):
    with pytest.raises(FileFormatError, match=re.escape(str(tmp_path / "nowhere"))):
        load_model(tmp_path / "nowhere")


# ------------------------------------------------------------------ atomic replacement


def test_save_replaces_an_earlier_saved_model_completely(trained, batch, tmp_path):
    target = tmp_path / "model"
    save_model(_fresh_module(trained, seed=1), target)
    replacement = _fresh_module(trained, seed=2)
    save_model(replacement, target)

    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no *.tmp or .old left
    assert sorted(p.name for p in target.iterdir()) == [CONFIG_FILE, WEIGHTS_FILE]
    assert torch.equal(_outputs(load_model(target), batch)[1], _outputs(replacement, batch)[1])


def test_save_never_replaces_a_directory_holding_other_files(trained, tmp_path):
    target = tmp_path / "model"
    save_model(_fresh_module(trained, seed=1), target)
    (target / "notes.txt").write_text("the user's")

    with pytest.raises(OutputError, match=r"model is an existing directory holding \['notes.txt'\]"):
        save_model(_fresh_module(trained, seed=2), target)
    assert (target / "notes.txt").read_text() == "the user's"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_failed_save_keeps_the_previous_model(trained, batch, tmp_path, monkeypatch):
    target = tmp_path / "model"
    original = _fresh_module(trained, seed=1)
    save_model(original, target)

    def disk_full(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(safetensors.torch, "save_model", disk_full)
    with pytest.raises(OSError, match="No space"):
        save_model(_fresh_module(trained, seed=2), target)

    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    assert torch.equal(_outputs(load_model(target), batch)[1], _outputs(original, batch)[1])


def test_interpolations_in_a_saved_config_are_text_never_resolved(trained, tmp_path, monkeypatch):
    import json
    import shutil

    monkeypatch.setenv("EVENTSEQ_SECRET", "do-not-read-me")
    target = tmp_path / "model"
    shutil.copytree(trained.model_dir, target)
    payload = json.loads((target / CONFIG_FILE).read_text())
    payload["model"]["encoder"]["sequence_encoder"]["pooling"] = "${oc.env:EVENTSEQ_SECRET}"
    (target / CONFIG_FILE).write_text(json.dumps(payload))

    with pytest.raises(FileFormatError) as caught:
        load_model(target)

    assert "do-not-read-me" not in str(caught.value)
    assert "${oc.env:EVENTSEQ_SECRET}" in str(caught.value)


def test_nan_weights_are_refused_naming_the_file(trained, tmp_path):
    import shutil

    target = tmp_path / "model"
    shutil.copytree(trained.model_dir, target)
    state = safetensors.torch.load_file(str(target / WEIGHTS_FILE))
    name = next(key for key, tensor in state.items() if tensor.is_floating_point())
    state[name] = torch.full_like(state[name], float("nan"))
    safetensors.torch.save_file(state, str(target / WEIGHTS_FILE))

    with pytest.raises(FileFormatError, match=rf"{WEIGHTS_FILE} holds NaN/inf weights \(\['{name}'"):
        load_model(target)


def test_every_model_kind_names_the_class_that_rebuilds_it_and_saved_py_imports_no_model_code():
    import ast
    from pathlib import Path

    from eventseq.objectives.methods import METHODS
    from eventseq.saved import MODEL_KINDS, model_class

    for kind in MODEL_KINDS:
        rebuilt = model_class(kind)
        assert hasattr(rebuilt, "from_config")
        assert kind in METHODS or rebuilt.kind == kind  # a self-supervised model's kind is its method
    source = ast.parse((Path(__file__).parents[1] / "src" / "eventseq" / "saved.py").read_text())
    imported = {node.module for node in ast.walk(source) if isinstance(node, ast.ImportFrom)}
    model_code = {module for module in imported if module.startswith(("eventseq.rec", "eventseq.objectives"))}
    assert model_code <= {"eventseq.objectives.methods"}  # the registry of names, no model


def test_a_transformer_saved_before_conv_kernel_and_rotary_loads_as_it_was(trained, batch, tmp_path):
    """Models saved before `conv_kernel` existed have no such key: they load without the convolution."""
    from eventseq.nn import EncoderConfig, SequenceEncoderConfig

    torch.manual_seed(0)
    module = trained.module
    old = SupervisedModule(module.schema, EncoderConfig(
        event_encoder=module.encoder_config.event_encoder,
        sequence_encoder=SequenceEncoderConfig(type="transformer", hidden_size=8, num_heads=2, pooling="mean")),
        module.head_config).eval()
    saved = save_model(old, tmp_path / "old")
    _edit_config(saved, lambda payload: payload["model"]["encoder"]["sequence_encoder"].pop("conv_kernel"))
    loaded = load_model(saved)
    assert loaded.encoder_config.sequence_encoder.conv_kernel == 0 and loaded.encoder.sequence_encoder.local is None
    assert torch.equal(_outputs(loaded, batch)[0], _outputs(old, batch)[0])
    # the new options round-trip too
    torch.manual_seed(0)
    new = SupervisedModule(module.schema, EncoderConfig(
        event_encoder=module.encoder_config.event_encoder,
        sequence_encoder=SequenceEncoderConfig(type="transformer", hidden_size=8, num_heads=2, pooling="mean",
                                               positional="rotary", conv_kernel=3)), module.head_config).eval()
    reloaded = load_model(save_model(new, tmp_path / "new"))
    assert reloaded.encoder_config.sequence_encoder.conv_kernel == 3
    assert torch.equal(_outputs(reloaded, batch)[0], _outputs(new, batch)[0])

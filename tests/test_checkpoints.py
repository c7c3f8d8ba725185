"""Checkpoints: safetensors with their metadata, old `.pt` files read weights-only, code refused,
and a checkpoint of another model refused."""

import os
import pickle
from dataclasses import replace

import numpy as np
import pytest
import torch

from medunlearn.checkpoints import TrainedModel, difficulty_path, load_model, weights_key
from medunlearn.config import ModelConfig
from medunlearn.data.medmnist import load_medmnist
from medunlearn.models import ModelError, build_model, model_meta
from medunlearn.store import CHECKPOINT_FORMAT, CheckpointError, load_checkpoint, save_checkpoint

CNN = ModelConfig(arch="cnn", width=4)


def _saved(tmp_path, config: ModelConfig, channels: int, n_classes: int):
    torch.manual_seed(1)
    model = build_model(config, channels, n_classes)
    path = tmp_path / "model.safetensors"
    save_checkpoint(path, model, {"model": model_meta(config, channels, n_classes), "seed": 3})
    return path, model


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    pairs = zip(a.state_dict().items(), b.state_dict().items(), strict=True)
    return all(ka == kb and torch.equal(va, vb) for (ka, va), (kb, vb) in pairs)


def test_checkpoint_round_trip(tmp_path, blood):
    path, model = _saved(tmp_path, CNN, blood.channels, blood.n_classes)
    loaded = load_model(path, CNN, blood)
    assert _same_weights(model, loaded.model)
    assert loaded.meta["model"]["arch"] == "cnn"
    assert loaded.meta["seed"] == 3


def test_checkpoints_are_safetensors_with_their_metadata_in_the_header(tmp_path, blood):
    from safetensors import safe_open

    path, model = _saved(tmp_path, CNN, blood.channels, blood.n_classes)
    with safe_open(str(path), framework="pt") as handle:
        assert set(handle.keys()) == set(model.state_dict())
        assert CHECKPOINT_FORMAT in handle.metadata()["medunlearn"]
    assert not path.read_bytes().startswith(b"\x80")  # no pickle stream


def test_old_pt_checkpoints_still_load(tmp_path, blood):
    model = build_model(CNN, blood.channels, blood.n_classes)
    meta = {"model": model_meta(CNN, blood.channels, blood.n_classes)}
    path = tmp_path / "old.pt"
    torch.save({"format": CHECKPOINT_FORMAT, "meta": meta, "state_dict": model.state_dict()}, path)
    assert _same_weights(model, load_model(path, CNN, blood).model)


class _Payload:
    """Unpickling this would run code (create a file): a hostile checkpoint."""

    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):
        return (os.makedirs, (self.target,))


def test_a_checkpoint_holding_code_is_refused_without_torch_advice(tmp_path):
    target = tmp_path / "created-by-unpickling"
    path = tmp_path / "hostile.pt"
    with open(path, "wb") as handle:
        pickle.dump({"format": CHECKPOINT_FORMAT, "payload": _Payload(str(target))}, handle, 2)
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path)
    message = str(caught.value)
    assert "holds pickled code" in message and "refused" in message
    assert "weights_only" not in message and "Weights only load failed" not in message
    assert caught.value.__cause__ is None  # torch's advice is not chained behind it either
    assert not target.exists()


@pytest.mark.parametrize(
    ("saved", "channels", "n_classes"),
    [
        (ModelConfig(arch="resnet18-small", width=4), 3, 8),
        (ModelConfig(arch="resnet18", width=4), 3, 8),
        (ModelConfig(arch="cnn", width=8), 3, 8),
        (ModelConfig(arch="cnn", width=4), 1, 8),
        (ModelConfig(arch="cnn", width=4), 3, 2),
    ],
)
def test_checkpoint_of_another_model_is_refused(tmp_path, blood, saved, channels, n_classes):
    path, _ = _saved(tmp_path, saved, channels, n_classes)
    with pytest.raises(ModelError, match="checkpoint"):
        load_model(path, CNN, blood)


def test_weights_that_do_not_fit_are_refused(tmp_path, blood):
    # metadata claims the right model, the weights are of another one
    other = build_model(ModelConfig(arch="cnn", width=8), 3, 8)
    path = tmp_path / "lying.safetensors"
    save_checkpoint(path, other, {"model": model_meta(CNN, 3, 8)})
    with pytest.raises(ModelError, match="do not fit"):
        load_model(path, CNN, blood)


def test_not_a_checkpoint(tmp_path, blood):
    path = tmp_path / "junk.pt"
    path.write_bytes(b"junk")
    with pytest.raises(CheckpointError):
        load_model(path, CNN, blood)
    torch.save({"state": 1}, path)
    with pytest.raises(CheckpointError, match="not a medunlearn checkpoint"):
        load_model(path, CNN, blood)
    with pytest.raises(CheckpointError, match="not found"):
        load_model(tmp_path / "missing.safetensors", CNN, blood)
    header_only = tmp_path / "cut.safetensors"
    header_only.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_model(header_only, CNN, blood)


def test_every_setting_that_changes_the_weights_is_in_their_key(make_config, blood):
    config = make_config()
    key = weights_key("original", config, blood, 0)
    changed = [
        replace(config, runtime=replace(config.runtime, bf16=True)),
        replace(config, train=replace(config.train, lr=0.01)),
        replace(config, model=replace(config.model, width=8)),
    ]
    assert all(weights_key("original", other, blood, 0) != key for other in changed)
    assert weights_key("original", config, blood, 1) != key
    assert weights_key("retrain", config, blood, 0) != key
    # where the files are and how inference is chunked do not change the weights
    elsewhere = replace(config, runtime=replace(config.runtime, cache_dir="x", eval_batch_size=7))
    assert weights_key("original", elsewhere, blood, 0) == key


def _trained(blood, difficulty):
    """An original model of the fixture with a difficulty (or None)."""
    model = build_model(CNN, blood.channels, blood.n_classes)
    meta = {"model": model_meta(CNN, blood.channels, blood.n_classes),
            "data_fingerprint": blood.fingerprint}  # fmt: skip
    return TrainedModel(model, meta, difficulty)


def test_the_difficulty_is_saved_beside_the_checkpoint_and_read_back(tmp_path, blood):
    difficulty = np.linspace(0, 3, len(blood.train), dtype=np.float32)
    path = tmp_path / "model.safetensors"
    _trained(blood, difficulty).save(path)
    assert difficulty_path(path) == tmp_path / "model.difficulty.safetensors"
    assert np.array_equal(load_model(path, CNN, blood).difficulty, difficulty)
    _trained(blood, None).save(path)  # saved again without: no stale difficulty is left
    assert not difficulty_path(path).exists()
    assert load_model(path, CNN, blood).difficulty is None


def test_a_difficulty_of_other_data_is_not_read(tmp_path, blood, write_npz):
    path = tmp_path / "model.safetensors"
    _trained(blood, np.ones(len(blood.train), dtype=np.float32)).save(path)
    other_root = write_npz("bloodmnist", 64, 24, 24, seed=5, folder=tmp_path / "other").parent
    other = load_medmnist("bloodmnist", 28, root=other_root, download=False)
    assert load_model(path, CNN, other).difficulty is None


def test_a_patient_mapping_keys_a_sharded_model_only(make_config, blood):
    """The layout of a sharded training keeps each patient's images together, so its weights
    depend on the mapping; a model trained whole does not, and keeps its key."""
    from medunlearn.data.patients import synthetic_patients

    whole, sharded = make_config(), make_config(epochs=2, shards=2)
    keys = [weights_key("original", config, blood, 0) for config in (whole, sharded)]
    blood.patients = synthetic_patients(len(blood.train))
    assert weights_key("original", whole, blood, 0) == keys[0]
    assert weights_key("original", sharded, blood, 0) != keys[1]

"""Sharded, sliced training (SISA): the layout (stratified, seeded, patients kept whole), the
epochs of each slice, the training slice by slice with a checkpoint after each, the aggregate
model on every inference path, and its checkpoint with the slice checkpoints beside it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from medunlearn.checkpoints import TrainedModel, load_model, recipe_key, slices_folder
from medunlearn.config import ConfigError, ModelConfig, RuntimeConfig, TrainConfig
from medunlearn.data.medmnist import load_medmnist
from medunlearn.data.patients import synthetic_patients
from medunlearn.engine import Engine
from medunlearn.sharding import (
    ShardedModel,
    ShardingError,
    assign_layout,
    shard_trainer,
    slice_epochs,
)
from medunlearn.store import Store, cache_key, file_sha256, load_checkpoint

CNN = ModelConfig(arch="cnn", width=4)
CPU_PATHS = (
    ("eager", "folded", "onednn") if torch.backends.mkldnn.is_available() else ("eager", "folded")
)


def _spread(values: np.ndarray, bins: np.ndarray, n_bins: int, n_classes: int) -> np.ndarray:
    """Per class, the largest difference between two bins' counts of it."""
    counts = np.zeros((n_bins, n_classes), dtype=int)
    np.add.at(counts, (bins, values), 1)
    return counts.max(axis=0) - counts.min(axis=0)


def test_shards_and_slices_are_stratified_by_class_seeded_and_cover_every_image():
    labels = np.repeat(np.arange(5), [40, 37, 23, 12, 8])
    layout = assign_layout(labels, 4, 2, seed=3)
    assert set(layout.shard.tolist()) == set(range(4)) and not layout.removed.any()
    assert _spread(labels, layout.shard, 4, 5).max() <= 1
    for shard in range(4):
        members = layout.shard == shard
        assert _spread(labels[members], layout.slice[members], 2, 5).max() <= 1
    assert np.array_equal(assign_layout(labels, 4, 2, seed=3).shard, layout.shard)
    assert not np.array_equal(assign_layout(labels, 4, 2, seed=4).shard, layout.shard)


def test_a_patients_images_share_one_shard_and_one_slice():
    labels = np.random.default_rng(0).integers(0, 3, 300)
    patients = synthetic_patients(300, seed=1)
    assert np.bincount(np.bincount(patients)).nonzero()[0].max() > 1  # patients of several images
    layout = assign_layout(labels, 3, 4, seed=0, groups=patients)
    for patient in np.unique(patients):
        mine = patients == patient
        assert len(set(layout.shard[mine].tolist())) == 1
        assert len(set(layout.slice[mine].tolist())) == 1
    sizes = np.bincount(layout.shard)
    assert sizes.max() - sizes.min() <= 10  # still about equal shards


def test_more_shards_than_a_class_has_or_slices_than_a_shard_has_are_refused():
    labels = np.repeat(np.arange(3), [20, 20, 3])
    with pytest.raises(ShardingError, match=r"train.shards \(4\) exceeds the 3 training images "
                                            r"of class 2, the smallest"):  # fmt: skip
        assign_layout(labels, 4, 1, seed=0)
    with pytest.raises(ShardingError, match=r"train.slices \(15\) exceeds the 14 images of shard"):
        assign_layout(labels, 3, 15, seed=0)
    patients = np.repeat(np.arange(15), 3)[: labels.size]
    with pytest.raises(ShardingError, match="training patients of class"):
        assign_layout(labels, 3, 1, seed=0, groups=patients)


def test_slices_cannot_outnumber_the_epochs(sharded_recipe):
    with pytest.raises(ConfigError, match=r"train.slices \(4\) must not exceed train.epochs"):
        sharded_recipe(epochs=3, slices=4)


@pytest.mark.parametrize(("epochs", "slices"), [(12, 4), (12, 8), (200, 4), (5, 3), (2, 2)])
def test_every_stage_costs_the_same_and_the_shards_cost_the_unsharded_epochs(epochs, slices):
    """Stage r trains r/R of the shard for about E/r epochs: each stage does E/R shard-epochs of
    work, so a shard costs E epochs over its images and S shards E epochs over the split."""
    stage_epochs = slice_epochs(epochs, slices)
    work = [e * (r + 1) / slices for r, e in enumerate(stage_epochs)]
    assert min(stage_epochs) >= 1
    assert abs(sum(work) - epochs) <= 0.05 * epochs
    assert max(work) - min(work) <= 1
    assert slice_epochs(12, 4) == [12, 6, 4, 3]
    assert slice_epochs(epochs, 1) == [epochs]


def test_each_stage_trains_on_its_shards_slices_so_far(
    blood, cache_dir, batch_rows, sharded_recipe, sharded_model
):
    """Stage r of shard k trains on exactly the images of slices 0..r of shard k, for the
    stage's epochs; together the stages process the images of `epochs` unsharded epochs."""
    recipe = sharded_recipe(epochs=4, shards=2, slices=2, batch_size=64)
    model = sharded_model(blood, Store(cache_dir), recipe)
    layout, epochs = model.layout, slice_epochs(4, 2)
    expected = [set(layout.rows(k, r).tolist()) for k in range(2) for r in range(2)
                for _ in range(epochs[r])]  # fmt: skip
    assert batch_rows == expected
    processed = sum(len(rows) for rows in batch_rows)
    assert processed == pytest.approx(4 * len(blood.train), rel=0.05)


def test_a_checkpoint_is_saved_after_every_slice_with_its_hash(
    blood, cache_dir, sharded_recipe, sharded_model
):
    model = sharded_model(blood, Store(cache_dir), sharded_recipe())
    checkpoints = model.sharding.checkpoints
    assert [len(shard) for shard in checkpoints] == [2, 2]
    for shard, (first, last) in enumerate(checkpoints):
        assert first.path != last.path and first.path.parent == cache_dir / "slices"
        assert first.sha256 == file_sha256(first.path) and first.seconds > 0
        state, meta = load_checkpoint(last.path)
        assert (meta["shard"], meta["slice"]) == (shard, 1)
        own = model.shards[shard].state_dict()
        assert all(torch.equal(state[key], own[key]) for key in own)  # the shard's final model
        assert not torch.equal(load_checkpoint(first.path)[0]["1.0.weight"], own["1.0.weight"])


def test_each_slice_checkpoint_records_the_images_it_learned_from(
    blood, cache_dir, sharded_recipe, sharded_model
):
    """So that a deletion purges from the cache every stage that trained on a forgotten image,
    and only those."""
    store = Store(cache_dir)
    model = sharded_model(blood, store, sharded_recipe())
    layout, checkpoints = model.layout, model.sharding.checkpoints
    image = int(np.flatnonzero((layout.shard == 1) & (layout.slice == 1))[0])
    found = store.influenced_by(np.array([image]), blood.fingerprint)
    assert found == [checkpoints[1][1].path]
    image = int(np.flatnonzero((layout.shard == 0) & (layout.slice == 0))[0])
    found = store.influenced_by(np.array([image]), blood.fingerprint)
    assert sorted(found) == sorted(c.path for c in checkpoints[0])


def test_sharded_training_is_bitwise_reproducible_and_seeded(
    blood, tmp_path, sharded_recipe, sharded_model, same_state
):
    recipe = sharded_recipe()
    first = sharded_model(blood, Store(tmp_path / "a"), recipe)
    again = sharded_model(blood, Store(tmp_path / "b"), recipe)
    assert same_state(first, again)
    other = sharded_model(blood, Store(tmp_path / "c"), recipe, seed=1)
    assert not same_state(first, other)


def test_a_stage_trained_before_is_read_back_not_trained_again(
    blood, cache_dir, batch_rows, sharded_recipe, sharded_model, same_state
):
    """The shards' jobs of a study train the stages; the original's job reads them back."""
    first = sharded_model(blood, Store(cache_dir), sharded_recipe())
    calls = len(batch_rows)
    again = sharded_model(blood, Store(cache_dir), sharded_recipe())
    assert len(batch_rows) == calls and same_state(first, again)


def test_the_aggregate_answers_with_log_probabilities(
    blood, cache_dir, sharded_recipe, sharded_model
):
    model = sharded_model(blood, Store(cache_dir), sharded_recipe(aggregate="mean")).eval()
    images = blood.test.images
    with torch.no_grad():
        outputs = model(images)
        shards = torch.stack([F.softmax(shard(images), -1) for shard in model.shards])
    torch.testing.assert_close(outputs.exp().sum(1), torch.ones(len(images)))
    torch.testing.assert_close(outputs, shards.mean(0).log())


def test_the_vote_is_the_majority_its_ties_broken_by_the_mean_softmax(
    blood, cache_dir, sharded_recipe, sharded_model
):
    recipe = sharded_recipe(shards=3, slices=1, epochs=1, aggregate="vote")
    model = sharded_model(blood, Store(cache_dir), recipe).eval()
    images = blood.test.images
    with torch.no_grad():
        outputs = model(images)
        probabilities = torch.stack([F.softmax(shard(images), -1) for shard in model.shards])
    votes = F.one_hot(probabilities.argmax(-1), blood.n_classes).sum(0).float()
    assert torch.isfinite(outputs).all()
    torch.testing.assert_close(outputs.exp(), (votes + probabilities.mean(0)) / 4)
    assert torch.equal(outputs.argmax(1), (votes + probabilities.mean(0)).argmax(1))


@pytest.mark.parametrize("path", CPU_PATHS)
@pytest.mark.parametrize("aggregate", ["mean", "vote"])
def test_every_inference_path_keeps_the_aggregates_outputs(
    blood, cache_dir, path, aggregate, sharded_recipe, sharded_model
):
    """Folding batch norm into each shard's convs, and oneDNN regions per shard, give the
    eager outputs up to float rounding."""
    recipe = sharded_recipe(shards=3, slices=1, epochs=1, aggregate=aggregate)
    model = sharded_model(blood, Store(cache_dir), recipe).eval()
    images = blood.test.images
    with torch.inference_mode():
        expected = model(images)
    runtime = RuntimeConfig(device="cpu", threads=1, eval_batch_size=5, inference_path=path)
    logits = Engine(runtime).logits(model, images)
    torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-4)


def test_folding_reaches_every_shards_batch_norms(blood, cache_dir, sharded_recipe, sharded_model):
    from medunlearn.models import inference_model

    model = sharded_model(blood, Store(cache_dir), sharded_recipe(shards=3, slices=1, epochs=1))
    graph = inference_model(model)
    kinds = {type(module).__name__ for module in graph.modules()}
    assert "BatchNorm2d" not in kinds and "Conv2d" in kinds
    onednn = inference_model(model, onednn=True)
    assert "to_mkldnn" in onednn.code or not torch.backends.mkldnn.is_available()


def test_a_sharded_checkpoint_carries_its_layout_and_its_slices_hashes(
    blood, tmp_path, sharded_recipe, sharded_model, same_state
):
    model = sharded_model(blood, Store(tmp_path / "cache"), sharded_recipe())
    path = tmp_path / "deploy" / "model.safetensors"
    TrainedModel(model, {"model": {"arch": "cnn", "width": 4, "in_channels": 3,
                                   "n_classes": 8}}).save(path, beside=True)  # fmt: skip
    loaded = load_model(path, CNN, blood).model
    assert isinstance(loaded, ShardedModel) and same_state(model, loaded)
    layout, original = loaded.layout, model.layout
    for name in ("shard", "slice", "group"):
        assert np.array_equal(getattr(layout, name), getattr(original, name)), name
    assert not np.array_equal(layout.shard, layout.slice)
    folder = slices_folder(path)
    for saved, kept in zip(loaded.sharding.checkpoints, model.sharding.checkpoints, strict=True):
        for copy, source in zip(saved, kept, strict=True):
            assert copy.path.parent == folder and copy.path.name == source.path.name
            assert copy.sha256 == source.sha256 == file_sha256(copy.path)
    meta = load_checkpoint(path)[1]["sharding"]
    first = model.sharding.checkpoints[0][0].path.name
    assert meta["checkpoints"][0][0]["path"] == f"model.slices/{first}"
    assert loaded.sharding.recipe == model.sharding.recipe


def test_a_model_trained_whole_keeps_its_cache_key():
    """The sharding fields leave a whole model's recipe key as it was before they existed, so
    its cached original is still found; a sharded recipe keys on them."""
    whole = TrainConfig(epochs=3)
    before = {k: v for k, v in dataclasses.asdict(whole).items()
              if k not in ("shards", "slices", "aggregate")}  # fmt: skip
    assert cache_key("x", recipe_key(whole)) == cache_key("x", before)
    assert recipe_key(dataclasses.replace(whole, shards=2))["shards"] == 2


def test_patients_keep_a_shard_model_trained_on_whole_patients(
    write_npz, cache_dir, sharded_recipe, sharded_model
):
    root = write_npz("bloodmnist", 160, 16, 16).parent
    dataset = load_medmnist("bloodmnist", 28, root=root, download=False)
    dataset.patients = synthetic_patients(len(dataset.train), seed=1)
    model = sharded_model(dataset, Store(cache_dir), sharded_recipe(shards=2, slices=2))
    layout = model.layout
    assert np.array_equal(layout.group, np.unique(dataset.patients, return_inverse=True)[1])
    for patient in np.unique(layout.group):
        assert len(set(layout.shard[layout.group == patient].tolist())) == 1


def test_the_layout_is_drawn_on_the_whole_split_so_removing_images_moves_none(
    blood, engine, tmp_path: Path, sharded_recipe, sharded_model
):
    removed = np.array([1, 5, 9])
    model = sharded_model(blood, Store(tmp_path), sharded_recipe(), removed=removed)
    whole = shard_trainer(CNN, sharded_recipe(), blood, engine, Store(tmp_path), 0).layout
    layout = model.layout
    assert np.array_equal(layout.shard, whole.shard) and np.array_equal(layout.slice, whole.slice)
    assert np.flatnonzero(layout.removed).tolist() == removed.tolist()

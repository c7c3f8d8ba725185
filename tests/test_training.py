"""Training: bitwise reproducible, resumable, and selected on validation only."""

import copy
import itertools

import numpy as np
import pytest
import torch

import medunlearn.training as training
from medunlearn.config import ConfigError, ModelConfig, TrainConfig
from medunlearn.data.medmnist import load_medmnist
from medunlearn.models import build_model
from medunlearn.training import class_weights, make_scheduler, train_model

CNN = ModelConfig(arch="cnn", width=4)


def _recipe(**overrides) -> TrainConfig:
    values = dict(epochs=2, lr=0.05, batch_size=16, schedule="cosine", augment="crop-flip")
    values.update(overrides)
    return TrainConfig(**values)


def _train(dataset, engine, recipe, seed=0, state_path=None, init_seed=None):
    torch.manual_seed(seed if init_seed is None else init_seed)
    model = build_model(CNN, dataset.channels, dataset.n_classes)
    rows = torch.arange(len(dataset.train))
    return train_model(model, dataset, rows, recipe, engine, seed, state_path)


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(
        torch.equal(x, y)
        for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )


def test_same_seed_gives_bitwise_identical_weights(blood, engine):
    first = _train(blood, engine, _recipe())
    second = _train(blood, engine, _recipe())
    assert _same_weights(first.model, second.model)
    assert first.history == second.history
    other = _train(blood, engine, _recipe(), seed=1)
    assert not _same_weights(first.model, other.model)


def test_training_learns_something(blood, engine):
    torch.manual_seed(0)
    model = build_model(CNN, blood.channels, blood.n_classes)
    before = copy.deepcopy(model)
    result = _train(blood, engine, _recipe(epochs=3, augment="none"))
    assert not _same_weights(before, result.model)
    assert [h["epoch"] for h in result.history] == [1, 2, 3]
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    assert result.seconds > 0


def test_state_of_another_recipe_is_not_resumed(blood, engine, tmp_path):
    """A state file written under another recipe (here: fewer epochs) starts a fresh run."""
    full = _train(blood, engine, _recipe())
    state = tmp_path / "state.pt"
    _train(blood, engine, _recipe(epochs=1), state_path=state)
    assert state.is_file()
    restarted = _train(blood, engine, _recipe(), state_path=state)
    assert restarted.history == full.history
    assert _same_weights(restarted.model, full.model)


@pytest.mark.parametrize("schedule", ["cosine", "multistep", "constant"])
def test_interrupted_run_resumes_bitwise(blood, engine, tmp_path, monkeypatch, schedule):
    recipe = _recipe(epochs=3, schedule=schedule)
    full = _train(blood, engine, recipe)
    # a fresh process would build a differently initialised model: the state replaces it
    resumed = _interrupted_then_resumed(blood, engine, recipe, tmp_path / "state.pt", monkeypatch)
    assert resumed.history == full.history
    assert _same_weights(resumed.model, full.model)
    assert resumed.best_epoch == full.best_epoch


def test_selects_the_best_epoch_on_validation_never_test(blood, engine, monkeypatch):
    """A scripted validation score peaks at epoch 2: the model of epoch 2 must come back."""
    scripted = iter([10.0, 50.0, 30.0, 20.0])
    snapshots, seen_images, seen_labels = [], [], []
    real_logits = engine.logits

    def spy_logits(model, images, description=""):
        seen_images.append(images)
        snapshots.append(copy.deepcopy(model.state_dict()))
        return real_logits(model, images, description)

    def spy_score(logits, labels, task):
        seen_labels.append(labels)
        return next(scripted)

    monkeypatch.setattr(engine, "logits", spy_logits)
    monkeypatch.setattr(training, "selection_score", spy_score)
    result = _train(blood, engine, _recipe(epochs=4))
    assert [h["val"] for h in result.history] == [10.0, 50.0, 30.0, 20.0]
    assert (result.best_epoch, result.best_val) == (2, 50.0)
    assert all(images is blood.val.images for images in seen_images)
    assert all(labels is blood.val.labels for labels in seen_labels)
    for key, value in result.model.state_dict().items():
        assert torch.equal(value, snapshots[1][key]), key
    assert not all(torch.equal(v, snapshots[3][k]) for k, v in result.model.state_dict().items())


def test_selected_model_has_the_history_maximum(blood, engine):
    result = _train(blood, engine, _recipe(epochs=4, augment="none"))
    vals = [h["val"] for h in result.history]
    assert result.best_val == max(vals)
    assert result.best_epoch == vals.index(max(vals)) + 1
    logits = engine.logits(result.model, blood.val.images)
    score = training.selection_score(logits, blood.val.labels, blood.task)
    assert score == pytest.approx(result.best_val)


def test_empty_rows_refused(blood, engine):
    model = build_model(CNN, 3, 8)
    with pytest.raises(ValueError, match="empty"):
        train_model(model, blood, torch.tensor([], dtype=torch.long), _recipe(), engine, 0)


def test_class_weights():
    labels = torch.tensor([0, 0, 0, 1, 2, 2])
    weights = class_weights(labels, 4)
    # N / (C * N_c) with N = 6, C = 4; class 3 is absent
    assert weights.tolist() == pytest.approx([6 / 12, 6 / 4, 6 / 8, 0.0])


def test_schedulers():
    def lrs(schedule, epochs):
        optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
        scheduler = make_scheduler(optimizer, schedule, epochs)
        out = []
        for _ in range(epochs):
            out.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
        return out

    assert lrs("constant", 3) == [1.0, 1.0, 1.0]
    assert lrs("multistep", 4) == pytest.approx([1.0, 1.0, 0.1, 0.01])
    cosine = lrs("cosine", 4)
    assert cosine[0] == 1.0 and all(a > b for a, b in itertools.pairwise(cosine))
    with pytest.raises(ConfigError, match="schedule must be one of"):
        TrainConfig(schedule="linear")


def _interrupted_then_resumed(dataset, engine, recipe, state, monkeypatch):
    """Train, stop by an interrupt in epoch 2's validation, resume from the state file."""
    real_logits, calls = engine.logits, []

    def interrupt_in_epoch_2(model, images, description=""):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_logits(model, images, description)

    monkeypatch.setattr(engine, "logits", interrupt_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        _train(dataset, engine, recipe, state_path=state)
    monkeypatch.setattr(engine, "logits", real_logits)
    assert torch.load(state, weights_only=True)["epoch"] == 1
    return _train(dataset, engine, recipe, state_path=state, init_seed=123)


def test_difficulty_survives_an_interruption_bitwise(blood, engine, tmp_path, monkeypatch):
    recipe = _recipe(epochs=3)
    full = _train(blood, engine, recipe)
    resumed = _interrupted_then_resumed(blood, engine, recipe, tmp_path / "s.pt", monkeypatch)
    assert full.difficulty.shape == (len(blood.train),)
    assert np.isfinite(full.difficulty).all()
    assert np.array_equal(resumed.difficulty, full.difficulty)


def test_difficulty_is_each_rows_mean_training_loss(blood, engine):
    """One epoch, one batch, no augmentation: each trained row's difficulty is its CE under the
    initial model in train mode (the forward the step used); rows not trained on are NaN."""
    rows = torch.arange(40)
    recipe = _recipe(epochs=1, batch_size=64, augment="none")
    torch.manual_seed(0)
    model = build_model(CNN, blood.channels, blood.n_classes)
    initial = copy.deepcopy(model).train()
    with torch.no_grad():
        logits = initial(blood.train.images[rows])
    expected = torch.nn.functional.cross_entropy(logits, blood.train.labels[rows], reduction="none")
    result = train_model(model, blood, rows, recipe, engine, seed=0)
    assert result.difficulty[:40] == pytest.approx(expected.numpy(), rel=1e-4, abs=1e-5)
    assert np.isnan(result.difficulty[40:]).all()


def test_difficulty_is_higher_for_mislabelled_samples(write_npz, engine):
    """A quarter of the training labels flipped to another class: those samples stay hard (high
    mean training loss) while the clean ones are learnt; a random proxy ranks them at chance."""
    flipped = np.arange(0, 96, 4)

    def flip(arrays):
        labels = arrays["train_labels"]
        labels[flipped] = (labels[flipped] + 4) % 8

    path = write_npz("bloodmnist", 96, 24, 24, mutate=flip)
    dataset = load_medmnist("bloodmnist", 28, root=path.parent, download=False)
    result = _train(dataset, engine, _recipe(epochs=6, augment="none"))
    is_flipped = np.isin(np.arange(96), flipped)
    noisy, clean = result.difficulty[is_flipped], result.difficulty[~is_flipped]
    # AUC of the proxy for "mislabelled": P(noisy > clean); chance is 0.5
    auc = (noisy[:, None] > clean[None, :]).mean()
    assert auc > 0.9, auc

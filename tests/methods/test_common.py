"""What every registered method owes, checked on each one: the same architecture back, no look
at validation or test data, one result per seed, and the caller's model left untouched."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from medunlearn.config import ForgetConfig, MethodConfig, ModelConfig, TrainConfig, UserError
from medunlearn.data.dataset import Dataset
from medunlearn.data.medmnist import load_medmnist
from medunlearn.forget import select_forget
from medunlearn.methods import METHODS, UnlearnData, unlearn
from medunlearn.methods.registry import method_params, original_recipe
from medunlearn.models import build_model
from medunlearn.training import train_model

# the shortest run of each method that still does all of its work
QUICK = {"scrub": {"msteps": 1}, "sisa": {"shards": 2}}
# methods whose result does not depend on the seed (no shuffling, no random draw; SISA repeats
# the training of the model it is given, with that model's seeds)
DETERMINISTIC = {"ssd", "sisa"}
# the methods that unlearn from a model of a recipe of their own (SISA: shards and slices)
OWN_RECIPE = sorted(name for name, method in METHODS.items() if method.recipe is not None)


# Retrain is the original recipe on the retain set, its epoch chosen on validation like the
# original model's; it alone may read the validation split (no method reads the test split)
READS_VALIDATION = {"retrain"}


class SealedDataset(Dataset):
    """A dataset whose sealed splits raise when read: a method may not use them."""

    sealed_splits: tuple[str, ...] = ("val", "test")

    def __getattribute__(self, name: str):
        if name in ("val", "test") and name in super().__getattribute__("sealed_splits"):
            raise AssertionError(f"the method read the {name} split")
        return super().__getattribute__(name)


def sealed(dataset: Dataset, splits: tuple[str, ...] = ("val", "test")) -> SealedDataset:
    """The dataset with the given held-out splits sealed (its fingerprint kept)."""
    fields = {f.name: getattr(dataset, f.name) for f in dataclasses.fields(dataset)}
    result = SealedDataset(**fields)
    result.sealed_splits = splits
    result.__dict__["fingerprint"] = dataset.fingerprint
    return result


def quick_params(name: str, batch_size: int = 16) -> dict:
    """One epoch and small batches where the method has them, plus its own short settings."""
    fields = {f.name for f in dataclasses.fields(METHODS[name].params)}
    values = (("epochs", 1), ("batch_size", batch_size))
    params = {key: value for key, value in values if key in fields}
    return {**params, **QUICK.get(name, {})}


def _binary_task(write_npz, engine) -> tuple[Dataset, torch.nn.Module]:
    """A tiny PneumoniaMNIST-layout task (label 1 = positive) and a CNN trained on it."""
    root = write_npz("pneumoniamnist", 48, 16, 16).parent
    dataset = load_medmnist("pneumoniamnist", 28, root=root, download=False)
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch="cnn", width=4), dataset.channels, dataset.n_classes)
    recipe = TrainConfig(epochs=2, lr=0.05, batch_size=16, schedule="constant", augment="none")
    rows = torch.arange(len(dataset.train))
    return dataset, train_model(model, dataset, rows, recipe, engine, seed=0).model


@pytest.fixture
def task(
    name, blood, original, write_npz, engine, context, sharded_model
) -> tuple[UnlearnData, torch.nn.Module]:
    """The method's kind of task (binary with a positive class for binary-only methods) with a
    quarter of its training set to forget, its validation and test splits sealed, and the
    trained model to unlearn from: of the method's own recipe where it has one (SISA's model
    trained in shards and slices), else the one original."""
    dataset, model = blood, original
    if METHODS[name].binary_only:
        dataset, model = _binary_task(write_npz, engine)
    own = original_recipe(context.train, MethodConfig(name, quick_params(name)))
    if own != context.train:
        model = sharded_model(dataset, context.store, own)
    forget_set = select_forget(dataset, ForgetConfig(mode="random", fraction=0.25), seed=0)
    splits = ("test",) if name in READS_VALIDATION else ("val", "test")
    return UnlearnData(sealed(dataset, splits), forget_set), model


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of every tensor of the model's state."""
    return {key: value.detach().clone() for key, value in model.state_dict().items()}


def _same(first: dict[str, torch.Tensor], second: dict[str, torch.Tensor]) -> bool:
    """Bitwise equal states (same keys, shapes, values)."""
    return first.keys() == second.keys() and all(
        torch.equal(first[key], second[key]) for key in first
    )


def _unlearn(name: str, data: UnlearnData, model: torch.nn.Module, context, batch_size=16):
    """The method's quickest full run on a copy of `model`."""
    return unlearn(model, data, MethodConfig(name, quick_params(name, batch_size)), context)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_returns_the_architecture_it_was_given_without_touching_it(
    name, task, context
):
    """Same module type, state keys and shapes back; the caller's model bitwise unchanged; and
    the sealed validation and test splits never read (reading one raises)."""
    data, model = task
    before = _state(model)
    result = _unlearn(name, data, model, context)
    after = _state(result.model)
    assert type(result.model) is type(model)
    assert {k: v.shape for k, v in after.items()} == {k: v.shape for k, v in before.items()}
    assert _same(_state(model), before)
    assert not _same(after, before), f"{name} left the model as it was"
    assert result.seconds > 0


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_gives_one_result_per_seed(name, task, context):
    """Two runs with one seed give bitwise the same model; another seed gives another one
    (batches of 4, so that the order the seed draws changes the steps)."""
    data, model = task
    first = _state(_unlearn(name, data, model, context, 4).model)
    second = _state(_unlearn(name, data, model, context, 4).model)
    assert _same(first, second)
    context.seed = 1
    if name not in DETERMINISTIC:
        assert not _same(first, _state(_unlearn(name, data, model, context, 4).model))


@pytest.mark.parametrize("name", OWN_RECIPE)
def test_a_method_of_its_own_recipe_refuses_the_one_original_in_one_line(
    name, original, unlearn_data, context
):
    """The common original is trained whole: a method that needs its own (SISA: in shards and
    slices) refuses it with one line saying what to do, rather than unlearning it wrongly."""
    with pytest.raises(UserError) as error:
        _unlearn(name, unlearn_data, original, context)
    assert "\n" not in str(error.value) and str(error.value)


def test_the_sealed_dataset_really_refuses_its_held_out_splits(blood):
    """The guard the suite relies on: reading val or test raises, training data does not."""
    guarded = sealed(blood)
    assert torch.equal(guarded.train.labels, blood.train.labels)
    assert guarded.fingerprint == blood.fingerprint
    for split in ("val", "test"):
        with pytest.raises(AssertionError, match=split):
            getattr(guarded, split)
    assert len(sealed(blood, ("test",)).val) == len(blood.val)


def _epochs_reported(name: str, params: dict, context) -> int:
    """The epochs a method declares it reports: its epoch param, the recipe's where that is None
    (Retrain), none for a method that trains no epochs."""
    field = METHODS[name].epochs
    if field is None:
        return 0
    value = getattr(method_params(name, params), field)
    return value if value is not None else context.train.epochs


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_that_trains_by_epochs_calls_on_epoch_once_an_epoch(name, task, context):
    """Tuning prunes on `Context.on_epoch`: a method that trains by epochs reports each one,
    in order, with the model it has after that epoch (two epochs here)."""
    data, model = task
    field = METHODS[name].epochs
    params = {**quick_params(name), **({field: 2} if field else {})}
    seen: list[int] = []
    context.on_epoch = lambda epoch, model: seen.append(epoch)
    unlearn(model, data, MethodConfig(name, params), context)
    expected = _epochs_reported(name, params, context)
    assert seen == list(range(1, expected + 1)), (name, seen)
    assert field is None or expected == 2

"""SISA's exact deletion: bitwise the sharded model trained from the start without the forgotten
images, retraining only the shards and slices that held one; refused for a model trained whole
and for slice checkpoints that are missing or altered, with nothing written."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medunlearn.config import MethodConfig, ModelConfig, TrainConfig
from medunlearn.forget import ForgetSet
from medunlearn.methods import Context, UnlearnData, unlearn
from medunlearn.sharding import ShardedModel, ShardingError, deletion_columns, slice_epochs
from medunlearn.store import Store

SISA = MethodConfig("sisa")
CNN = ModelConfig(arch="cnn", width=4)


def _forget(dataset, ids) -> UnlearnData:
    """The fixture with these training ids to forget."""
    forget_set = ForgetSet(np.sort(ids), len(dataset.train), dataset.name, dataset.fingerprint)
    return UnlearnData(dataset, forget_set)


def _context(engine, store: Store, recipe: TrainConfig) -> Context:
    return Context(engine, 0, recipe, CNN, store)


def _ids_in(model: ShardedModel, shard: int, slice_: int, count: int = 1) -> list[int]:
    """The first `count` kept training ids of one slice of one shard."""
    layout = model.layout
    where = (layout.shard == shard) & (layout.slice == slice_) & ~layout.removed
    return np.flatnonzero(where)[:count].tolist()


@pytest.fixture
def sharded(
    blood, tmp_path, sharded_recipe, sharded_model
) -> tuple[ShardedModel, Store, TrainConfig]:
    """3 shards of 3 slices on the fixture, their checkpoints in their own store."""
    recipe = sharded_recipe(epochs=3, shards=3, slices=3)
    store = Store(tmp_path / "deployment")
    return sharded_model(blood, store, recipe), store, recipe


def test_deletion_equals_training_from_the_start_without_the_images(
    blood, engine, tmp_path, sharded, sharded_model, same_state
):
    """The exactness proof: images in shard 0's first slice (retrained from the shard's seeded
    initial weights) and shard 2's last slice (from its checkpoint before); the result equals,
    bitwise, a sharded model trained from scratch without them with the same seed, in a store
    of its own (so nothing is shared but the seed)."""
    model, store, recipe = sharded
    ids = _ids_in(model, 0, 0, 2) + _ids_in(model, 2, 2)
    result = unlearn(model, _forget(blood, ids), SISA, _context(engine, store, recipe)).model
    scratch = sharded_model(blood, Store(tmp_path / "scratch"), recipe, removed=np.array(ids))
    assert same_state(result, scratch)
    assert not same_state(result, model)
    assert same_state(result.shards[1], model.shards[1])  # untouched
    assert result.sharding.retrained == [(0, 0), (0, 1), (0, 2), (2, 2)]


def test_a_second_deletion_keeps_the_first_one_out(
    blood, engine, tmp_path, sharded, sharded_model, same_state
):
    model, store, recipe = sharded
    context = _context(engine, store, recipe)
    first, second = _ids_in(model, 1, 1), _ids_in(model, 1, 0)
    once = unlearn(model, _forget(blood, first), SISA, context).model
    twice = unlearn(once, _forget(blood, second), SISA, context).model
    scratch = sharded_model(blood, Store(tmp_path / "scratch"), recipe,
                    removed=np.array(first + second))  # fmt: skip
    assert same_state(twice, scratch)


def test_only_the_touched_shards_from_the_first_touched_slice_are_trained(
    blood, engine, sharded, batch_rows
):
    model, store, recipe = sharded
    ids = _ids_in(model, 1, 2) + _ids_in(model, 1, 1)
    before = len(batch_rows)
    result = unlearn(model, _forget(blood, ids), SISA, _context(engine, store, recipe))
    stages = {frozenset(rows) for rows in batch_rows[before:]}
    layout = result.model.layout
    assert stages == {frozenset(layout.rows(1, 1).tolist()), frozenset(layout.rows(1, 2).tolist())}
    assert not set(ids) & set().union(*stages)
    columns = deletion_columns(result.model, np.array(ids))
    assert (columns["shards_retrained"], columns["slices_retrained"]) == (1, 2)
    assert 0 < columns["retrain_share"] < 1 / 3


def test_its_run_time_counts_only_what_it_retrained(blood, engine, sharded):
    """Deleting one image of a last slice retrains one stage: far less time than the sharded
    training's nine stages (compared through the stages' own recorded seconds, not a timing
    assertion: the run time is the retrained stage's plus the checks around it)."""
    model, store, recipe = sharded
    ids = _ids_in(model, 0, 2)
    result = unlearn(model, _forget(blood, ids), SISA, _context(engine, store, recipe))
    retrained = result.model.sharding.checkpoints[0][2]
    assert result.model.sharding.retrained == [(0, 2)]
    assert retrained.seconds <= result.seconds < model.sharding.seconds


def test_the_expected_shares_of_one_random_image(blood, engine, sharded):
    """One unit touches one shard: expected 1; its expected share of the work is the work of
    each stage weighted by the chance that the unit lies in its slices."""
    model, store, recipe = sharded
    ids = _ids_in(model, 2, 1)
    result = unlearn(model, _forget(blood, ids), SISA, _context(engine, store, recipe)).model
    columns = deletion_columns(result, np.array(ids))
    assert columns["shards_expected"] == pytest.approx(1.0)
    layout, epochs = model.layout, slice_epochs(3, 3)
    work = np.array([[epochs[r] * layout.rows(k, r).size for r in range(3)] for k in range(3)])
    chance = np.array([[layout.rows(k, r).size / len(blood.train) for r in range(3)]
                       for k in range(3)])  # fmt: skip
    expected = (work * chance).sum() / work.sum()
    assert columns["retrain_share_expected"] == pytest.approx(expected)
    assert columns["retrain_share"] == pytest.approx(work[2, 1:].sum() / work.sum())


def test_a_model_trained_whole_is_refused_in_one_line(original, unlearn_data, context):
    with pytest.raises(ShardingError, match=r"trained whole: delete with retrain") as error:
        unlearn(original, unlearn_data, SISA, context)
    assert "\n" not in str(error.value)


def test_a_study_cannot_give_it_an_unsharded_recipe():
    from medunlearn.config import ConfigError
    from medunlearn.methods.registry import original_recipe

    whole = TrainConfig(epochs=4)
    with pytest.raises(ConfigError, match="sisa deletes exactly from a model trained in shards"):
        original_recipe(whole, SISA)
    recipe = original_recipe(whole, MethodConfig("sisa", {"shards": 4, "slices": 2}))
    assert (recipe.shards, recipe.slices, recipe.epochs) == (4, 2, 4)


def _slice_files(store: Store) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in (store.root / "slices").iterdir()}


def test_a_missing_slice_checkpoint_is_refused_and_nothing_is_written(blood, engine, sharded):
    model, store, recipe = sharded
    model.sharding.checkpoints[1][0].path.unlink()
    before = _slice_files(store)
    with pytest.raises(ShardingError, match=r"\(shard 2, slice 1\) is missing") as error:
        unlearn(model, _forget(blood, _ids_in(model, 0, 2)), SISA, _context(engine, store, recipe))
    assert "\n" not in str(error.value)
    assert _slice_files(store) == before
    assert not (store.root / "states").exists() or not any((store.root / "states").iterdir())


def test_an_altered_slice_checkpoint_is_refused_by_its_hash(blood, engine, sharded):
    model, store, recipe = sharded
    path = model.sharding.checkpoints[2][1].path
    data = bytearray(path.read_bytes())
    data[-1] ^= 1  # one bit of one weight
    path.write_bytes(bytes(data))
    before = _slice_files(store)
    with pytest.raises(ShardingError, match=r"\(shard 3, slice 2\) was altered: its SHA-256"):
        unlearn(model, _forget(blood, _ids_in(model, 0, 2)), SISA, _context(engine, store, recipe))
    assert _slice_files(store) == before


def test_emptying_a_shard_is_refused(blood, engine, sharded):
    model, store, recipe = sharded
    layout = model.layout
    ids = np.flatnonzero(layout.shard == 1)
    with pytest.raises(ShardingError, match="shard 2 would keep no image"):
        unlearn(model, _forget(blood, ids), SISA, _context(engine, store, recipe))


def test_asking_for_other_shards_than_the_models_is_refused(blood, engine, sharded):
    model, store, recipe = sharded
    method = MethodConfig("sisa", {"shards": 4})
    with pytest.raises(
        ShardingError,
        match=r"asked for \{'shards': 4\}, but the model was trained with \{'shards': 3\}",
    ):
        unlearn(
            model, _forget(blood, _ids_in(model, 0, 2)), method, _context(engine, store, recipe)
        )


def test_an_interrupted_deletion_resumes_its_finished_stages(
    blood, engine, sharded, monkeypatch, same_state
):
    """A stop after the first retrained stage: the rerun reads that stage back (its seconds
    counted) and gives the uninterrupted result."""
    import medunlearn.sharding as sharding

    model, store, recipe = sharded
    ids = _ids_in(model, 0, 1)
    data, context = _forget(blood, ids), _context(engine, store, recipe)
    real, calls = sharding.ShardTrainer._stage, []

    def stop_at_second(self, *args, **kwargs):
        calls.append(args[:2])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(sharding.ShardTrainer, "_stage", stop_at_second)
    with pytest.raises(KeyboardInterrupt):
        unlearn(model, data, SISA, context)
    monkeypatch.setattr(sharding.ShardTrainer, "_stage", real)
    resumed = unlearn(model, data, SISA, context)
    fresh_store = Store(store.root.parent / "other")
    for shard in model.sharding.checkpoints:  # the same deployment, in a store of its own
        for checkpoint in shard:
            (fresh_store.root / "slices").mkdir(parents=True, exist_ok=True)
            (fresh_store.root / "slices" / checkpoint.path.name).write_bytes(
                checkpoint.path.read_bytes()
            )
    straight = unlearn(model, data, SISA, _context(engine, fresh_store, recipe))
    assert same_state(resumed.model, straight.model)
    assert resumed.seconds >= resumed.model.sharding.checkpoints[0][1].seconds
    assert torch.equal(resumed.model.removed, straight.model.removed)


def test_a_sharded_retrain_leaves_out_what_earlier_requests_forgot(
    blood, engine, tmp_path, sharded
):
    """A deployment's Retrain of a later request trains on neither its images nor any earlier
    request's (the ForgetSet's `excluded`)."""
    _, store, recipe = sharded
    forget_set = ForgetSet(np.array([4]), len(blood.train), blood.name, blood.fingerprint,
                           excluded=np.array([9, 30]))  # fmt: skip
    result = unlearn(None, UnlearnData(blood, forget_set), MethodConfig("retrain"),
                     _context(engine, store, recipe)).model  # fmt: skip
    assert np.flatnonzero(result.layout.removed).tolist() == [4, 9, 30]

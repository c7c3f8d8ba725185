"""Each random step of a run has its own seed, recorded in its row."""

import torch

import medunlearn.methods.retrain as retrain_module
from medunlearn.config import MethodConfig
from medunlearn.experiment import run
from medunlearn.seeds import Seeds, derived_seed


def test_every_role_has_its_own_seed_and_the_same_one_each_time():
    seeds = Seeds(3)
    roles = [seeds.unlearn, seeds.retrain, seeds.attack, seeds.bank(0), seeds.bank(1)]
    roles += [seeds.repeat(0)]
    assert len(set(roles)) == len(roles)
    assert seeds.seed not in roles
    assert (seeds.train, seeds.forget) == (3, 3)
    assert Seeds(3).retrain == seeds.retrain != Seeds(4).retrain
    assert 0 <= derived_seed(3, "x") < 2**31


def test_retrain_does_not_start_from_the_original_models_initial_weights(
    make_config, tmp_path, monkeypatch
):
    """The original and Retrain are built from different seeds, and each row records them."""
    initial = []
    real = retrain_module.build_model

    def record(*args):
        model = real(*args)
        initial.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
        return model

    monkeypatch.setattr(retrain_module, "build_model", record)
    rows = run(make_config([MethodConfig("ft", {"epochs": 1})]), tmp_path / "out")
    torch.manual_seed(0)
    original_init = torch.cat([p.detach().flatten() for p in real(
        make_config().model, 3, 8).parameters()])  # fmt: skip
    assert len(initial) == 1
    assert not torch.equal(initial[0], original_init)
    seeds = Seeds(0)
    for row in rows:
        assert row["retrain_seed"] == seeds.retrain
        assert (row["train_seed"], row["unlearn_seed"]) == (0, seeds.unlearn)
        assert row["attack_seed"] == seeds.attack

"""Bad Teacher: forget rows are distilled from a random (incompetent) teacher, retain rows from the
original; only all forget rows and a seeded fraction of the retain set are trained on."""

import copy
import dataclasses

import pytest
import torch
import torch.nn.functional as F

import medunlearn.methods.bad_teacher as bad_teacher_module
from medunlearn.config import ConfigError, MethodConfig
from medunlearn.engine import Batch
from medunlearn.methods import unlearn
from medunlearn.methods.registry import method_params
from medunlearn.methods.retrain import fresh_model


def _changed(before: torch.nn.Module, after: torch.nn.Module) -> bool:
    return any(
        not torch.equal(a, b) for a, b in zip(before.parameters(), after.parameters(), strict=True)
    )


def test_forget_targets_are_the_random_teachers_and_retain_the_originals(
    original, unlearn_data, context, monkeypatch
):
    captured, targets = {}, []

    def capture(model, params, ctx, epoch_batches, epoch_loss, after_step=None):
        captured["loss"] = epoch_loss(0, ctx.engine.generator(0))
        return model

    real_kl = bad_teacher_module.distill_kl

    def spy(student_logits, teacher_probs, temperature):
        targets.append(teacher_probs)
        return real_kl(student_logits, teacher_probs, temperature)

    monkeypatch.setattr(bad_teacher_module, "fit_method", capture)
    monkeypatch.setattr(bad_teacher_module, "distill_kl", spy)
    temperature = 2.0
    params = {"kl_temperature": temperature}
    unlearn(original, unlearn_data, MethodConfig("bad-teacher", params), context)

    train = unlearn_data.dataset.train
    rows = torch.cat([unlearn_data.retain_index[:4], unlearn_data.forget_index[:4]])
    batch = Batch(train.images[rows], train.labels[rows], rows)
    logits = torch.randn(8, 8, generator=torch.Generator().manual_seed(0))
    loss = captured["loss"](logits, batch)

    incompetent = fresh_model(context, unlearn_data).eval()
    with torch.no_grad():
        bad = F.softmax(incompetent(batch.images) / temperature, dim=1)
        good = F.softmax(original.eval()(batch.images) / temperature, dim=1)
    (target,) = targets
    torch.testing.assert_close(target[:4], good[:4])
    torch.testing.assert_close(target[4:], bad[4:])
    assert (bad - good).abs().amax(dim=1).min() > 1e-3  # the teachers differ on every row
    log_student = F.log_softmax(logits / temperature, dim=1)
    expected = (target * (target.log() - log_student)).sum(dim=1).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_trains_on_all_forget_rows_and_a_seeded_retain_fraction(
    original, unlearn_data, context, batch_rows
):
    method = MethodConfig("bad-teacher", {"batch_size": 16, "retain_fraction": 0.35})
    forget = set(unlearn_data.forget_index.tolist())
    retain = set(unlearn_data.retain_index.tolist())
    subsets = []
    for seed in (0, 0, 1):
        batch_rows.clear()
        unlearn(original, unlearn_data, method, dataclasses.replace(context, seed=seed))
        (seen,) = batch_rows  # one loader: forget and retain rows shuffled together
        assert forget <= seen
        subsets.append(seen - forget)
        assert subsets[-1] <= retain
        assert len(subsets[-1]) == int(0.35 * len(retain))  # rounded down, as the authors
    assert subsets[0] == subsets[1]
    assert subsets[0] != subsets[2]


def test_runs_and_changes_the_model(original, unlearn_data, context):
    params = {"epochs": 1, "lr": 0.05, "batch_size": 8}
    model = unlearn(original, unlearn_data, MethodConfig("bad-teacher", params), context).model
    assert _changed(original, model)
    assert model.state_dict().keys() == original.state_dict().keys()


def test_needs_the_model_config(original, unlearn_data, context):
    context = dataclasses.replace(context, model_config=None)
    with pytest.raises(ConfigError, match="bad-teacher needs the model config"):
        unlearn(original, unlearn_data, MethodConfig("bad-teacher", {}), context)


def test_defaults_are_the_authors():
    params = method_params("bad-teacher", {})
    assert (params.epochs, params.batch_size, params.kl_temperature) == (1, 256, 1.0)
    assert params.retain_fraction == 0.3
    assert (params.lr, params.momentum, params.weight_decay) == (1e-3, 0.9, 0.0)  # SGD for Adam


def test_bad_teacher_is_seeded(original, unlearn_data, context):
    method = MethodConfig("bad-teacher", {"epochs": 1, "batch_size": 8})
    first = unlearn(copy.deepcopy(original), unlearn_data, method, context).model
    second = unlearn(copy.deepcopy(original), unlearn_data, method, context).model
    assert not _changed(first, second)

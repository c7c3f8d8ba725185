"""Boundary Expanding: the head is widened by a shadow class the forget samples are trained
into, then pruned back to C outputs with the trained rows; the architecture is unchanged."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import medunlearn.methods.boundary_expanding as be
from medunlearn.config import MethodConfig, ModelConfig
from medunlearn.methods import unlearn
from medunlearn.methods.boundary_expanding import SHADOW_STD, BoundaryExpandingParams, widen
from medunlearn.models import ModelError, build_model, last_linear, replace_submodule


@pytest.mark.parametrize("arch", ["cnn", "resnet18-small"])
def test_last_linear_is_the_classifier_head(arch):
    model = build_model(ModelConfig(arch=arch, width=4), 3, 8)
    name, head = last_linear(model)
    expected = model[1][-1] if arch == "cnn" else model[1].fc
    assert head is expected
    assert head.out_features == 8
    replacement = nn.Linear(head.in_features, 8)
    replace_submodule(model, name, replacement)
    assert last_linear(model)[1] is replacement


def test_last_linear_without_a_linear():
    with pytest.raises(ModelError, match=r"no nn\.Linear"):
        last_linear(nn.Sequential(nn.Conv2d(1, 1, 1)))


def test_widen_keeps_the_rows_and_draws_the_shadow_as_the_authors():
    head = nn.Linear(256, 8)
    wide = widen(head, torch.Generator().manual_seed(0))
    assert (wide.in_features, wide.out_features) == (256, 9)
    assert torch.equal(wide.weight[:8], head.weight)
    assert torch.equal(wide.bias[:8], head.bias)
    assert wide.bias[8] == 0
    assert wide.weight[8].std().item() == pytest.approx(SHADOW_STD, rel=0.2)


def test_trains_the_forget_rows_into_the_shadow_class_then_prunes_it(
    unlearn_data, context, original, batch_rows, monkeypatch
):
    captured = {"logits": []}
    real_fit = be.fit_method

    def recording_fit(model, params, ctx, epoch_batches, epoch_loss, after_step=None):
        wide = last_linear(model)[1]
        captured["start"] = copy.deepcopy(wide)

        def recording_loss(epoch, generator):
            loss_fn = epoch_loss(epoch, generator)

            def loss(logits, batch):
                value = loss_fn(logits, batch)
                captured["logits"].append(logits.detach())
                shadow = torch.full_like(batch.labels, unlearn_data.n_classes)
                assert value.item() == pytest.approx(F.cross_entropy(logits, shadow).item())
                return value

            return loss

        trained = real_fit(model, params, ctx, epoch_batches, recording_loss, after_step)
        captured["trained"] = copy.deepcopy(last_linear(trained)[1])
        return trained

    monkeypatch.setattr(be, "fit_method", recording_fit)
    method = MethodConfig("boundary-expanding", {"epochs": 2, "lr": 0.05, "batch_size": 8})
    model = unlearn(original, unlearn_data, method, context).model
    n_classes = unlearn_data.n_classes
    # training: C + 1 outputs, forget rows only, towards class C
    assert captured["logits"] and all(lg.shape[1] == n_classes + 1 for lg in captured["logits"])
    assert set().union(*batch_rows) == set(unlearn_data.forget_index.tolist())
    original_head = last_linear(original)[1]
    assert torch.equal(captured["start"].weight[:n_classes], original_head.weight)
    # after: the pruned head holds the trained rows, and the architecture is the input's
    head = last_linear(model)[1]
    assert head.out_features == n_classes
    assert torch.equal(head.weight, captured["trained"].weight[:n_classes])
    assert torch.equal(head.bias, captured["trained"].bias[:n_classes])
    assert not torch.equal(head.weight, original_head.weight)
    before, after = original.state_dict(), model.state_dict()
    assert list(before) == list(after)
    assert all(before[k].shape == after[k].shape for k in before)


def test_expanding_pushes_forget_samples_away_from_their_labels(unlearn_data, context, original):
    rows = unlearn_data.forget_index
    images, labels = (
        unlearn_data.dataset.train.images[rows],
        unlearn_data.dataset.train.labels[rows],
    )
    engine = context.engine
    method = MethodConfig("boundary-expanding", {"epochs": 3, "lr": 0.05, "batch_size": 8})
    model = unlearn(original, unlearn_data, method, context).model
    before = F.cross_entropy(engine.logits(original, images), labels)
    after = F.cross_entropy(engine.logits(model, images), labels)
    assert after > before


def test_defaults_are_the_authors():
    params = BoundaryExpandingParams()
    assert (params.epochs, params.lr, params.batch_size) == (10, 1e-5, 64)
    assert (params.momentum, params.weight_decay) == (0.9, 0.0)

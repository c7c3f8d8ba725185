"""SSD: exactly the weights with I_f > alpha * I_D are scaled, by exactly min(lambda I_D / I_f, 1),
every other number of the model stays bitwise, the importances are those of the authors (eval
mode, forget set and full training set), and no optimiser ever steps."""

import copy

import pytest
import torch
import torch.nn.functional as F

import medunlearn.training
from medunlearn.config import ConfigError, MethodConfig
from medunlearn.methods import unlearn
from medunlearn.methods.registry import method_params
from medunlearn.methods.ssd import SSDParams, ssd_importances


def test_defaults_are_the_authors():
    params = SSDParams()
    assert (params.alpha, params.dampening, params.batch_size, params.augment) == (
        10.0,
        1.0,
        128,
        "none",
    )
    with pytest.raises(ConfigError, match=r"methods\.ssd\.params\.dampening must be >= 0"):
        method_params("ssd", {"dampening": -1})


@pytest.mark.parametrize(("alpha", "dampening"), [(10.0, 1.0), (1.0, 1.0), (1.0, 3.0)])
def test_exactly_the_selected_weights_are_dampened(
    original, unlearn_data, context, alpha, dampening
):
    values = {"alpha": alpha, "dampening": dampening, "batch_size": 16}
    full, forget = ssd_importances(
        copy.deepcopy(original), unlearn_data, SSDParams(**values), context
    )
    before = copy.deepcopy(original.state_dict())
    model = unlearn(original, unlearn_data, MethodConfig("ssd", values), context).model
    selected_total = scaled_total = 0
    for name, p in model.named_parameters():
        old, new = before[name], p.detach()
        selected = forget[name] > alpha * full[name]
        assert torch.equal(new[~selected], old[~selected]), name
        factor = torch.clamp(dampening * full[name][selected] / forget[name][selected], max=1)
        assert torch.equal(new[selected], old[selected] * factor), name
        selected_total += int(selected.sum())
        scaled_total += int((factor < 1).sum())
    for name, buffer in model.named_buffers():  # batch-norm running statistics
        assert torch.equal(buffer, before[name]), name
    if alpha == 1.0:
        assert selected_total > 0 and scaled_total > 0
    if dampening == 3.0:  # lambda > alpha: some selected factors reach the bound 1
        assert scaled_total < selected_total


def test_importances_in_eval_mode_on_forget_and_full_set(original, unlearn_data, context):
    """One batch holding every row: I = (grad of the mean CE)^2, order-free, BN in eval mode."""
    full, forget = ssd_importances(
        copy.deepcopy(original), unlearn_data, SSDParams(batch_size=64), context
    )
    train = unlearn_data.dataset.train
    model = copy.deepcopy(original).eval()
    for rows, got in [(unlearn_data.forget_index, forget), (torch.arange(64), full)]:
        model.zero_grad()
        F.cross_entropy(model(train.images[rows]), train.labels[rows]).backward()
        for name, p in model.named_parameters():
            assert torch.allclose(got[name], p.grad**2, rtol=1e-4, atol=1e-12), name


def test_batches_cover_forget_then_full_training_set(original, unlearn_data, context, batch_rows):
    unlearn(original, unlearn_data, MethodConfig("ssd", {"batch_size": 16}), context)
    assert batch_rows == [set(unlearn_data.forget_index.tolist()), set(range(64))]


def test_no_optimiser_step(original, unlearn_data, context, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("SSD took a gradient step")

    monkeypatch.setattr(torch.optim.SGD, "step", refuse)
    monkeypatch.setattr(medunlearn.training, "train_one_epoch", refuse)
    monkeypatch.setattr(medunlearn.training, "fit", refuse)
    method = MethodConfig("ssd", {"alpha": 1.0, "batch_size": 16})
    model = unlearn(original, unlearn_data, method, context).model
    assert any(
        not torch.equal(a, b)
        for a, b in zip(model.parameters(), original.parameters(), strict=True)
    )
    assert all(p.grad is None for p in model.parameters())


def test_deterministic_for_a_seed(original, unlearn_data, context):
    method = MethodConfig("ssd", {"alpha": 1.0, "batch_size": 16, "augment": "crop-flip"})
    first = unlearn(original, unlearn_data, method, context).model
    second = unlearn(original, unlearn_data, method, context).model
    for a, b in zip(first.parameters(), second.parameters(), strict=True):
        assert torch.equal(a, b)

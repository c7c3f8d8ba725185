"""Influence unlearning (wfisher): the step is theta + alpha H^-1 v with H = damping I + G^T G / m
built explicitly from retain per-sample gradients (so the Woodbury inversion is exact), the
memory cap refuses clearly before any work, the rows used are the right ones, deterministic."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import medunlearn.methods.influence as influence_module
from medunlearn.config import ConfigError, MethodConfig
from medunlearn.methods import unlearn
from medunlearn.methods.influence import InfluenceParams, woodbury_solve
from medunlearn.models import Normalize


def _tiny_model() -> nn.Module:
    """A logistic regression on 2x2-pooled pixels, with a batch norm: 110 parameters."""
    torch.manual_seed(0)
    model = nn.Sequential(
        Normalize(), nn.AdaptiveAvgPool2d(2), nn.BatchNorm2d(3), nn.Flatten(), nn.Linear(12, 8)
    )
    with torch.no_grad():
        model[2].running_mean.uniform_(-0.5, 0.5)
        model[2].running_var.uniform_(0.5, 2.0)
        model[2].weight.uniform_(0.5, 1.5)
    return model


def _flat_grad(model, images, labels, reduction="sum") -> torch.Tensor:
    model.zero_grad()
    F.cross_entropy(model(images), labels, reduction=reduction).backward()
    return torch.cat([p.grad.flatten() for p in model.parameters()]).double()


def test_defaults_are_the_salun_code():
    params = InfluenceParams()
    assert (params.alpha, params.max_samples, params.damping, params.batch_size) == (
        0.2,
        1000,
        1.0,
        256,
    )
    assert params.augment is None  # SalUn's loaders carry the training augmentation


@pytest.mark.parametrize("damping", [1.0, 0.05])
def test_step_is_the_explicit_newton_step(unlearn_data, context, damping):
    model = _tiny_model().eval()
    values = {"alpha": 0.5, "damping": damping, "batch_size": 16, "augment": "none"}
    result = unlearn(model, unlearn_data, MethodConfig("wfisher", values), context).model
    train = unlearn_data.dataset.train
    forget, retain = unlearn_data.forget_index, unlearn_data.retain_index
    n_f, n_r = len(forget), len(retain)
    per_sample = torch.stack(
        [_flat_grad(model, train.images[r : r + 1], train.labels[r : r + 1]) for r in retain]
    )
    hessian = damping * torch.eye(per_sample.shape[1], dtype=torch.float64)
    hessian += per_sample.T @ per_sample / n_r
    forget_sum = _flat_grad(model, train.images[forget], train.labels[forget])
    vector = (forget_sum / n_f - per_sample.mean(0)) * n_f / (n_f + n_r)
    theta = torch.cat([p.detach().flatten() for p in model.parameters()]).double()
    expected = theta + 0.5 * torch.linalg.solve(hessian, vector)
    got = torch.cat([p.detach().flatten() for p in result.parameters()]).double()
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-6)
    assert (got - theta).abs().max() > 1e-3


@pytest.mark.parametrize(("m", "n_params", "block"), [(5, 7, 1 << 24), (20, 7, 8), (6, 50, 12)])
def test_woodbury_solve_inverts_the_damped_fisher(monkeypatch, m, n_params, block):
    """Fewer and more samples than parameters, in one block and in column blocks."""
    monkeypatch.setattr(influence_module, "BLOCK_NUMBERS", block)
    generator = torch.Generator().manual_seed(m)
    gradients = torch.randn(m, n_params, generator=generator)
    vector = torch.randn(n_params, generator=generator)
    hessian = 0.3 * torch.eye(n_params, dtype=torch.float64)
    hessian += gradients.double().T @ gradients.double() / m
    expected = torch.linalg.solve(hessian, vector.double()).float()
    assert torch.allclose(woodbury_solve(gradients, vector, 0.3), expected, rtol=1e-5, atol=1e-6)


def test_memory_cap_refuses_before_any_work(original, unlearn_data, context, batch_rows):
    method = MethodConfig("wfisher", {"max_memory_gb": 1e-4, "max_samples": 40})
    with pytest.raises(ConfigError) as raised:
        unlearn(original, unlearn_data, method, context)
    message = str(raised.value)
    assert "40 per-sample gradients of 6540 parameters" in message
    assert "GB" in message and "max_memory_gb" in message and "max_samples" in message
    assert batch_rows == []


def test_rows_forget_retain_then_a_retain_sample(original, unlearn_data, context, batch_rows):
    method = MethodConfig("wfisher", {"max_samples": 10, "batch_size": 16})
    model = unlearn(original, unlearn_data, method, context).model
    forget, retain = (
        set(unlearn_data.forget_index.tolist()),
        set(unlearn_data.retain_index.tolist()),
    )
    assert batch_rows[:2] == [forget, retain]
    assert len(batch_rows) == 3 and len(batch_rows[2]) == 10 and batch_rows[2] <= retain
    assert any(
        not torch.equal(a, b)
        for a, b in zip(model.parameters(), original.parameters(), strict=True)
    )
    for a, b in zip(model.buffers(), original.buffers(), strict=True):
        assert torch.equal(a, b)


def test_deterministic_for_a_seed(original, unlearn_data, context):
    method = MethodConfig("wfisher", {"max_samples": 10, "batch_size": 16, "augment": "crop-flip"})
    first = unlearn(copy.deepcopy(original), unlearn_data, method, context).model
    second = unlearn(copy.deepcopy(original), unlearn_data, method, context).model
    context.seed = 1
    other = unlearn(copy.deepcopy(original), unlearn_data, method, context).model
    for a, b in zip(first.parameters(), second.parameters(), strict=True):
        assert torch.equal(a, b)
    assert any(
        not torch.equal(a, c) for a, c in zip(first.parameters(), other.parameters(), strict=True)
    )

"""GA, FT, l1-sparse and NegGrad+: each runs, changes the weights, and uses the right rows."""

import copy
import itertools

import pytest
import torch
import torch.nn.functional as F

import medunlearn.methods.l1_sparse as l1_module
import medunlearn.methods.neggrad_plus as ngp
from medunlearn.config import MethodConfig
from medunlearn.engine import Batch
from medunlearn.methods import unlearn
from medunlearn.methods.l1_sparse import L1SparseParams, l1_norm


def _forget_loss(model, data, engine) -> float:
    rows = data.forget_index
    logits = engine.logits(model, data.dataset.train.images[rows])
    return F.cross_entropy(logits, data.dataset.train.labels[rows]).item()


def _changed(before: torch.nn.Module, after: torch.nn.Module) -> bool:
    return any(
        not torch.equal(a, b) for a, b in zip(before.parameters(), after.parameters(), strict=True)
    )


def test_ga_increases_the_forget_loss(unlearn_data, context, engine, original):
    before = _forget_loss(original, unlearn_data, engine)
    method = MethodConfig("ga", {"epochs": 3, "lr": 0.05, "batch_size": 4})
    model = unlearn(copy.deepcopy(original), unlearn_data, method, context).model
    after = _forget_loss(model, unlearn_data, engine)
    assert after > before + 1


def test_ga_sees_only_forget_rows(original, unlearn_data, context, batch_rows):
    method = MethodConfig("ga", {"epochs": 1, "batch_size": 16})
    model = unlearn(original, unlearn_data, method, context).model
    assert set().union(*batch_rows) == set(unlearn_data.forget_index.tolist())
    assert _changed(original, model)


@pytest.mark.parametrize("name", ["ft", "l1-sparse"])
def test_retain_only_methods_run_and_change_weights(
    original, unlearn_data, context, batch_rows, name
):
    model = copy.deepcopy(original)
    result = unlearn(model, unlearn_data, MethodConfig(name, {"epochs": 2, "batch_size": 16}),
                     context)  # fmt: skip
    assert _changed(original, result.model)
    assert set().union(*batch_rows) == set(unlearn_data.retain_index.tolist())
    assert result.seconds > 0


def test_neggrad_plus_runs_on_both_sets(original, unlearn_data, context, batch_rows):
    model = copy.deepcopy(original)
    result = unlearn(model, unlearn_data, MethodConfig("neggrad+", {"epochs": 2, "batch_size": 16}),
                     context)  # fmt: skip
    assert _changed(original, result.model)
    assert set().union(*batch_rows) == set(range(len(unlearn_data.dataset.train)))


def test_neggrad_plus_loss_weights_the_two_sets(unlearn_data, context, monkeypatch, original):
    """alpha * CE(retain) - (1 - alpha) * CE(forget), on one batch built by hand."""
    captured = {}

    def capture(model, params, ctx, epoch_batches, epoch_loss, after_step=None):
        captured["loss"] = epoch_loss(0, ctx.engine.generator(0))
        return model

    monkeypatch.setattr(ngp, "fit_method", capture)
    unlearn(original, unlearn_data,
            MethodConfig("neggrad+", {"alpha": 0.8}), context)  # fmt: skip
    labels = unlearn_data.dataset.train.labels
    rows = torch.cat([unlearn_data.retain_index[:5], unlearn_data.forget_index[:3]])
    batch = Batch(torch.zeros(8), labels[rows], rows)
    logits = torch.randn(8, 8, generator=torch.Generator().manual_seed(0))
    expected = 0.8 * F.cross_entropy(logits[:5], labels[rows[:5]]) - 0.2 * F.cross_entropy(
        logits[5:], labels[rows[5:]]
    )
    assert captured["loss"](logits, batch).item() == pytest.approx(expected.item(), rel=1e-5)


def test_l1_penalty_decays_linearly(unlearn_data, context, monkeypatch, original):
    """strength(epoch) = alpha * (1 - epoch / E) for epoch = 0 .. E-1 (as in REFERENCE.md)."""
    captured = {}

    def capture(model, params, ctx, epoch_batches, epoch_loss, after_step=None):
        captured["epoch_loss"], captured["model"] = epoch_loss, model
        return model

    monkeypatch.setattr(l1_module, "fit_method", capture)
    epochs, alpha = 5, 0.1
    unlearn(copy.deepcopy(original), unlearn_data,
            MethodConfig("l1-sparse", {"epochs": epochs, "alpha": alpha}), context)  # fmt: skip
    labels = unlearn_data.dataset.train.labels
    rows = unlearn_data.retain_index[:6]
    batch = Batch(torch.zeros(6), labels[rows], rows)
    logits = torch.zeros(6, 8)
    ce = F.cross_entropy(logits, labels[rows]).item()
    norm = l1_norm(captured["model"]).item()
    strengths = []
    for epoch in range(epochs):
        loss = captured["epoch_loss"](epoch, None)(logits, batch).item()
        strengths.append((loss - ce) / norm)
    assert strengths == pytest.approx([alpha * (1 - e / epochs) for e in range(epochs)], rel=1e-4)
    assert all(a > b for a, b in itertools.pairwise(strengths))


def test_l1_norm():
    model = torch.nn.Linear(2, 1)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, -2.0]]))
        model.bias.fill_(-0.5)
    assert l1_norm(model).item() == pytest.approx(3.5)
    assert L1SparseParams().alpha > 0


def test_methods_are_seeded(unlearn_data, context, original):
    method = MethodConfig("ft", {"epochs": 1, "batch_size": 16})
    first = unlearn(copy.deepcopy(original), unlearn_data, method, context).model
    second = unlearn(copy.deepcopy(original), unlearn_data, method, context).model
    assert not _changed(first, second)

"""The gradient statistics of SSD, Fisher forgetting and influence unlearning, against hand
computations with plain backward passes in eval mode."""

import copy

import torch
import torch.nn.functional as F

from medunlearn.engine import Batch
from medunlearn.methods.base import sample_rows
from medunlearn.methods.importance import (
    expected_fisher,
    flat_samples,
    gradient_sum,
    per_sample_gradients,
    squared_gradients,
)


def _batch(data, rows) -> Batch:
    train = data.dataset.train
    return Batch(train.images[rows], train.labels[rows], rows)


def _grads(model, images, labels, reduction="mean") -> dict[str, torch.Tensor]:
    model.zero_grad()
    F.cross_entropy(model(images), labels, reduction=reduction).backward()
    return {name: p.grad.clone() for name, p in model.named_parameters()}


def test_per_sample_gradients_equal_batch_one_backward(original, unlearn_data):
    model = copy.deepcopy(original).eval()
    batch = _batch(unlearn_data, unlearn_data.forget_index[:6])
    got = per_sample_gradients(model)(batch.images, batch.labels)
    for i in range(6):
        expected = _grads(model, batch.images[i : i + 1], batch.labels[i : i + 1])
        for name, g in expected.items():
            assert torch.allclose(got[name][i], g, rtol=1e-4, atol=1e-7), name
    flat = flat_samples(got)
    assert flat.shape == (6, sum(p.numel() for p in model.parameters()))
    last = next(reversed(got))
    assert torch.equal(flat[:, -got[last][0].numel() :], got[last].flatten(1))


def test_squared_gradients_average_over_batches_not_samples(original, unlearn_data, engine):
    """Batches of 12 and 4 rows: the mean of the two squared batch gradients."""
    model = copy.deepcopy(original).eval()
    rows = unlearn_data.forget_index
    batches = [_batch(unlearn_data, rows[:12]), _batch(unlearn_data, rows[12:])]
    assert [len(b.index) for b in batches] == [12, 4]
    got = squared_gradients(copy.deepcopy(model), batches, engine)
    hand = [_grads(model, b.images, b.labels) for b in batches]
    for name in got:
        expected = (hand[0][name] ** 2 + hand[1][name] ** 2) / 2
        assert torch.allclose(got[name], expected, rtol=1e-5, atol=1e-12), name


def test_gradient_sum_is_the_gradient_of_the_summed_loss(original, unlearn_data, engine):
    model = copy.deepcopy(original).eval()
    rows = unlearn_data.forget_index
    batches = [_batch(unlearn_data, rows[:5]), _batch(unlearn_data, rows[5:])]
    got = gradient_sum(copy.deepcopy(model), batches, engine)
    train = unlearn_data.dataset.train
    hand = _grads(model, train.images[rows], train.labels[rows], reduction="sum")
    assert torch.allclose(got, torch.cat([g.flatten() for g in hand.values()]), atol=1e-5)


def test_expected_fisher_by_hand(original, unlearn_data):
    """mean over samples of sum_y p(y|x) (grad CE(x, y))^2, one backward per sample and class."""
    model = copy.deepcopy(original).eval()
    rows = unlearn_data.retain_index[:7]
    batches = [_batch(unlearn_data, rows[:4]), _batch(unlearn_data, rows[4:])]
    got = expected_fisher(copy.deepcopy(model), batches, 8)
    train = unlearn_data.dataset.train
    expected = {name: torch.zeros_like(p) for name, p in model.named_parameters()}
    for row in rows:
        image = train.images[row : row + 1]
        probs = model(image).softmax(-1)[0].detach()
        for label in range(8):
            for name, g in _grads(model, image, torch.tensor([label])).items():
                expected[name] += probs[label] * g**2 / len(rows)
    for name in expected:
        assert torch.allclose(got[name], expected[name], rtol=1e-4, atol=1e-12), name


def test_sample_rows_draws_a_subset_or_keeps_all():
    rows = torch.arange(100, 150)
    generator = torch.Generator().manual_seed(0)
    assert torch.equal(sample_rows(rows, None, generator), rows)
    assert torch.equal(sample_rows(rows, 50, generator), rows)
    drawn = sample_rows(rows, 10, generator)
    assert len(drawn) == 10 and len(set(drawn.tolist())) == 10
    assert set(drawn.tolist()) <= set(rows.tolist())
    again = sample_rows(rows, 10, torch.Generator().manual_seed(0))
    assert torch.equal(again, sample_rows(rows, 10, torch.Generator().manual_seed(0)))

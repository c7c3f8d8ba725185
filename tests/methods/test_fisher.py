"""Fisher forgetting: each weight's noise has variance alpha / (its retain Fisher), clamped and
scaled as the authors do, so weights with a large Fisher barely move; class forgetting zeroes the
forgotten classes' classifier rows; deterministic for a seed."""

import copy

import torch

from medunlearn.config import ForgetConfig, MethodConfig
from medunlearn.engine import Batch
from medunlearn.forget import select_forget
from medunlearn.methods import UnlearnData, unlearn
from medunlearn.methods.base import sample_rows
from medunlearn.methods.fisher import FisherParams, forgotten_classes
from medunlearn.methods.importance import expected_fisher

HEAD = ("1.17.weight", "1.17.bias")  # the CNN's final linear layer


def _variance(name: str, p: torch.Tensor, fisher: torch.Tensor, alpha: float) -> torch.Tensor:
    """The authors' variance, written out: alpha / F bounded, x10 on the head and 1-D params."""
    bound = 1e2 if name in HEAD else 1e3
    variance = alpha * torch.clamp(1 / (fisher + 1e-8), max=bound)
    return variance * (10 if name in HEAD or p.ndim == 1 else 1)


def _run(original, data, context, **values):
    values = {"max_samples": 24, **values}
    return unlearn(original, data, MethodConfig("fisher", values), context).model


def _fisher(original, data, context, max_samples=24):
    """The retain Fisher on the rows the method draws first from its seeded generator."""
    rows = sample_rows(data.retain_index, max_samples, context.engine.generator(context.seed))
    train = data.dataset.train
    batch = Batch(train.images[rows], train.labels[rows], rows)
    return expected_fisher(copy.deepcopy(original), [batch], data.n_classes)


def test_defaults_are_the_authors():
    params = FisherParams()
    assert (params.alpha, params.augment, params.max_samples) == (1e-6, "none", 1000)


def test_noise_has_variance_alpha_over_fisher(original, unlearn_data, context):
    """The noise divided by the formula's standard deviation is standard normal, per group."""
    fisher = _fisher(original, unlearn_data, context)
    model = _run(original, unlearn_data, context)
    before = dict(original.named_parameters())
    groups: dict[str, list[torch.Tensor]] = {"conv": [], "1-D": [], "head": []}
    for name, p in model.named_parameters():
        variance = _variance(name, p, fisher[name], 1e-6)
        z = (p.detach() - before[name].detach()) / variance.sqrt()
        group = "head" if name in HEAD else "1-D" if p.ndim == 1 else "conv"
        groups[group].append(z.flatten())
    for group, parts in groups.items():
        z = torch.cat(parts)
        assert abs(float(z.mean())) < 4 / len(z) ** 0.5, group
        assert 0.85 < float(z.std()) < 1.15, (group, len(z), float(z.std()))


def test_weights_with_large_fisher_move_less(original, unlearn_data, context):
    fisher = _fisher(original, unlearn_data, context)
    model = _run(original, unlearn_data, context)
    before = dict(original.named_parameters())
    moves, scores = [], []
    for name, p in model.named_parameters():
        if p.ndim == 4:  # conv weights: one bound, no boost
            moves.append((p.detach() - before[name].detach()).abs().flatten())
            scores.append(fisher[name].flatten())
    moves, scores = torch.cat(moves), torch.cat(scores)
    order = scores.argsort()
    tenth = len(order) // 10
    low, high = moves[order[:tenth]].mean(), moves[order[-tenth:]].mean()
    assert high < low / 2, (float(high), float(low))


def test_tiny_alpha_barely_changes_the_model(original, unlearn_data, context):
    model = _run(original, unlearn_data, context, alpha=1e-14)
    for a, b in zip(model.parameters(), original.parameters(), strict=True):
        assert (a - b).abs().max() < 1e-4
    assert any(
        not torch.equal(a, b)
        for a, b in zip(model.parameters(), original.parameters(), strict=True)
    )
    for a, b in zip(model.buffers(), original.buffers(), strict=True):
        assert torch.equal(a, b)


def test_deterministic_for_a_seed(original, unlearn_data, context):
    first = _run(original, unlearn_data, context)
    second = _run(original, unlearn_data, context)
    context.seed = 1
    other = _run(original, unlearn_data, context)
    for a, b, c in zip(first.parameters(), second.parameters(), other.parameters(), strict=True):
        assert torch.equal(a, b)
        assert not torch.equal(a, c)


def test_fisher_uses_a_sample_of_retain_rows(original, unlearn_data, context, batch_rows):
    _run(original, unlearn_data, context, max_samples=10)
    assert len(batch_rows) == 1 and len(batch_rows[0]) == 10
    assert batch_rows[0] <= set(unlearn_data.retain_index.tolist())


def test_class_forgetting_zeroes_the_forgotten_rows(blood, original, context):
    data = UnlearnData(blood, select_forget(blood, ForgetConfig(mode="class", classes=[2]), 0))
    assert forgotten_classes(data).tolist() == [2]
    model = _run(original, data, context)
    heads = dict(model.named_parameters())
    for name in HEAD:
        row = heads[name].detach()[2]
        assert not torch.equal(row, dict(original.named_parameters())[name].detach()[2])
        z = row / (1e-4 * 10) ** 0.5  # noise of variance 1e-4 x 10 around 0
        assert z.abs().max() < 5, name


def test_random_forgetting_forgets_no_class(unlearn_data):
    assert forgotten_classes(unlearn_data).tolist() == []

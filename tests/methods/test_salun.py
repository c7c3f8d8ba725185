"""SalUn: the mask is global and exact, the saliency is |sum of grads of -CE|, the mask is a
hard constraint under momentum and weight decay, and it is cached."""

import copy

import pytest
import torch
import torch.nn.functional as F

import medunlearn.methods.salun as salun_module
from medunlearn.config import ConfigError, MethodConfig, ModelConfig
from medunlearn.methods import Context, unlearn
from medunlearn.methods.salun import SalUnParams, saliency, salient_mask, top_ratio_mask
from medunlearn.models import build_model


def test_mask_ranks_all_parameters_together():
    generator = torch.Generator().manual_seed(0)
    scores = {
        "conv.weight": torch.rand(4, 3, 3, 3, generator=generator),  # 108 values in [0, 1)
        "bn.weight": torch.rand(4, generator=generator),
        "fc.weight": torch.rand(8, 13, generator=generator) + 10,  # 104 values, all the largest
    }
    total = 108 + 4 + 104
    ratio = 104 / total
    mask = top_ratio_mask(scores, ratio)
    assert mask["fc.weight"].all()
    assert not mask["conv.weight"].any()
    assert not mask["bn.weight"].any()
    assert sum(int(m.sum()) for m in mask.values()) == round(ratio * total)
    for name, score in scores.items():
        assert mask[name].shape == score.shape
        assert mask[name].dtype == torch.bool


@pytest.mark.parametrize("ratio", [0.013, 0.1, 0.37, 0.5, 0.9, 1.0])
def test_mask_keeps_exactly_the_ratio_and_the_largest(ratio):
    generator = torch.Generator().manual_seed(1)
    scores = {"a": torch.rand(50, 7, generator=generator), "b": torch.rand(93, generator=generator)}
    mask = top_ratio_mask(scores, ratio)
    kept = sum(int(m.sum()) for m in mask.values())
    assert kept == round(ratio * (350 + 93))
    inside = torch.cat([scores[k][mask[k]] for k in scores])
    outside = torch.cat([scores[k][~mask[k]] for k in scores])
    if len(outside):
        assert inside.min() > outside.max()


@pytest.mark.parametrize("ratio", [0.0, -0.5, 1.5])
def test_mask_ratio_out_of_range(ratio):
    with pytest.raises(ConfigError, match=r"ratio must be in \(0, 1\]"):
        SalUnParams(ratio=ratio)


def _hand_saliency(model, images, labels, batch_size):
    """|sum over batches of grad(-mean CE)| in eval mode, batches in the given order."""
    model = copy.deepcopy(model).eval()
    model.zero_grad()
    for start in range(0, len(labels), batch_size):
        loss = -F.cross_entropy(model(images[start : start + batch_size]),
                                labels[start : start + batch_size])  # fmt: skip
        loss.backward()
    return {name: p.grad.abs() for name, p in model.named_parameters()}


@pytest.mark.parametrize("batch_size", [1, 64])
def test_saliency_by_hand(unlearn_data, context, batch_size):
    """batch 1: sum of per-sample gradients; one batch: gradient of the mean (order-free)."""
    torch.manual_seed(3)
    model = build_model(ModelConfig(arch="cnn", width=2), 3, 8)
    # non-trivial batch-norm statistics, so that eval and train mode differ
    model.train()
    with torch.no_grad():
        model(unlearn_data.dataset.train.images)
    rows = unlearn_data.forget_index
    images, labels = (
        unlearn_data.dataset.train.images[rows],
        unlearn_data.dataset.train.labels[rows],
    )
    params = SalUnParams(batch_size=batch_size)
    got = saliency(copy.deepcopy(model), unlearn_data, params, context)
    expected = _hand_saliency(model, images, labels, batch_size)
    assert got.keys() == expected.keys()
    for name in expected:
        assert torch.allclose(got[name], expected[name], rtol=1e-4, atol=1e-7), name
    if batch_size == 64:  # the hand computation in train mode differs: eval mode matters
        train_mode = copy.deepcopy(model).train()
        loss = -F.cross_entropy(train_mode(images), labels)
        loss.backward()
        assert any(
            not torch.allclose(p.grad.abs(), expected[n], rtol=1e-3)
            for n, p in train_mode.named_parameters()
        )


def _params(**overrides) -> dict:
    values = {"epochs": 2, "lr": 0.05, "batch_size": 16, "ratio": 0.3}
    values.update(overrides)
    return values


def test_masked_out_weights_never_move(unlearn_data, context, original):
    model = copy.deepcopy(original)
    start = {name: p.detach().clone() for name, p in model.named_parameters()}
    params = SalUnParams(**_params())
    assert (params.momentum, params.weight_decay) == (0.9, 5e-4)
    mask = top_ratio_mask(saliency(copy.deepcopy(model), unlearn_data, params, context), 0.3)
    result = unlearn(model, unlearn_data, MethodConfig("salun", _params()), context)
    moved_in = 0
    for name, p in result.model.named_parameters():
        keep = mask[name]
        assert torch.equal(p.detach()[~keep], start[name][~keep]), name
        moved_in += int((p.detach()[keep] != start[name][keep]).sum())
    total_in = sum(int(m.sum()) for m in mask.values())
    assert moved_in > total_in // 2


def test_without_the_mask_weight_decay_moves_every_weight(unlearn_data, context, original):
    """The control: under RL with the same settings, weights outside the mask do move."""
    model = copy.deepcopy(original)
    start = {name: p.detach().clone() for name, p in model.named_parameters()}
    params = {k: v for k, v in _params().items() if k != "ratio"}
    result = unlearn(model, unlearn_data, MethodConfig("rl", params), context)
    for name, p in result.model.named_parameters():
        assert (p.detach() != start[name]).float().mean() > 0.9, name


def test_ratio_one_is_rl(unlearn_data, context, original):
    """With every weight salient, SalUn is RL: same seed, same weights."""
    first = unlearn(copy.deepcopy(original), unlearn_data,
                    MethodConfig("salun", _params(ratio=1.0, lr=0.013)), context).model  # fmt: skip
    params = {k: v for k, v in _params(lr=0.013).items() if k != "ratio"}
    second = unlearn(copy.deepcopy(original), unlearn_data,
                     MethodConfig("rl", params), context).model  # fmt: skip
    for a, b in zip(first.parameters(), second.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)


def test_mask_is_cached_in_the_store(unlearn_data, context, cache_dir, monkeypatch, original):
    model = copy.deepcopy(original)
    params = SalUnParams(**_params())
    first = salient_mask(model, unlearn_data, params, context)
    files = list((cache_dir / "masks").glob("*.safetensors"))
    assert len(files) == 1

    def no_saliency(*args, **kwargs):
        raise AssertionError("the saliency was computed again instead of read from the cache")

    monkeypatch.setattr(salun_module, "saliency", no_saliency)
    again = salient_mask(model, unlearn_data, params, context)
    assert again.keys() == first.keys()
    assert all(torch.equal(again[k], first[k]) for k in first)
    # the whole method reads it too
    unlearn(copy.deepcopy(model), unlearn_data, MethodConfig("salun", _params()), context)
    # another ratio is another mask
    with pytest.raises(AssertionError, match="computed again"):
        salient_mask(model, unlearn_data, SalUnParams(**_params(ratio=0.5)), context)


def test_no_store_no_cache(unlearn_data, engine, cache_dir, original):
    context = Context(engine, 0, None, None, store=None)
    mask = salient_mask(original, unlearn_data, SalUnParams(**_params()), context)
    assert mask
    assert not cache_dir.exists()


def test_salun_unlearns_towards_random_on_forget(unlearn_data, context, engine, original):
    """SalUn changes the predictions on the forget set more than on the retain set."""
    forget, retain = unlearn_data.forget_index, unlearn_data.retain_index
    images, labels = unlearn_data.dataset.train.images, unlearn_data.dataset.train.labels
    before = engine.logits(original, images)
    params = _params(epochs=5, ratio=0.5, lr=0.05)
    model = unlearn(copy.deepcopy(original), unlearn_data,
                    MethodConfig("salun", params), context).model  # fmt: skip
    after = engine.logits(model, images)

    def nll(logits, rows):
        return F.cross_entropy(logits[rows], labels[rows]).item()

    assert nll(after, forget) - nll(before, forget) > nll(after, retain) - nll(before, retain)

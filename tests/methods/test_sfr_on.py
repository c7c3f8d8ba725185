"""SFR-on: the adaptive forget loss, the forget-remain balanced mask and the two-step update match
hand computations; the mask restricts only the forget step; retain steps preserve the retain
loss; forget steps follow their frequency and schedules; the loop is seeded and resumes bitwise."""

import copy
import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

import medunlearn.methods.sfr_on as sfr
from medunlearn.config import MethodConfig, ModelConfig
from medunlearn.methods import unlearn
from medunlearn.methods.sfr_on import (
    SFROnParams,
    adaptive_forget_loss,
    balanced_saliency_mask,
    cosine_decay,
    fisher_diagonal,
)
from medunlearn.models import build_model


def _rows(data, rows):
    return data.dataset.train.images[rows], data.dataset.train.labels[rows]


def _ce(model, data, engine, rows) -> float:
    logits = engine.logits(model, data.dataset.train.images[rows])
    return F.cross_entropy(logits, data.dataset.train.labels[rows]).item()


def _run(original, data, context, **values):
    return unlearn(original, data, MethodConfig("sfr-on", values), context).model


def test_defaults_are_the_authors():
    p = SFROnParams()
    assert (p.lr, p.momentum, p.weight_decay, p.batch_size, p.schedule) == (
        0.01, 0.9, 5e-4, 128, "cosine"
    )  # fmt: skip
    assert (p.forget_alpha, p.forget_every, p.clip_norm) == (25.0, 5, 7.0)
    assert (p.adaptive_power, p.saliency_threshold) == (0.5, 1.0)


def test_adaptive_loss_by_hand():
    """w_i = l_i^-lambda / sum_j l_j^-lambda, held constant: d loss / d z_i = w_i (p_i - y_i)."""
    generator = torch.Generator().manual_seed(0)
    logits = (3 * torch.randn(6, 4, generator=generator)).requires_grad_()
    labels = torch.tensor([0, 1, 2, 3, 0, 1])
    loss = adaptive_forget_loss(logits, labels, 0.5)
    loss.backward()
    with torch.no_grad():
        probs = logits.softmax(1)
        losses = -probs.log()[torch.arange(6), labels]
        weights = losses**-0.5 / (losses**-0.5).sum()
        grad = weights[:, None] * (probs - F.one_hot(labels, 4))
    assert loss.item() == pytest.approx((weights * losses).sum().item(), rel=1e-6)
    torch.testing.assert_close(logits.grad, grad)
    assert weights.argmax() == losses.argmin()  # the best-fitted sample is pushed hardest
    plain = adaptive_forget_loss(logits, labels, 0.0)
    assert plain.item() == pytest.approx(F.cross_entropy(logits, labels).item(), rel=1e-6)


def test_cosine_decay():
    assert cosine_decay(25.0, 0, 12) == 25.0
    assert cosine_decay(25.0, 6, 12) == pytest.approx(12.5)
    assert cosine_decay(25.0, 12, 12) == pytest.approx(0.0)


@pytest.mark.parametrize("batch_size", [1, 64])
def test_fisher_by_hand(unlearn_data, context, batch_size):
    """Mean over batches of the squared batch gradient of CE, true labels, eval mode."""
    torch.manual_seed(3)
    model = build_model(ModelConfig(arch="cnn", width=2), 3, 8)
    model.train()
    with torch.no_grad():  # non-trivial batch-norm statistics: eval and train mode differ
        model(unlearn_data.dataset.train.images)
    params = SFROnParams(batch_size=batch_size)
    rows = unlearn_data.forget_index
    fisher = fisher_diagonal(copy.deepcopy(model), unlearn_data, rows, params, context)
    images, labels = _rows(unlearn_data, rows)
    hand = copy.deepcopy(model).eval()
    expected = {name: torch.zeros_like(p) for name, p in hand.named_parameters()}
    for start in range(0, len(labels), batch_size):
        hand.zero_grad()
        chunk = slice(start, start + batch_size)
        F.cross_entropy(hand(images[chunk]), labels[chunk]).backward()
        for name, p in hand.named_parameters():
            expected[name] += p.grad.square() / math.ceil(len(labels) / batch_size)
    for name in expected:
        torch.testing.assert_close(fisher[name], expected[name], rtol=1e-4, atol=1e-12)


def test_mask_is_the_fisher_ratio_against_gamma(unlearn_data, context, original, monkeypatch):
    fishers = iter(
        [
            {"w": torch.tensor([2.0, 1.0, 0.0, 3.0, 1e-3])},  # forget
            {"w": torch.tensor([1.0, 1.0, 0.0, 4.0, 0.0])},  # retain
        ]
    )
    monkeypatch.setattr(sfr, "fisher_diagonal", lambda *args: next(fishers))
    mask = balanced_saliency_mask(original, unlearn_data, SFROnParams(), context)
    assert mask["w"].tolist() == [True, True, True, False, True]


def test_no_threshold_masks_nothing(unlearn_data, context, original):
    params = SFROnParams(batch_size=16, saliency_threshold=0.0)
    mask = balanced_saliency_mask(copy.deepcopy(original), unlearn_data, params, context)
    assert all(m.all() for m in mask.values())


def _sgd(model, grads, state, lr, momentum, weight_decay):
    """One torch.optim.SGD step written out: d = g + wd theta, buf = mu buf + d, theta -= lr buf."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            d = grads[name] + weight_decay * p
            state[name] = d.clone() if name not in state else momentum * state[name] + d
            p -= lr * state[name]


def _grads(model, loss):
    model.zero_grad()
    loss.backward()
    return {name: p.grad.clone() for name, p in model.named_parameters()}


def test_update_matches_the_equations_by_hand(unlearn_data, context, original):
    """Two iterations (T = 2), each: theta' = SGD(theta, clip(M * grad(-alpha_t sum_i w_i l_i)))
    on the forget batch, then theta = SGD(theta', grad CE_r(theta')), one shared momentum
    buffer; lr_t and alpha_t follow cosines over T (t = 1: half of both)."""
    values = dict(
        epochs=2, batch_size=64, lr=0.05, momentum=0.9, weight_decay=5e-4, forget_every=1,
        forget_alpha=3.0, clip_norm=0.5, adaptive_power=0.5, saliency_threshold=1.0,
    )  # fmt: skip
    params = SFROnParams(**values)
    mask = balanced_saliency_mask(copy.deepcopy(original), unlearn_data, params, context)
    kept = sum(int(m.sum()) for m in mask.values()) / sum(m.numel() for m in mask.values())
    assert 0 < kept < 1
    result = _run(original, unlearn_data, context, **values)

    hand = copy.deepcopy(original).train()
    forget_x, forget_y = _rows(unlearn_data, unlearn_data.forget_index)
    retain_x, retain_y = _rows(unlearn_data, unlearn_data.retain_index)
    state: dict[str, torch.Tensor] = {}
    clipped = []
    for scale in (1.0, 0.5):
        alpha, lr = 3.0 * scale, 0.05 * scale
        forget = adaptive_forget_loss(hand(forget_x), forget_y, 0.5)
        grads = {k: g * mask[k] for k, g in _grads(hand, -alpha * forget).items()}
        norm = torch.sqrt(sum(g.square().sum() for g in grads.values()))
        clipped.append(norm > 0.5)
        grads = {k: g * min(1.0, 0.5 / (norm.item() + 1e-6)) for k, g in grads.items()}
        _sgd(hand, grads, state, lr, 0.9, 5e-4)
        grads = _grads(hand, F.cross_entropy(hand(retain_x), retain_y))
        _sgd(hand, grads, state, lr, 0.9, 5e-4)
    assert all(clipped)  # the clip was active in both forget steps
    for (name, p), q in zip(result.named_parameters(), hand.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-6, msg=name)


def test_forget_steps_follow_their_frequency_and_schedules(
    unlearn_data, context, original, monkeypatch, batch_rows
):
    """48 retain rows in batches of 4: 12 iterations; forget steps at t = 0, 5, 10, with
    alpha_t and lr_t on cosines over the 12 iterations."""
    calls = []
    real = sfr.forget_step

    def spy(model, optimizer, batch, keep, alpha, params, engine):
        calls.append((alpha, optimizer.param_groups[0]["lr"], batch.index.tolist()))
        return real(model, optimizer, batch, keep, alpha, params, engine)

    monkeypatch.setattr(sfr, "forget_step", spy)
    _run(original, unlearn_data, context, epochs=1, batch_size=4, lr=0.02)
    expected = [(1 + math.cos(math.pi * t / 12)) / 2 for t in (0, 5, 10)]
    assert [c[0] for c in calls] == pytest.approx([25 * e for e in expected])
    assert [c[1] for c in calls] == pytest.approx([0.02 * e for e in expected])
    forget = set(unlearn_data.forget_index.tolist())
    seen = [row for c in calls for row in c[2]]
    assert len(seen) == len(set(seen)) == 12 and set(seen) <= forget
    retain = set(unlearn_data.retain_index.tolist())
    assert sum(rows == retain for rows in batch_rows) == 2  # the retain Fisher and the epoch


def test_mask_restricts_only_the_forget_step(unlearn_data, context, original, monkeypatch):
    values = dict(epochs=2, batch_size=16, forget_every=1, weight_decay=0.0, lr=0.05)
    params = SFROnParams(**values)
    mask = balanced_saliency_mask(copy.deepcopy(original), unlearn_data, params, context)
    assert any(not m.all() for m in mask.values())
    full = _run(original, unlearn_data, context, **values)
    monkeypatch.setattr(sfr, "sgd_step", lambda *args: torch.zeros(()))  # no retain step
    forget_only = _run(original, unlearn_data, context, **values)
    before = dict(original.named_parameters())
    for name, p in forget_only.named_parameters():
        keep = mask[name]
        assert torch.equal(p[~keep], before[name][~keep]), name
    assert all(not torch.equal(p, before[n]) for n, p in forget_only.named_parameters())
    moved = [not torch.equal(p[~mask[n]], before[n][~mask[n]]) for n, p in full.named_parameters()]
    assert any(moved)  # retain steps move every weight


def test_retain_steps_keep_the_retain_loss_down(unlearn_data, context, engine, original,
                                                monkeypatch):  # fmt: skip
    """The remain-preserving part: the same forget steps without the retain steps (plain masked
    adaptive ascent) raise the retain loss far more."""
    values = dict(epochs=3, batch_size=16, forget_every=1, lr=0.05)
    forget_before = _ce(original, unlearn_data, engine, unlearn_data.forget_index)
    full = _run(original, unlearn_data, context, **values)
    monkeypatch.setattr(sfr, "sgd_step", lambda *args: torch.zeros(()))  # no retain step
    plain = _run(original, unlearn_data, context, **values)
    retain, forget = unlearn_data.retain_index, unlearn_data.forget_index
    assert _ce(full, unlearn_data, engine, retain) < _ce(plain, unlearn_data, engine, retain) - 1
    assert _ce(full, unlearn_data, engine, forget) > forget_before + 1


def test_seeded_and_changes_the_model(unlearn_data, context, original):
    values = dict(epochs=1, batch_size=16)
    first = _run(original, unlearn_data, context, **values)
    second = _run(original, unlearn_data, context, **values)
    pairs = list(zip(first.parameters(), second.parameters(), original.parameters(), strict=True))
    assert all(torch.equal(a, b) for a, b, _ in pairs)
    assert any(not torch.equal(a, c) for a, _, c in pairs)


def test_interrupted_run_resumes_bitwise(unlearn_data, context, original, monkeypatch, tmp_path):
    values = dict(epochs=3, batch_size=16, forget_every=2)
    full = _run(original, unlearn_data, context, **values)
    resumable = dataclasses.replace(context, state_path=tmp_path / "sfr.pt")
    real, calls = sfr.sgd_step, []  # the retain step

    def interrupt_in_epoch_2(*args):
        calls.append(1)
        if len(calls) == 5:  # 3 iterations per epoch
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(sfr, "sgd_step", interrupt_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        _run(original, unlearn_data, resumable, **values)
    monkeypatch.setattr(sfr, "sgd_step", real)
    assert torch.load(resumable.state_path, weights_only=True)["epoch"] == 1
    resumed = _run(original, unlearn_data, resumable, **values)
    assert resumable.earlier_seconds > 0  # the first run's epoch counts in the run time
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)

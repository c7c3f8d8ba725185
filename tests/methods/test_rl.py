"""RL: forget samples really get uniform random labels (fresh per batch); retain keep theirs."""

import copy
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import medunlearn.methods.rl as rl
from medunlearn.config import ForgetConfig, MethodConfig, RuntimeConfig
from medunlearn.data import Dataset, Split
from medunlearn.engine import Batch, Engine
from medunlearn.forget import ForgetSet, select_forget
from medunlearn.methods import Context, UnlearnData, unlearn
from medunlearn.methods.base import random_labels
from medunlearn.methods.rl import RLParams, relabelled_loss

C = 8


def _big_data(n: int = 4000) -> UnlearnData:
    """A dataset of n 1-pixel images in 8 balanced classes; the even rows are forgotten."""
    labels = torch.arange(n) % C
    split = Split(torch.zeros(n, 1, 1, 1, dtype=torch.uint8), labels)
    dataset = Dataset("synthetic", 1, C, 1, [str(c) for c in range(C)], split, split, split)
    forget = ForgetSet(np.arange(0, n, 2), n, "synthetic", "x")
    return UnlearnData(dataset, forget)


class CrossEntropySpy:
    """Records the targets of every F.cross_entropy call, then computes it."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[torch.Tensor] = []
        self.real = F.cross_entropy
        monkeypatch.setattr(rl.F, "cross_entropy", self)

    def __call__(self, logits, targets, *args, **kwargs):
        self.calls.append(targets.detach().clone())
        return self.real(logits, targets, *args, **kwargs)


def test_relabelled_loss_changes_forget_labels_only(context, monkeypatch):
    data = _big_data()
    spy = CrossEntropySpy(monkeypatch)
    loss_fn = relabelled_loss(data, RLParams(), context, context.engine.generator(0))
    index = torch.randperm(4000, generator=torch.Generator().manual_seed(1))
    labels = data.dataset.train.labels[index]
    batch = Batch(torch.zeros(4000, 1, 1, 1), labels, index)
    logits = torch.randn(4000, C, generator=torch.Generator().manual_seed(2))
    loss = loss_fn(logits, batch)

    forget = data.is_forget[index]
    forget_targets, retain_targets = spy.calls
    assert len(forget_targets) == int(forget.sum()) == 2000
    assert torch.equal(retain_targets, labels[~forget])
    changed = (forget_targets != labels[forget]).float().mean().item()
    assert changed == pytest.approx((C - 1) / C, abs=0.03)
    counts = torch.bincount(forget_targets, minlength=C)
    assert counts.min() > 0.8 * 2000 / C and counts.max() < 1.2 * 2000 / C
    # the loss is the mean CE over the batch, forget rows with their new labels
    new_labels = labels.clone()
    new_labels[forget] = forget_targets
    assert loss.item() == pytest.approx(F.cross_entropy(logits, new_labels).item(), rel=1e-5)


def test_labels_are_fresh_for_every_batch(context, monkeypatch):
    data = _big_data(400)
    spy = CrossEntropySpy(monkeypatch)
    loss_fn = relabelled_loss(data, RLParams(), context, context.engine.generator(0))
    index = torch.arange(0, 400, 2)  # forget rows only
    batch = Batch(torch.zeros(200, 1, 1, 1), data.dataset.train.labels[index], index)
    logits = torch.zeros(200, C)
    loss_fn(logits, batch)
    loss_fn(logits, batch)
    assert len(spy.calls) == 2
    assert not torch.equal(spy.calls[0], spy.calls[1])


def test_random_labels_uniform_over_all_classes():
    generator = torch.Generator().manual_seed(0)
    labels = torch.full((80_000,), 3)
    drawn = random_labels(labels, C, generator)
    assert drawn.shape == labels.shape and drawn.dtype == torch.int64
    counts = torch.bincount(drawn, minlength=C)
    assert len(counts) == C
    assert (counts - 10_000).abs().max() < 500  # ~5 standard deviations
    # a draw may equal the true label (uniform over all classes, not over the others)
    assert (drawn == 3).float().mean().item() == pytest.approx(1 / C, abs=0.01)


@pytest.mark.parametrize("loader", ["mixed", "sequential"])
def test_rl_run_feeds_random_forget_labels_and_true_retain_labels(
    blood, original, engine, context, monkeypatch, loader
):
    forget_set = select_forget(blood, ForgetConfig(mode="random", fraction=0.5), seed=0)
    data = UnlearnData(blood, forget_set)
    is_forget = data.is_forget
    batches: list[dict] = []
    real_relabelled_loss = rl.relabelled_loss

    def spying_relabelled_loss(*args, **kwargs):
        real = real_relabelled_loss(*args, **kwargs)

        def loss(logits, batch):
            batches.append({"batch": batch, "start": len(spy.calls)})
            return real(logits, batch)

        return loss

    monkeypatch.setattr(rl, "relabelled_loss", spying_relabelled_loss)
    spy = CrossEntropySpy(monkeypatch)
    method = MethodConfig("rl", {"epochs": 4, "lr": 0.01, "batch_size": 16, "loader": loader})
    unlearn(copy.deepcopy(original), data, method, context)

    seen_forget, changed, kinds = 0, 0, []
    for record in batches:
        batch, calls = record["batch"], spy.calls[record["start"] : record["start"] + 2]
        forget = is_forget[batch.index]
        kinds.append("f" if forget.all() else "r" if not forget.any() else "m")
        if forget.any():
            targets = calls.pop(0)
            assert len(targets) == int(forget.sum())
            changed += int((targets != batch.labels[forget]).sum())
            seen_forget += len(targets)
        if (~forget).any():
            assert torch.equal(calls[0], batch.labels[~forget])
    assert seen_forget == 4 * len(forget_set.forget_ids)
    assert changed / seen_forget == pytest.approx((C - 1) / C, abs=0.1)
    if loader == "sequential":
        # each epoch: the forget set's batches, then the retain set's
        assert "".join(kinds) == ("f" * 2 + "r" * 2) * 4
    else:
        assert "m" in kinds


def test_rl_changes_the_model(unlearn_data, context, original):
    start = copy.deepcopy(original)
    result = unlearn(
        original,
        unlearn_data,
        MethodConfig("rl", {"epochs": 1, "batch_size": 16}),
        context,
    )
    assert result.seconds > 0
    changed = [
        not torch.equal(a, b)
        for a, b in zip(start.parameters(), result.model.parameters(), strict=True)
    ]
    assert all(changed)


def test_unknown_loader(unlearn_data, context, original):
    with pytest.raises(ValueError, match="loader"):
        unlearn(
            original,
            unlearn_data,
            MethodConfig("rl", {"epochs": 1, "loader": "interleaved"}),
            context,
        )


def test_the_loss_reads_no_value_of_its_tensors(context, no_value_reads):
    """Mixed, forget-only and retain-only batches: the parts' sizes never come from a tensor
    read into Python (on a GPU, such a read would wait for the device every step)."""
    data = _big_data(400)
    loss_fn = relabelled_loss(data, RLParams(), context, context.engine.generator(0))
    for index in (torch.arange(0, 64), torch.arange(0, 64, 2), torch.arange(1, 64, 2)):
        batch = Batch(torch.zeros(len(index), 1, 1, 1), data.dataset.train.labels[index], index)
        logits = torch.randn(len(index), C, requires_grad=True)
        with no_value_reads():
            loss = loss_fn(logits, batch)
            loss.backward()
        assert torch.isfinite(loss.detach()).all() and logits.grad is not None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_the_loss_waits_for_the_device_once_on_cuda():
    """On a mixed batch, the one synchronising operation is split_rows' nonzero (CUDA's sync
    debug mode warns at each)."""
    engine = Engine(RuntimeConfig(device="cuda"))
    data = _big_data(400)
    loss_fn = relabelled_loss(data, RLParams(), Context(engine), engine.generator(0))
    index = torch.randperm(400, device="cuda")[:256]
    labels = data.dataset.train.labels.cuda()[index]
    batch = Batch(torch.zeros(256, 1, 1, 1, device="cuda"), labels, index)
    logits = torch.randn(256, C, device="cuda")
    loss_fn(logits, batch)  # first calls may set things up
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            loss_fn(logits, batch)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert len([w for w in caught if "synchroniz" in str(w.message)]) == 1

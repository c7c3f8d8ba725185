"""The engine equals a plain reference loop: same batches, same draws, same parameters.

The reference is the textbook loop: one generator, a permutation of the rows, then per batch
images[rows] -> augment(images, generator) -> forward -> cross-entropy -> backward -> SGD step.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from medunlearn.augment import build_augment
from medunlearn.config import ModelConfig, RuntimeConfig
from medunlearn.data import Split
from medunlearn.engine import Engine
from medunlearn.models import build_model
from medunlearn.training import train_one_epoch

N_ROWS, BATCH, CLASSES = 50, 16, 4
SGD = {"lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4}


def _split(n: int = N_ROWS, channels: int = 3, size: int = 12, seed: int = 0) -> Split:
    generator = torch.Generator().manual_seed(seed)
    shape = (n, channels, size, size)
    images = torch.randint(0, 256, shape, dtype=torch.uint8, generator=generator)
    return Split(images, torch.randint(0, CLASSES, (n,), generator=generator))


def _model(channels: int = 3) -> nn.Module:
    torch.manual_seed(0)
    return build_model(ModelConfig("cnn", width=4), channels, CLASSES)


def _reference_epoch(model, optimizer, split, rows, generator, augment) -> tuple[float, list]:
    """One epoch of the plain loop; returns the mean loss and the batches it used."""
    model.train()
    order = torch.randperm(len(rows), generator=generator)
    rows = rows[order]
    losses, batches = [], []
    for chunk in rows.split(BATCH):
        images = split.images[chunk]
        if augment is not None:
            images = augment(images, generator)
        batches.append((images, chunk))
        loss = F.cross_entropy(model(images), split.labels[chunk])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return sum(losses) / len(losses), batches


def _recorded(batches, seen: list):
    """The batches, each also appended to `seen` as it is consumed."""
    for batch in batches:
        seen.append(batch)
        yield batch


def _engine(**runtime) -> Engine:
    return Engine(RuntimeConfig(device="cpu", threads=1, **runtime))


@pytest.mark.parametrize("mode", ["none", "crop-flip", "crop-flip+trivialaugment"])
@pytest.mark.parametrize("channels_last", [False, True])
def test_engine_epochs_equal_the_reference_loop(mode, channels_last):
    split, rows = _split(), torch.arange(5, N_ROWS)  # not every row, not starting at 0
    augment = None if mode == "none" else build_augment(mode)
    engine = _engine(channels_last=channels_last)
    reference = _model()
    model = engine.prepare(copy.deepcopy(reference))
    reference_opt = torch.optim.SGD(reference.parameters(), **SGD)
    optimizer = engine.sgd(model, **SGD)
    reference_gen, generator = torch.Generator().manual_seed(7), engine.generator(7)
    for _epoch in range(2):  # the second epoch continues from the generator's state
        expected_loss, expected = _reference_epoch(
            reference, reference_opt, split, rows, reference_gen, augment
        )
        seen: list = []
        batches = engine.batches(split, rows, BATCH, generator, augment)
        loss = train_one_epoch(
            model, lambda lg, b: F.cross_entropy(lg, b.labels), optimizer,
            _recorded(batches, seen), engine, _epoch,
        )  # fmt: skip
        assert len(seen) == len(expected)
        for batch, (images, chunk) in zip(seen, expected, strict=True):
            assert torch.equal(batch.index, chunk)
            assert torch.equal(batch.images, images)  # same permutation, same draws
            assert torch.equal(batch.labels, split.labels[chunk])
        assert loss == pytest.approx(expected_loss, rel=1e-4, abs=1e-5)
        for p, q in zip(model.parameters(), reference.parameters(), strict=True):
            torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)
        for a, b in zip(model.buffers(), reference.buffers(), strict=True):  # BN statistics
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert torch.equal(generator.get_state(), reference_gen.get_state())


def test_unshuffled_batches_keep_the_row_order():
    engine, split = _engine(), _split()
    rows = torch.tensor([9, 3, 31, 0, 7])
    batches = list(engine.batches(split, rows, 2, engine.generator(0), shuffle=False))
    assert torch.equal(torch.cat([b.index for b in batches]), rows)
    assert torch.equal(torch.cat([b.images for b in batches]), split.images[rows])


@pytest.mark.parametrize("channels", [1, 3])
def test_augmentation_draws_differ_per_sample_within_a_batch(channels):
    # every row holds the same image: any difference in a batch comes from per-sample draws
    image = _split(1, channels, 28).images
    split = Split(image.expand(64, -1, -1, -1).contiguous(), torch.zeros(64, dtype=torch.long))
    engine = _engine()
    augment = build_augment("crop-flip")
    (batch,) = list(engine.batches(split, torch.arange(64), 64, engine.generator(0), augment))
    distinct = torch.unique(batch.images.flatten(1), dim=0).shape[0]
    assert distinct > 32  # 81 crops x 2 flips: nearly every sample differs
    # and the next batch draws afresh
    batches = list(engine.batches(split, torch.arange(64), 32, engine.generator(0), augment))
    assert not torch.equal(batches[0].images, batches[1].images)


@pytest.mark.parametrize("channels", [1, 3])
def test_logits_equal_the_model_in_eval_mode(channels):
    # more images than one CPU inference chunk (128 at 28 px), channels-last internally
    split = _split(300, channels, 28)
    model = _model(channels)
    model.train()
    logits = _engine(eval_batch_size=1024).logits(model, split.images)
    assert not model.training
    with torch.no_grad():
        expected = model(split.images)
    assert logits.dtype == torch.float32 and logits.device.type == "cpu"
    torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-5)


def test_cpu_inference_chunks_are_capped_by_pixels():
    engine = _engine(eval_batch_size=1024)
    assert engine.inference_chunk(torch.empty(0, 3, 28, 28)) == 256
    assert engine.inference_chunk(torch.empty(0, 3, 64, 64)) == 49
    assert engine.inference_chunk(torch.empty(0, 3, 4, 4)) == 1024  # eval_batch_size bounds it
    assert _engine(eval_batch_size=50).inference_chunk(torch.empty(0, 3, 28, 28)) == 50


def test_prepare_keeps_the_model_object_and_its_keys():
    engine = _engine(channels_last=True)
    model = _model()
    keys = list(model.state_dict())
    assert engine.prepare(model) is model
    assert list(model.state_dict()) == keys
    conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)


def _train_once(engine: Engine, model: nn.Module) -> float:
    split = _split()
    optimizer = engine.sgd(model, **SGD)
    batches = engine.batches(split, torch.arange(N_ROWS), BATCH, engine.generator(0))
    return train_one_epoch(model, lambda lg, b: F.cross_entropy(lg, b.labels), optimizer, batches,
                           engine, 0)  # fmt: skip


def _train_with_compile(monkeypatch, fake_compile) -> list[str]:
    """Train once with runtime.compile under a fake torch.compile; the loss must be eager's.

    Returns the messages the engine logged.
    """
    monkeypatch.setattr(torch, "compile", fake_compile)
    messages = []
    engine = _engine(compile=True)
    engine.progress.log = messages.append
    model = engine.prepare(_model())
    eager = _engine()
    expected = _train_once(eager, eager.prepare(_model()))
    assert _train_once(engine, model) == pytest.approx(expected, rel=1e-5)
    return messages


def test_compile_unavailable_falls_back_to_eager(monkeypatch):
    def unavailable(*args, **kwargs):
        raise RuntimeError("torch.compile is not supported here")

    messages = _train_with_compile(monkeypatch, unavailable)
    assert len(messages) == 1 and "unavailable" in messages[0]


def test_compile_failure_falls_back_to_eager(monkeypatch):
    from torch._dynamo.exc import TorchDynamoException

    calls = []

    def failing_compile(fn, *args, **kwargs):
        def compiled(*a, **k):
            calls.append(1)
            raise TorchDynamoException("backend failed")

        return compiled

    messages = _train_with_compile(monkeypatch, failing_compile)
    assert calls == [1]  # tried once, then eager for good
    assert len(messages) == 1 and "failed" in messages[0]

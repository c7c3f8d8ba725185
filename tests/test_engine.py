"""Engine: batches cover their rows once per epoch, seeded order, eval-mode inference."""

import dataclasses
import platform

import pytest
import torch
from torch import nn

import medunlearn.engine as engine_module
import medunlearn.experiment as experiment
import medunlearn.study.setup as study_setup
from medunlearn.augment import build_augment
from medunlearn.config import ConfigError, ModelConfig, RuntimeConfig
from medunlearn.data import Split
from medunlearn.engine import (
    Engine,
    configure_process,
    keep_freed_memory,
    n_batches,
    resolve_device,
)
from medunlearn.models import build_model
from medunlearn.training import train_one_epoch


def _split(n: int) -> Split:
    """Images whose first pixel is the row id, labels = row id mod 5."""
    images = torch.zeros(n, 1, 4, 4, dtype=torch.uint8)
    images[:, 0, 0, 0] = torch.arange(n, dtype=torch.uint8)
    return Split(images, torch.arange(n) % 5)


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize(("n_rows", "batch_size"), [(37, 8), (40, 8), (5, 64), (1, 1)])
def test_batches_cover_every_row_once(engine, shuffle, n_rows, batch_size):
    split = _split(60)
    rows = torch.randperm(60, generator=torch.Generator().manual_seed(0))[:n_rows]
    generator = engine.generator(0)
    for _epoch in range(3):
        seen = []
        batches = list(engine.batches(split, rows, batch_size, generator, shuffle=shuffle))
        assert len(batches) == n_batches(n_rows, batch_size)
        for batch in batches:
            assert len(batch.index) <= batch_size
            # images and labels are those of the rows the batch names
            assert batch.images[:, 0, 0, 0].long().tolist() == batch.index.tolist()
            assert batch.labels.tolist() == (batch.index % 5).tolist()
            seen += batch.index.tolist()
        assert sorted(seen) == sorted(rows.tolist())
        assert len(seen) == len(set(seen))
        if not shuffle:
            assert seen == rows.tolist()


def test_shuffle_is_seeded_and_changes_between_epochs(engine):
    split, rows = _split(50), torch.arange(50)

    def order(generator):
        return next(b.index.tolist() for b in engine.batches(split, rows, 50, generator))

    first = engine.generator(1)
    epoch1, epoch2 = order(first), order(first)
    assert epoch1 != epoch2
    again = engine.generator(1)
    assert order(again) == epoch1
    assert order(again) == epoch2
    assert order(engine.generator(2)) != epoch1


def test_augmented_batches_keep_shape_and_dtype(engine):
    split = Split(torch.randint(0, 256, (10, 3, 28, 28), dtype=torch.uint8), torch.zeros(10).long())
    augment = build_augment("crop-flip")
    batches = list(engine.batches(split, torch.arange(10), 4, engine.generator(0), augment))
    assert [b.images.shape for b in batches] == [(4, 3, 28, 28), (4, 3, 28, 28), (2, 3, 28, 28)]
    assert all(b.images.dtype == torch.uint8 for b in batches)


def test_logits_in_eval_mode_and_in_order(engine):
    model = nn.Sequential(nn.Flatten(), nn.Dropout(0.9), nn.Linear(16, 3))
    model.train()
    images = torch.randn(7, 1, 4, 4)
    small = Engine(RuntimeConfig(device="cpu", threads=1, eval_batch_size=3))
    logits = small.logits(model, images)
    assert not model.training
    with torch.no_grad():
        expected = model(images)
    assert torch.allclose(logits, expected)
    assert torch.allclose(engine.logits(model, images), logits, atol=1e-6)
    assert small.logits(model, images[:0]).numel() == 0


def test_cpu_logits_of_a_cnn_match_the_model_in_float32_only_on_onednn(engine):
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch="cnn", width=4), 3, 5)
    images = torch.randint(0, 256, (300, 3, 28, 28), dtype=torch.uint8)
    logits = engine.logits(model, images)
    with torch.inference_mode():
        expected = model.eval()(images)
    assert torch.allclose(logits, expected, rtol=1e-4, atol=1e-5)
    onednn = torch.backends.mkldnn.is_available()
    assert engine.inference_path == ("onednn" if onednn else "folded")
    assert Engine(RuntimeConfig(device="cpu", threads=1, bf16=True)).inference_path == "folded"


def test_train_one_epoch_returns_mean_loss_and_steps(engine):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 5))
    split = Split(torch.randn(12, 1, 4, 4), torch.arange(12) % 5)
    optimizer = engine.sgd(model, lr=0.1, momentum=0.0, weight_decay=0.0)
    steps = []
    before = [p.detach().clone() for p in model.parameters()]
    loss = train_one_epoch(
        model,
        lambda logits, batch: nn.functional.cross_entropy(logits, batch.labels),
        optimizer,
        engine.batches(split, torch.arange(12), 5, engine.generator(0)),
        engine,
        0,
        after_step=lambda: steps.append(1),
    )
    assert len(steps) == 3
    assert model.training
    assert loss > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_n_batches():
    assert [n_batches(n, 4) for n in (0, 1, 4, 5, 8, 9)] == [0, 1, 1, 2, 2, 3]


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA"):
            resolve_device("cuda")


GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


@pytest.mark.skipif(not GLIBC, reason="malloc thresholds are glibc's")
def test_glibc_takes_the_pinned_malloc_thresholds(monkeypatch):
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    assert keep_freed_memory()


def test_malloc_settings_of_the_user_are_left_alone(monkeypatch):
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "0")
    assert not keep_freed_memory()


def test_an_engine_leaves_the_process_settings_alone(monkeypatch):
    """Only `configure_process` sets threads and malloc thresholds, once, for the process."""
    calls = []
    monkeypatch.setattr(engine_module, "keep_freed_memory", lambda: calls.append("malloc"))
    torch.set_num_threads(1)
    Engine(RuntimeConfig(device="cpu", threads=2))
    assert torch.get_num_threads() == 1 and calls == []
    configure_process(RuntimeConfig(device="cpu", threads=2))
    assert torch.get_num_threads() == 2 and calls == ["malloc"]


def test_run_configures_the_process(make_config, tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(study_setup, "configure_process", seen.append)
    config = make_config()
    experiment.run(config, tmp_path / "out")
    resolved = dataclasses.replace(
        config.runtime, inference_path=Engine(config.runtime).inference_path
    )
    assert seen[0] == config.runtime  # the driver, then each job with the path resolved
    assert len(seen) > 1 and all(runtime == resolved for runtime in seen[1:])

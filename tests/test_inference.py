"""The inference path: one path per study, resolved from the device and precision alone (never
from a timing), each path giving the eager model's logits up to float rounding."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from medunlearn import inference
from medunlearn.config import ConfigError, ModelConfig, RuntimeConfig
from medunlearn.engine import Engine
from medunlearn.inference import PATHS, resolve_path
from medunlearn.models import ARCHITECTURES, build_model

CPU_PATHS = (
    ("eager", "folded", "onednn") if torch.backends.mkldnn.is_available() else ("eager", "folded")
)


def _images(n: int, size: int = 28) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8)


def _with_running_stats(model: nn.Module, size: int) -> nn.Module:
    """The model after a few training-mode passes, so batch norm is not the identity."""
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.randint(0, 256, (8, 3, size, size), dtype=torch.uint8))
    return model.eval()


def test_auto_takes_the_path_from_the_device_and_precision_alone():
    assert resolve_path("auto", cpu=True, onednn=True) == "onednn"
    assert resolve_path("auto", cpu=True, onednn=False) == "folded"
    assert resolve_path("auto", cpu=False, onednn=False) == "folded"
    assert [resolve_path(p, cpu=True, onednn=True) for p in PATHS] == list(PATHS)
    with pytest.raises(ConfigError, match="onednn' runs float32 on a CPU"):
        resolve_path("onednn", cpu=False, onednn=False)
    bf16 = Engine(RuntimeConfig(device="cpu", threads=1, bf16=True, inference_path="auto"))
    assert bf16.inference_path == "folded"
    with pytest.raises(ConfigError):
        Engine(RuntimeConfig(device="cpu", threads=1, bf16=True, inference_path="onednn"))


def test_the_engine_runs_every_chunk_on_the_configured_path_and_times_nothing(monkeypatch):
    log: list[str] = []
    for name, build in list(inference.PATHS.items()):

        def logged(model: nn.Module, name: str = name, build=build):
            log.append(f"build:{name}")
            graph = build(model)
            return lambda images: log.append(name) or graph(images)

        monkeypatch.setitem(inference.PATHS, name, logged)
    monkeypatch.setattr("time.perf_counter", lambda: pytest.fail("inference was timed"))
    for path in CPU_PATHS:
        log.clear()
        engine = Engine(RuntimeConfig(device="cpu", threads=1, eval_batch_size=4,
                                      inference_path=path))  # fmt: skip
        torch.manual_seed(0)
        engine.logits(build_model(ModelConfig(arch="cnn", width=4), 3, 5), _images(10))
        assert log == [f"build:{path}", path, path, path]  # one build, three chunks


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("path", CPU_PATHS)
def test_every_path_keeps_the_eager_logits(arch, path):
    size = 16
    engine = Engine(RuntimeConfig(device="cpu", threads=1, eval_batch_size=2, inference_path=path))
    torch.manual_seed(0)
    model = _with_running_stats(build_model(ModelConfig(arch=arch, width=4), 3, 5), size)
    images = _images(7, size)
    with torch.inference_mode():
        expected = model(images)
    torch.testing.assert_close(engine.logits(model, images), expected, rtol=1e-4, atol=1e-5)


def test_one_path_gives_the_same_logits_to_the_last_bit_every_time():
    engine = Engine(RuntimeConfig(device="cpu", threads=1, eval_batch_size=4))
    torch.manual_seed(0)
    model = _with_running_stats(build_model(ModelConfig(arch="cnn", width=4), 3, 5), 28)
    images = _images(9)
    assert torch.equal(engine.logits(model, images), engine.logits(model, images))
    other = Engine(RuntimeConfig(device="cpu", threads=1, eval_batch_size=4))
    assert torch.equal(other.logits(model, images), engine.logits(model, images))

"""Inference calibration: the engine runs the path timed fastest, once per key, exactly."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from medunlearn import inference
from medunlearn.config import ModelConfig, RuntimeConfig
from medunlearn.engine import Engine
from medunlearn.inference import Calibration, calibration_key, inference_paths
from medunlearn.models import ARCHITECTURES, build_model

CPU_PATHS = inference_paths(cpu=True, onednn=torch.backends.mkldnn.is_available())


class FakeClock:
    """A clock that only the paths' runs advance (see `_costed_paths`)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _costed_paths(monkeypatch, clock: FakeClock, costs: dict[str, float]) -> list[str]:
    """Make each path cost `costs[path]` fake seconds per image; returns the log of the paths
    run, one entry per chunk, and of the builds ("build:<path>")."""
    log: list[str] = []
    for name, build in list(inference.PATHS.items()):

        def costed(model: nn.Module, name: str = name, build=build):
            log.append(f"build:{name}")
            graph = build(model)

            def run(images: torch.Tensor) -> torch.Tensor:
                log.append(name)
                clock.now += costs[name] * len(images)
                return graph(images)

            return run

        monkeypatch.setitem(inference.PATHS, name, costed)
    return log


def _engine(eval_batch_size: int = 4) -> tuple[Engine, FakeClock]:
    engine = Engine(RuntimeConfig(device="cpu", threads=1, eval_batch_size=eval_batch_size))
    clock = FakeClock()
    engine.calibration.clock = clock
    return engine, clock


def _cnn() -> nn.Module:
    torch.manual_seed(0)
    return build_model(ModelConfig(arch="cnn", width=4), 3, 5)


def _images(n: int, size: int = 28) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8)


@pytest.mark.parametrize("fastest", CPU_PATHS)
def test_the_path_timed_fastest_is_chosen(monkeypatch, fastest):
    costs = {path: 2.0 for path in CPU_PATHS} | {fastest: 1.0}
    engine, clock = _engine()
    log = _costed_paths(monkeypatch, clock, costs)
    model, images = _cnn(), _images(48)
    engine.logits(model, images)
    key = calibration_key(model, images, CPU_PATHS)
    assert engine.calibration.choices == {key: fastest}
    assert engine.calibration.rates(key) == {path: 1 / costs[path] for path in CPU_PATHS}
    # a warm-up chunk of each path, then timed chunks in turn, then the chosen path only
    runs = [entry for entry in log if not entry.startswith("build:")]
    calibrating = 3 * len(CPU_PATHS)
    assert runs[:calibrating] == 3 * list(CPU_PATHS)
    assert runs[calibrating:] == [fastest] * (12 - calibrating)


def test_noise_only_slows_a_path_down_so_its_best_chunk_counts(monkeypatch):
    engine, clock = _engine()
    slow_once = {"eager": [5.0, 1.5], "folded": [3.0, 3.0], "onednn": [2.0, 2.0]}
    costs = {path: 0.0 for path in CPU_PATHS}
    log = _costed_paths(monkeypatch, clock, costs)
    model, images = _cnn(), _images(48)
    original_record = engine.calibration.record

    def record(key, path, seconds, images):  # the fake timings, in the order they are taken
        return original_record(key, path, slow_once[path].pop(0) * images, images)

    monkeypatch.setattr(engine.calibration, "record", record)
    engine.logits(model, images)
    assert log.count("eager") > log.count("folded")
    assert engine.calibration.choices[calibration_key(model, images, CPU_PATHS)] == "eager"


def test_the_choice_is_cached_per_key(monkeypatch):
    engine, clock = _engine()
    log = _costed_paths(monkeypatch, clock, {path: 1.0 for path in CPU_PATHS} | {"folded": 0.5})
    calls = []
    original_record = engine.calibration.record
    monkeypatch.setattr(engine.calibration, "record", lambda *a: calls.append(a[1]) or
                        original_record(*a))  # fmt: skip
    model = _cnn()
    engine.logits(model, _images(48))
    assert len(calls) == 2 * len(CPU_PATHS)
    log.clear()
    engine.logits(model, _images(20))  # the same key: only the chosen path is built and run
    engine.logits(_cnn(), _images(20))  # another model of the same structure
    assert set(log) == {"build:folded", "folded"}
    assert len(calls) == 2 * len(CPU_PATHS)
    engine.logits(model, _images(48, size=20))  # another input shape calibrates anew
    assert len(calls) == 4 * len(CPU_PATHS)
    assert len(engine.calibration.choices) == 2


def test_a_calibration_goes_on_over_calls_too_short_for_it(monkeypatch):
    engine, clock = _engine()
    log = _costed_paths(monkeypatch, clock, {path: 1.0 for path in CPU_PATHS} | {"eager": 0.1})
    model = _cnn()
    key = calibration_key(model, _images(1), CPU_PATHS)
    for _ in range(len(CPU_PATHS)):  # one chunk a call: the warm-ups
        engine.logits(model, _images(4))
    engine.logits(model, _images(6))  # 4 + 2 images: a short last chunk is not timed
    assert [len(times) for times in engine.calibration.timings[key].values()] == [1, 0, 0][
        : len(CPU_PATHS)
    ]
    for _ in range(2 * len(CPU_PATHS) - 1):
        assert key not in engine.calibration.choices
        engine.logits(model, _images(4))
    assert engine.calibration.choices[key] == "eager"
    log.clear()
    engine.logits(model, _images(8))
    assert log == ["build:eager", "eager", "eager"]


def test_a_gpu_runs_the_folded_graph_and_bf16_has_no_onednn_path():
    assert inference_paths(cpu=False, onednn=False) == ("folded",)
    assert inference_paths(cpu=True, onednn=False) == ("eager", "folded")
    calibration = Calibration()
    assert calibration.next_path("k", ("folded",)) == ("folded", False)
    assert calibration.choices == {"k": "folded"}


def test_the_key_holds_threads_shape_dtype_and_structure():
    model, images = _cnn(), _images(2)
    key = calibration_key(model, images, CPU_PATHS)
    assert key == calibration_key(_cnn(), _images(5), CPU_PATHS)
    assert key != calibration_key(model, images.float(), CPU_PATHS)
    assert key != calibration_key(model, _images(2, size=20), CPU_PATHS)
    assert key != calibration_key(model, images, ("eager", "folded"))
    wider = build_model(ModelConfig(arch="cnn", width=8), 3, 5)
    assert key != calibration_key(wider, images, CPU_PATHS)
    threads = torch.get_num_threads()
    torch.set_num_threads(threads + 1)
    try:
        assert key != calibration_key(model, images, CPU_PATHS)
    finally:
        torch.set_num_threads(threads)


def _with_running_stats(model: nn.Module, size: int) -> nn.Module:
    """The model after a few training-mode passes, so batch norm is not the identity."""
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.randint(0, 256, (8, 3, size, size), dtype=torch.uint8))
    return model.eval()


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("fastest", CPU_PATHS)
def test_every_choice_keeps_the_eager_logits(monkeypatch, arch, fastest):
    size = 16
    engine, clock = _engine(eval_batch_size=2)
    _costed_paths(monkeypatch, clock, {path: 2.0 for path in CPU_PATHS} | {fastest: 1.0})
    torch.manual_seed(0)
    model = _with_running_stats(build_model(ModelConfig(arch=arch, width=4), 3, 5), size)
    images = _images(6 * len(CPU_PATHS) + 3, size)  # calibration, then the chosen path
    with torch.inference_mode():
        expected = model(images)
    calibrated = engine.logits(model, images)
    assert engine.calibration.choices[calibration_key(model, images, CPU_PATHS)] == fastest
    chosen = engine.logits(model, images)
    torch.testing.assert_close(calibrated, expected, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(chosen, expected, rtol=1e-4, atol=1e-5)

"""The pending attacks of a forget set: fitted in threads after the trainings (or beside a GPU
training), cancelled when the run stops, their inputs saved and read back whole."""

import threading
from pathlib import Path

import numpy as np
import pytest

import medunlearn.study.rows as rows_module
from medunlearn.config import RuntimeConfig
from medunlearn.engine import Engine
from medunlearn.metrics.evaluate import finish
from medunlearn.store import load_arrays, save_arrays
from medunlearn.study.rows import PendingAttacks


@pytest.fixture
def attack_log(monkeypatch):
    """Attacks that run beside training; each logs its inputs' path and waits for `release`."""
    release, started = threading.Event(), []

    def attack(self, path, name, done):
        started.append(path)
        release.wait(10)
        done({}, 0.0)

    monkeypatch.setattr(PendingAttacks, "_attack", attack)
    monkeypatch.setattr(rows_module, "attacks_in_background", lambda engine: True)
    return release, started


def _engine():
    return Engine(RuntimeConfig(device="cpu", threads=1))


def test_leaving_pending_attacks_cancels_those_not_started(attack_log):
    release, started = attack_log
    threading.Timer(1.0, release.set).start()  # after the block has been left
    with pytest.raises(KeyboardInterrupt), PendingAttacks(_engine()) as attacks:
        for name in ("a", "b", "c"):
            attacks.add(Path(name), "svc", lambda columns, seconds: None)
        raise KeyboardInterrupt
    assert started == [Path("a")]  # one thread: "b" and "c" were waiting, and are cancelled


def test_a_failed_background_attack_stops_the_run_at_the_next_row(attack_log):
    release, started = attack_log
    release.set()

    def fail(columns, seconds):
        raise RuntimeError("attack failed")

    with PendingAttacks(_engine()) as attacks:
        attacks.add(Path("a"), "svc", fail)
        for future in attacks.futures:
            future.exception()  # wait for it
        with pytest.raises(RuntimeError, match="attack failed"):
            attacks.add(Path("b"), "svc", lambda columns, seconds: None)
    assert started == [Path("a")]


def test_saved_inputs_give_the_same_attack(tmp_path):
    rng = np.random.default_rng(0)
    members, non_members = rng.uniform(0.95, 1.0, 200), rng.uniform(0.25, 0.35, 200)
    inputs = {"retain": members, "test": non_members, "forget": np.array([0.99, 0.3, 0.31]),
              "seed": np.array(3)}  # fmt: skip
    save_arrays(tmp_path / "x.svc.npz", inputs)
    loaded = load_arrays(tmp_path / "x.svc.npz")
    assert int(loaded["seed"]) == 3
    assert finish("svc", loaded) == finish("svc", inputs)
    assert finish("svc", loaded)["mia"] == pytest.approx(200 / 3)

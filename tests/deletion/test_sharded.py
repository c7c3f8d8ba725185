"""A deployment trained in shards and slices serves requests exactly with `sisa`: each result is
the sharded model trained without every forgotten image from the start, the slice checkpoints
that held a forgotten image are purged, the ledger verifies them, and an altered one is refused
before anything is written."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from medunlearn.config import UserError
from medunlearn.deletion.deployment import Deployment
from medunlearn.deletion.ledger import Ledger
from medunlearn.deletion.service import delete, deploy
from medunlearn.deletion.verify import verify
from medunlearn.experiment import export_original
from medunlearn.sharding import ShardingError
from medunlearn.store import Store


def _ids(tmp_path: Path, ids, name: str) -> Path:
    path = tmp_path / name
    path.write_text(" ".join(map(str, ids)) + "\n")
    return path


def _files(folder: Path) -> dict[Path, bytes]:
    """Every file of a deployment with its bytes (what a refused request must leave alone)."""
    return {path: path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.fixture
def sharded(make_config, tmp_path, settings, data_root, runtime):
    """A deployment of a tiny model in 2 shards of 2 slices, and its config."""
    config = make_config(epochs=2, shards=2, slices=2)
    checkpoint, _ = export_original(config, tmp_path / "model")
    return deploy(checkpoint, tmp_path / "deployment", settings, str(data_root), runtime), config


@pytest.fixture
def settings(tmp_path) -> Path:
    """Deletion settings whose gate any tiny model passes."""
    path = tmp_path / "deletion.yaml"
    gate = {"accuracy": 100.0, "balanced_accuracy": 100.0, "sensitivity": 100.0, "risk_2": 100.0,
            "ece": 100.0, "class_drop": 100.0, "resamples": 50}  # fmt: skip
    path.write_text(yaml.safe_dump({"deletion": {"gate": gate}}))
    return path


def test_requests_in_turn_equal_the_sharded_model_trained_without_them(
    sharded, tmp_path, runtime, blood, sharded_model, same_state
):
    folder, config = sharded
    first = delete(folder, ids=_ids(tmp_path, [3, 40], "a.txt"), method="sisa", runtime=runtime)
    record = first.record
    assert (record["method"], record["decision"], record["exact"]) == ("sisa", "released", True)
    assert 1 <= record["sharding"]["shards_retrained"] <= 2
    assert "trained again without them" in (first.audit / "audit.md").read_text()
    # the slice checkpoints that held 3 or 40 went with the model they made
    slices = [item for item in record["purged"] if item["what"] == "slice"]
    assert len(slices) == record["sharding"]["slices_retrained"]
    assert not any((folder / item["path"]).exists() for item in slices)
    second = delete(folder, ids=_ids(tmp_path, [7], "b.txt"), method="sisa", runtime=runtime)
    assert second.record["input"] == record["output"]
    served = Deployment.open(folder, runtime=runtime).model().model
    scratch = sharded_model(blood, Store(tmp_path / "scratch"), config.train, removed=[3, 40, 7])
    assert same_state(served, scratch)
    report = verify(folder)
    assert report.ok, report.lines


def test_an_altered_slice_checkpoint_is_refused_and_named_by_verify(sharded, tmp_path, runtime):
    folder, _ = sharded
    victim = sorted((folder / "slices").glob("*.safetensors"))[0]
    victim.write_bytes(victim.read_bytes()[:-1] + b"\0")
    before = _files(folder)
    with pytest.raises(ShardingError, match="was altered"):
        delete(folder, ids=_ids(tmp_path, [3], "a.txt"), method="sisa", runtime=runtime)
    assert _files(folder) == before
    report = verify(folder)
    assert not report.ok and any(victim.name in line for line in report.lines)


def test_sisa_is_refused_on_a_model_trained_whole(
    make_config, tmp_path, settings, data_root, runtime
):
    checkpoint, _ = export_original(make_config(epochs=1), tmp_path / "model")
    folder = deploy(checkpoint, tmp_path / "deployment", settings, str(data_root), runtime)
    before = _files(folder)
    with pytest.raises(UserError, match="shards and slices"):
        delete(folder, ids=_ids(tmp_path, [3], "a.txt"), method="sisa", runtime=runtime)
    assert _files(folder) == before
    assert len(Ledger.read(folder / "ledger.jsonl").records) == 1


def test_the_gate_applies_to_an_exact_deletion(sharded, tmp_path, runtime):
    """A sharded deployment whose gate refuses everything holds the exact result for review."""
    folder, _ = sharded
    config = yaml.safe_load((folder / "config.yaml").read_text())
    config["deletion"]["gate"].update(accuracy=0.0, balanced_accuracy=0.0, ece=0.0,
                                      class_drop=0.0, fallback="hold")  # fmt: skip
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    held = delete(folder, ids=_ids(tmp_path, [3], "a.txt"), method="sisa", runtime=runtime)
    assert held.record["decision"] == "held" and "output" not in held.record

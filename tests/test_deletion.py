"""Deletion requests: trained checkpoint + ids -> unlearned checkpoint and audit trail."""

import json

import pytest

from medunlearn.checkpoints import load_model
from medunlearn.config import ForgetConfig, MethodConfig
from medunlearn.data.medmnist import load_medmnist
from medunlearn.deletion import config_from_checkpoint, file_sha256, serve_deletion
from medunlearn.experiment import export_original
from medunlearn.forget import ForgetError, select_forget
from medunlearn.store import CheckpointError, load_checkpoint


@pytest.fixture
def checkpoint(make_config, tmp_path):
    """A tiny original model exported with `export_original`."""
    path, _ = export_original(make_config(), tmp_path / "model")
    return path


def _ids(tmp_path, ids, name="ids.txt"):
    path = tmp_path / name
    path.write_text("\n".join(map(str, ids)) + "\n")
    return path


@pytest.mark.parametrize("method", ["ft", "salun"])
def test_serve_deletion_writes_checkpoint_and_audit(checkpoint, tmp_path, runtime, blood, method):
    ids = _ids(tmp_path, [0, 5, 9, 17, 33])
    out = tmp_path / "deletion"
    before_hash = file_sha256(checkpoint)
    result = serve_deletion(checkpoint, ids, MethodConfig(method, {"epochs": 1, "batch_size": 16}),
                            out, runtime=runtime)  # fmt: skip
    assert result.checkpoint == out / "unlearned.safetensors"
    assert result.report == out / "audit.md"
    for name in ("unlearned.safetensors", "audit.md", "audit.json", "forget_set.json"):
        assert (out / name).is_file(), name
    assert file_sha256(checkpoint) == before_hash  # the input is never changed

    audit = json.loads((out / "audit.json").read_text())
    request = audit["request"]
    assert request["n_forget"] == 5 and request["method"] == method
    assert request["input_sha256"] == before_hash
    assert request["output_sha256"] == file_sha256(out / "unlearned.safetensors")
    for side in ("before", "after"):
        assert set(audit[side]) >= {"ua", "ra", "ta", "mia"}
    assert audit["before"] == pytest.approx(result.before)
    assert audit["after"] == pytest.approx(result.after)

    report = (out / "audit.md").read_text()
    assert report.startswith("# Deletion audit report")
    assert "forget 5 training image(s) of bloodmnist" in report
    assert before_hash[:16] in report

    # the unlearned checkpoint loads as a model of the same kind, with changed weights
    config = config_from_checkpoint(out / "unlearned.safetensors", None)
    unlearned = load_model(out / "unlearned.safetensors", config.model, blood)
    assert unlearned.meta["unlearned"] == method
    original_state, _ = load_checkpoint(checkpoint)
    new_state = unlearned.model.state_dict()
    assert any(not (original_state[k] == new_state[k]).all() for k in original_state)
    saved_ids = json.loads((out / "forget_set.json").read_text())["forget_ids"]
    assert sorted(saved_ids) == [0, 5, 9, 17, 33]


@pytest.mark.parametrize(
    ("ids", "message"), [([3, 64], "out of range"), ([1, 1], "duplicate"), ([], "empty")]
)
def test_bad_ids_write_nothing(checkpoint, tmp_path, runtime, ids, message):
    out = tmp_path / "deletion"
    with pytest.raises(ForgetError, match=message):
        serve_deletion(checkpoint, _ids(tmp_path, ids), MethodConfig("ft", {"epochs": 1}), out,
                       runtime=runtime)  # fmt: skip
    assert not out.exists()


def test_missing_inputs_write_nothing(checkpoint, tmp_path, runtime):
    out = tmp_path / "deletion"
    with pytest.raises(ForgetError, match="not found"):
        serve_deletion(checkpoint, tmp_path / "nope.txt", MethodConfig("ft"), out, runtime=runtime)
    with pytest.raises(CheckpointError, match="not found"):
        serve_deletion(tmp_path / "nope.pt", _ids(tmp_path, [1]), MethodConfig("ft"), out,
                       runtime=runtime)  # fmt: skip
    assert not out.exists()


def test_forget_set_of_other_data_is_refused(checkpoint, tmp_path, runtime, write_npz, blood):
    """A saved forget set drawn from other pixels must not be applied."""
    other = load_medmnist("bloodmnist", 28, download=False,
                          root=write_npz(seed=5, folder=tmp_path / "other").parent)  # fmt: skip
    saved = tmp_path / "forget_set.json"
    select_forget(other, ForgetConfig(fraction=0.1), seed=0).save(saved)
    out = tmp_path / "deletion"
    with pytest.raises(ForgetError, match="fingerprint"):
        serve_deletion(checkpoint, saved, MethodConfig("ft"), out, runtime=runtime)
    assert not out.exists()


def test_config_from_checkpoint(checkpoint, make_config, tmp_path):
    config = config_from_checkpoint(checkpoint, None)
    expected = make_config()
    assert config.data == expected.data
    assert config.model == expected.model
    assert config.train == expected.train
    assert config_from_checkpoint(checkpoint, "/elsewhere").data.root == "/elsewhere"


def test_a_sharded_deployment_serves_sisa_requests_one_after_another(
    make_config, tmp_path, runtime, blood, sharded_model, same_state
):
    """A sharded checkpoint (its slice checkpoints beside it) serves an exact deletion: the
    output's slices are beside the output, its layout marks the ids removed, and a second
    request from it removes both, as a model trained without them all."""
    from medunlearn.sharding import ShardedModel, verify_slices
    from medunlearn.store import Store

    config = make_config(epochs=2, shards=2, slices=2)
    path, _ = export_original(config, tmp_path / "model")
    first = serve_deletion(path, _ids(tmp_path, [3, 40]), MethodConfig("sisa"),
                           tmp_path / "first", runtime=runtime)  # fmt: skip
    once = load_model(first.checkpoint, config.model, blood).model
    assert isinstance(once, ShardedModel) and once.layout.removed[[3, 40]].all()
    verify_slices(once.sharding)
    assert {c.path.parent for shard in once.sharding.checkpoints for c in shard} == {
        tmp_path / "first" / "unlearned.slices"
    }
    second = serve_deletion(first.checkpoint, _ids(tmp_path, [7], "more.txt"),
                            MethodConfig("sisa"), tmp_path / "second", runtime=runtime)  # fmt: skip
    twice = load_model(second.checkpoint, config.model, blood).model
    scratch = sharded_model(blood, Store(tmp_path / "scratch"), config.train, removed=[3, 40, 7])
    assert same_state(twice, scratch)

"""Deletion requests: trained checkpoint + ids -> unlearned checkpoint and audit trail."""

import json

import pytest

from medunlearn.checkpoints import load_model
from medunlearn.config import ForgetConfig, MethodConfig, UserError
from medunlearn.data.medmnist import load_medmnist
from medunlearn.deletion.gate import Check, GateResult
from medunlearn.deletion.oneoff import audit_markdown, config_from_checkpoint, serve_deletion
from medunlearn.experiment import export_original
from medunlearn.forget import ForgetError, select_forget
from medunlearn.store import CheckpointError, file_sha256, load_checkpoint


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


def test_a_checkpoint_of_other_data_is_refused_before_anything_is_written(
    checkpoint, tmp_path, runtime, write_npz
):
    """A checkpoint trained on BloodMNIST, served against a folder whose bloodmnist.npz holds
    other images: its ids would name other images (an earlier version wrote an unlearned
    model and an audit all the same)."""
    other = write_npz("bloodmnist", 64, 24, 24, seed=7, folder=tmp_path / "other")
    ids = tmp_path / "ids.txt"
    ids.write_text("1 2 3\n")
    out = tmp_path / "out"
    with pytest.raises(UserError, match="trained on data of fingerprint"):
        serve_deletion(checkpoint, ids, MethodConfig("ft", {"epochs": 1}), out,
                       str(other.parent), runtime)  # fmt: skip
    assert not out.exists()


def _check(change: float, low: float, high: float, passed: bool) -> GateResult:
    """A gate of one accuracy check with the given change and interval (margin 2)."""
    check = Check("accuracy", "test accuracy", 90.0, 90.0 + change, change, low, high, 2.0, passed)
    return GateResult(passed, [check])


def test_the_verdict_says_which_way_accuracy_moved_and_never_calls_a_rise_a_small_change():
    """An earlier version read "changed by +6.41 points; this is within 2 points of the model
    before deletion" for a rise of 6.41 points."""
    request = {"n_forget": 3, "dataset": "bloodmnist", "forget_ids_file": "ids.txt",
               "method": "ft", "params": {}, "seconds": 6.0, "device": "cpu", "input": "a",
               "input_sha256": "0" * 64, "output": "b", "output_sha256": "1" * 64,
               "version": "x", "date": "today"}  # fmt: skip
    columns = {"ua": 10.0, "ra": 90.0, "ta": 90.0}
    rose = audit_markdown(request, columns, {**columns, "ta": 96.41}, _check(6.41, 4.0, 8.8, True))
    assert "test accuracy improved by 6.41 (95% interval of the change +4.00 to +8.80)" in rose
    assert "within 2 points" not in rose
    fell = audit_markdown(
        request, columns, {**columns, "ta": 87.0}, _check(-3.0, -4.5, -1.5, False)
    )
    assert "test accuracy worsened by 3.00" in fell
    assert "may have worsened by up to 4.50, more than the 2 allowed" in fell
    assert "**Review before deployment**" in fell


def test_the_audit_reports_every_attack_that_ran_and_the_banks_when_there_is_one(
    checkpoint, tmp_path, runtime
):
    """The threshold attacks at once (an earlier audit showed only the SVC attack, though phi
    was computed), and LiRA and RMIA when a bank of reference Retrains was trained."""
    ids = tmp_path / "ids.txt"
    ids.write_text("1 2 3 10 20 30\n")
    result = serve_deletion(checkpoint, ids, MethodConfig("ft", {"epochs": 1, "batch_size": 16}),
                            tmp_path / "out", runtime=runtime, bank=2)  # fmt: skip
    report = result.report.read_text()
    for label, _ in (("SVC attack", "mia"), ("forgotten vs unseen test images", "pop_phi_auc"),
                     ("same classes", "pop_phi_matched_auc"), ("LiRA", "lira_auc"),
                     ("RMIA", "rmia_auc")):  # fmt: skip
        assert label in report, label
    assert {"pop_phi_auc", "pop_phi_auc_low", "lira_auc", "rmia_auc"} <= set(result.after)
    plain = serve_deletion(checkpoint, ids, MethodConfig("ft", {"epochs": 1, "batch_size": 16}),
                           tmp_path / "plain", runtime=runtime)  # fmt: skip
    assert "LiRA" not in plain.report.read_text() and "phi" not in plain.report.read_text()
    assert "forgotten vs unseen test images" in plain.report.read_text()


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

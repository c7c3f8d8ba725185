"""The deletion service end to end on a tiny deployment: sequential requests that never train
on an earlier request's images again, requests by patient, refusals that change nothing, the
gate's fallback, the debt, purges, and a request killed anywhere that completes once."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from medunlearn.config import ProtocolConfig, RuntimeConfig, UserError, to_dict
from medunlearn.deletion.deployment import Deployment, DeploymentError
from medunlearn.deletion.ledger import Ledger
from medunlearn.deletion.protocol import validate_protocol
from medunlearn.deletion.service import delete, deploy
from medunlearn.experiment import export_original
from medunlearn.store import Store, file_sha256

LOOSE = ProtocolConfig(requests=2, size=6, bank=3, repeats=3, attack_gap=1.0, ulira=1.0, ain=0.0)
QUICK = {"epochs": 1, "batch_size": 16}
# the gradient methods a hospital would serve requests with (Retrain among them)
GRADIENT = ("ft", "rl", "salun", "neggrad+", "retrain")


@pytest.fixture
def settings(tmp_path) -> Path:
    """A YAML of deletion settings: a loose protocol (a tiny model validates), margins no
    tiny test split can meet unless wide."""
    path = tmp_path / "deletion.yaml"
    deletion = {"protocol": to_dict(LOOSE), "gate": {"accuracy": 100.0, "balanced_accuracy": 100.0,
                "sensitivity": 100.0, "risk_2": 100.0, "ece": 100.0, "class_drop": 100.0,
                "resamples": 50}}  # fmt: skip
    path.write_text(yaml.safe_dump({"deletion": deletion}))
    return path


@pytest.fixture
def deployment(make_config, tmp_path, settings, data_root, runtime) -> Path:
    """A deployment of a tiny original (two epochs) with the loose settings."""
    config = make_config(epochs=2)
    checkpoint, _ = export_original(config, tmp_path / "model")
    return deploy(checkpoint, tmp_path / "deployment", settings, str(data_root), runtime)


def _ids(tmp_path: Path, ids, name: str) -> Path:
    path = tmp_path / name
    path.write_text(" ".join(map(str, ids)) + "\n")
    return path


def _ledger(folder: Path) -> list[dict]:
    return Ledger.read(folder / "ledger.jsonl").records


@pytest.mark.parametrize("method", GRADIENT)
def test_a_second_request_never_trains_on_the_first_requests_images(
    deployment, tmp_path, runtime, batch_rows, method
):
    """Two requests served in turn: no forgotten image of the first appears in any batch of
    the second, whatever the method (its retain data, its Retrain, its protocol's bank). The
    one-off request of an earlier version took "retain" as every id but this request's, and
    trained again on the first request's patients."""
    params = {} if method == "retrain" else QUICK
    if method != "retrain":
        validate_protocol(deployment, method, params, runtime=runtime)
    first = [3, 7, 11, 19]
    delete(deployment, ids=_ids(tmp_path, first, "a.txt"), method=method, params=params,
           runtime=runtime)  # fmt: skip
    batch_rows.clear()
    delete(deployment, ids=_ids(tmp_path, [5, 23, 31], "b.txt"), method=method, params=params,
           runtime=runtime)  # fmt: skip
    assert batch_rows, "the second request trained nothing"
    seen = set().union(*batch_rows)
    assert not seen & set(first)
    forgotten = Deployment.open(deployment, runtime=runtime).forgotten()
    assert set(first) | {5, 23, 31} == set(forgotten.tolist())


def test_a_request_for_ids_forgotten_already_is_answered_from_the_ledger(
    deployment, tmp_path, runtime, monkeypatch
):
    ids = _ids(tmp_path, [4, 8, 15], "a.txt")
    delete(deployment, ids=ids, method="retrain", runtime=runtime)
    before = (deployment / "ledger.jsonl").read_bytes()
    import medunlearn.deletion.service as service

    monkeypatch.setattr(service, "run_method", lambda *a, **k: pytest.fail("trained again"))
    outcome = delete(deployment, ids=_ids(tmp_path, [8, 15], "b.txt"), method="retrain",
                     runtime=runtime)  # fmt: skip
    assert outcome.answered and outcome.record["n_images"] == 3
    assert (deployment / "ledger.jsonl").read_bytes() == before


def test_a_patient_request_forgets_every_image_of_the_patients(deployment, tmp_path, runtime):
    mapping = tmp_path / "map.csv"
    mapping.write_text("train_id,patient_id\n" + "".join(f"{i},p{i // 4}\n" for i in range(64)))
    patients = tmp_path / "patients.txt"
    patients.write_text("p2\np9  # two patients\n")
    outcome = delete(deployment, patients=patients, patient_map=mapping, method="retrain",
                     runtime=runtime)  # fmt: skip
    assert outcome.record["n_patients"] == 2 and outcome.record["n_images"] == 8
    forgotten = Deployment.open(deployment, runtime=runtime).forgotten().tolist()
    assert forgotten == [8, 9, 10, 11, 36, 37, 38, 39]


def _unchanged(folder: Path, action) -> None:
    """`action` is refused with a UserError and leaves the ledger and head as they were."""
    ledger, head = (
        (folder / "ledger.jsonl").read_bytes(),
        (folder / "current.safetensors").read_bytes(),
    )
    with pytest.raises(UserError) as error:
        action()
    assert "\n" not in str(error.value)
    assert (folder / "ledger.jsonl").read_bytes() == ledger
    assert (folder / "current.safetensors").read_bytes() == head


def test_bad_requests_are_refused_with_one_line_and_change_nothing(deployment, tmp_path, runtime):
    mapping = tmp_path / "map.csv"
    mapping.write_text("train_id,patient_id\n" + "".join(f"{i},p{i}\n" for i in range(60)))
    patients = _ids(tmp_path, ["p1"], "p.txt")
    _unchanged(deployment, lambda: delete(deployment, patients=patients, patient_map=mapping,
                                          method="retrain", runtime=runtime))  # fmt: skip
    full = tmp_path / "full.csv"
    full.write_text("train_id,patient_id\n" + "".join(f"{i},p{i}\n" for i in range(64)))
    unknown = _ids(tmp_path, ["nobody"], "u.txt")
    _unchanged(deployment, lambda: delete(deployment, patients=unknown, patient_map=full,
                                          method="retrain", runtime=runtime))  # fmt: skip
    _unchanged(deployment, lambda: delete(deployment, ids=_ids(tmp_path, [1, 64], "r.txt"),
                                          method="retrain", runtime=runtime))  # fmt: skip
    labels = Deployment.open(deployment, runtime=runtime).session.dataset.train.labels.numpy()
    whole_class = _ids(tmp_path, np.flatnonzero(labels == 3).tolist(), "c.txt")
    _unchanged(deployment, lambda: delete(deployment, ids=whole_class, method="retrain",
                                          runtime=runtime))  # fmt: skip
    _unchanged(deployment, lambda: delete(deployment, ids=_ids(tmp_path, [1], "f.txt"),
                                          method="ft", params=QUICK, runtime=runtime))  # fmt: skip


def test_a_deployment_of_other_data_or_a_broken_ledger_or_head_is_refused(
    deployment, tmp_path, runtime, write_npz
):
    other = write_npz("bloodmnist", 64, 24, 24, seed=5, folder=tmp_path / "other")
    with pytest.raises(DeploymentError, match="is not the data this deployment serves"):
        Deployment.open(deployment, data_root=str(other.parent), runtime=runtime)
    copy = tmp_path / "edited"
    shutil.copytree(deployment, copy)
    lines = (copy / "ledger.jsonl").read_text().splitlines()
    record = json.loads(lines[0])
    record["dataset"] = "pathmnist"
    (copy / "ledger.jsonl").write_text(json.dumps(record) + "\n")
    with pytest.raises(DeploymentError, match=r"record 0 .*edited"):
        Deployment.open(copy, runtime=runtime)
    head = tmp_path / "head"
    shutil.copytree(deployment, head)
    (checkpoint,) = (head / "checkpoints").glob("*.safetensors")
    checkpoint.write_bytes(checkpoint.read_bytes()[:-1] + b"\0")
    with pytest.raises(DeploymentError, match="not the ledger's head"):
        Deployment.open(head, runtime=runtime)
    with pytest.raises(DeploymentError, match="is not a deployment"):
        Deployment.open(tmp_path, runtime=runtime)


def test_a_checkpoint_of_other_data_is_not_deployed(make_config, tmp_path, write_npz, runtime):
    checkpoint, _ = export_original(make_config(), tmp_path / "model")
    other = write_npz("bloodmnist", 64, 24, 24, seed=5, folder=tmp_path / "other")
    with pytest.raises(UserError, match="trained on data of fingerprint"):
        deploy(checkpoint, tmp_path / "deployment", data_root=str(other.parent), runtime=runtime)
    assert not (tmp_path / "deployment").exists()


def test_an_approximate_method_needs_its_validated_protocol(deployment, tmp_path, runtime):
    ids = _ids(tmp_path, [2, 6], "a.txt")
    with pytest.raises(UserError, match="no protocol validates ft"):
        delete(deployment, ids=ids, method="ft", params=QUICK, runtime=runtime)
    validate_protocol(deployment, "ft", QUICK, runtime=runtime)
    with pytest.raises(UserError, match="no protocol validates rl"):
        delete(deployment, ids=ids, method="rl", params=QUICK, runtime=runtime)
    outcome = delete(deployment, ids=ids, runtime=runtime)  # the protocol's method by default
    assert outcome.record["method"] == "ft" and outcome.record["protocol"]
    assert [c["key"] for c in outcome.record["evidence"]["criteria"]] == [
        "pop_phi_matched_auc", "forget_gap"]  # fmt: skip


def _strict(folder: Path, fallback: str) -> None:
    """Make the deployment's gate refuse everything (zero margins) with the given fallback."""
    config = yaml.safe_load((folder / "config.yaml").read_text())
    config["deletion"]["gate"].update(accuracy=0.0, balanced_accuracy=0.0, ece=0.0,
                                      class_drop=0.0, fallback=fallback)  # fmt: skip
    (folder / "config.yaml").write_text(yaml.safe_dump(config))


def test_a_request_the_gate_refuses_is_retrained_or_held(deployment, tmp_path, runtime):
    validate_protocol(deployment, "ga", {"epochs": 1, "lr": 0.5}, runtime=runtime)
    _strict(deployment, "retrain")
    ids = _ids(tmp_path, [9, 13, 17], "a.txt")
    outcome = delete(deployment, ids=ids, method="ga", params={"epochs": 1, "lr": 0.5},
                     runtime=runtime)  # fmt: skip
    record = outcome.record
    assert record["decision"] == "retrained" and record["exact"]
    assert record["method"] == "retrain" and record["attempt"]["method"] == "ga"
    assert not record["attempt"]["gate"]["released"]
    assert "did not pass" in (outcome.audit / "audit.md").read_text()
    _strict(deployment, "hold")
    head = Deployment.open(deployment, runtime=runtime).head_sha
    held = delete(deployment, ids=_ids(tmp_path, [21, 25], "b.txt"), method="ga",
                  params={"epochs": 1, "lr": 0.5}, runtime=runtime).record  # fmt: skip
    assert held["decision"] == "held" and "output" not in held
    reopened = Deployment.open(deployment, runtime=runtime)
    assert reopened.head_sha == head and 21 not in reopened.forgotten()


def test_the_debt_is_tracked_and_an_exact_retrain_done_when_due(deployment, tmp_path, runtime):
    config = yaml.safe_load((deployment / "config.yaml").read_text())
    config["deletion"]["debt"].update(images=5, drift=100.0, reversal=1.0)
    (deployment / "config.yaml").write_text(yaml.safe_dump(config))
    validate_protocol(deployment, "ft", QUICK, runtime=runtime)
    first = delete(deployment, ids=_ids(tmp_path, [1, 2, 3], "a.txt"), runtime=runtime).record
    assert first["decision"] == "released" and not first["debt"]["exceeded"]
    second = delete(deployment, ids=_ids(tmp_path, [4, 5, 6], "b.txt"), runtime=runtime).record
    assert second["debt"]["exceeded"] and "6 images" in second["debt"]["reasons"][0]
    assert [r["request"] for r in second["debt"]["reversal"]] == [first["request"]]
    assert second["decision"] == "released"  # recommended only
    due = delete(deployment, ids=_ids(tmp_path, [7, 8], "c.txt"), runtime=runtime,
                 auto_retrain=True).record  # fmt: skip
    assert due["decision"] == "retrained (debt)" and due["exact"]


def test_what_learned_from_the_patient_is_purged_and_the_ledger_says_so(
    deployment, tmp_path, runtime, cache_dir
):
    store = Store(cache_dir)
    dataset = Deployment.open(deployment, runtime=runtime).session.dataset
    originals = store.influenced_by(np.array([10]), dataset.fingerprint)
    assert originals  # the cached original trained on every image
    first_head = Deployment.open(deployment, runtime=runtime).head_sha
    outcome = delete(deployment, ids=_ids(tmp_path, [10, 12], "a.txt"), method="retrain",
                     runtime=runtime)  # fmt: skip
    record = outcome.record
    assert {"what": "checkpoint", "sha256": first_head} in record["purged"]
    assert not Deployment.open(deployment, runtime=runtime).checkpoint(first_head).exists()
    assert not store.influenced_by(np.array([10, 12]), dataset.fingerprint)
    assert all(not path.exists() for path in originals)
    assert any(item["what"] == "cache" for item in record["purged"])


def test_no_patient_id_is_written_where_the_ledger_or_audit_show(deployment, tmp_path, runtime):
    ids = [37, 41, 53]
    outcome = delete(deployment, ids=_ids(tmp_path, ids, "a.txt"), method="retrain",
                     runtime=runtime)  # fmt: skip
    shown = [(deployment / "ledger.jsonl").read_text()]
    shown += [
        (outcome.audit / name).read_text() for name in ("audit.json", "audit.md", "audit.html")
    ]
    for text in shown:
        assert "[37, 41, 53]" not in text and "37, 41, 53" not in text
    stored = json.loads((deployment / "forgotten" / f"{outcome.record['forget_digest']}.json")
                        .read_text())  # fmt: skip
    assert stored["ids"] == ids


KILLER = """
import os, signal, sys
import medunlearn.deletion.{module} as target
from medunlearn.config import RuntimeConfig
from medunlearn.deletion.service import delete

real = target.{name}

def killed(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

target.{name} = killed
delete(sys.argv[1], ids=sys.argv[2], method="retrain",
       runtime=RuntimeConfig(device="cpu", threads=1, cache_dir=sys.argv[3]))
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("module", "name"),
    [("service", "run_method"), ("service", "measure"), ("deployment", "atomic_write_json")],
    ids=["in-training", "in-evaluation", "while-writing"],
)
def test_a_request_killed_anywhere_leaves_the_deployment_and_completes_once(
    deployment, tmp_path, runtime, cache_dir, module, name
):
    ids = _ids(tmp_path, [14, 22, 30], "a.txt")
    before = (deployment / "ledger.jsonl").read_bytes()
    head = file_sha256(deployment / "current.safetensors")
    script = KILLER.format(module=module, name=name)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    result = subprocess.run([sys.executable, "-c", script, str(deployment), str(ids),
                             str(cache_dir)], env=env, capture_output=True, timeout=300)  # fmt: skip
    assert result.returncode == -signal.SIGKILL, result.stderr.decode()[-2000:]
    assert (deployment / "ledger.jsonl").read_bytes() == before
    reopened = Deployment.open(deployment, runtime=runtime)
    assert reopened.head_sha == head and not reopened.forgotten().size
    outcome = delete(deployment, ids=ids, method="retrain", runtime=runtime)
    records = _ledger(deployment)
    assert [r["kind"] for r in records] == ["deploy", "delete"]
    assert outcome.record["decision"] == "released"
    assert not delete(deployment, ids=ids, method="retrain", runtime=runtime).audit


def test_signed_records_verify_with_the_public_key(deployment, tmp_path, runtime):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from medunlearn.deletion.verify import verify

    key = Ed25519PrivateKey.generate()
    private, public = tmp_path / "key.pem", tmp_path / "key.pub"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))  # fmt: skip
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))  # fmt: skip
    delete(deployment, ids=_ids(tmp_path, [1, 2], "a.txt"), method="retrain", runtime=runtime,
           key=private)  # fmt: skip
    assert _ledger(deployment)[-1]["signature"]
    report = verify(deployment, public)
    assert not report.ok  # the deployment's first record is not signed
    assert any("record 0" in line and "signature" in line for line in report.lines)
    assert not any("record 1" in line for line in report.lines)


def test_the_runtime_of_a_deployment_is_the_callers(deployment):
    opened = Deployment.open(deployment, runtime=RuntimeConfig(device="cpu", threads=1))
    assert opened.config.runtime.threads == 1

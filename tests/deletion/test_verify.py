"""`medunlearn ledger verify|show`: a deployment's records and the files they name, checked
without serving it; purged checkpoints are reported as such, altered files and ids named by
their record; the CLI's exit codes; `show` names no patient."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from medunlearn.cli import app
from medunlearn.deletion.deployment import CHECKPOINTS, FORGOTTEN, LEDGER, DeploymentError
from medunlearn.deletion.ledger import Ledger
from medunlearn.deletion.service import delete, deploy
from medunlearn.deletion.verify import summary, verify
from medunlearn.store import CHECKPOINT_FORMAT, load_checkpoint

runner = CliRunner()
# a request of distinctive ids (no single digit of them is searched for)
IDS = (37, 41, 53)
# the patients behind IDS, and everyone else's
PATIENTS = {37: "MRN-884213", 41: "MRN-884213", 53: "MRN-990127"}


@pytest.fixture
def deployed(checkpoint, settings, tmp_path, runtime):
    """A fresh deployment of the tiny model."""
    return deploy(checkpoint, tmp_path / "deployment", settings, runtime=runtime)


def _ids_file(tmp_path, ids=IDS):
    path = tmp_path / "ids.txt"
    path.write_text(" ".join(map(str, ids)) + "\n")
    return path


@pytest.fixture
def served(deployed, tmp_path, runtime):
    """The deployment after one exact request for IDS (the deployed checkpoint purged)."""
    delete(deployed, ids=_ids_file(tmp_path), method="retrain", runtime=runtime)
    return deployed


def _records(folder):
    return Ledger.read(folder / LEDGER).records


def test_a_fresh_deployment_verifies(deployed):
    report = verify(deployed)
    assert report.ok
    assert len(report.lines) == 1
    assert report.lines[0].startswith("ledger OK: 1 records chained, ")
    assert report.lines[0].endswith(", 0 checkpoint(s) purged")


def test_a_deployment_of_an_old_pt_checkpoint_verifies(checkpoint, settings, tmp_path, runtime):
    # the deployment re-saves the model as safetensors: the input's hash names no file kept
    state, meta = load_checkpoint(checkpoint)
    old = tmp_path / "old.pt"
    torch.save({"state_dict": state, "meta": meta, "format": CHECKPOINT_FORMAT}, old)
    folder = deploy(old, tmp_path / "deployment", settings, runtime=runtime)
    (record,) = _records(folder)
    assert record["input"] != record["output"]
    report = verify(folder)
    assert report.ok, report.lines


def test_a_deployment_after_requests_verifies(served, tmp_path, runtime):
    delete(served, ids=_ids_file(tmp_path, (2, 5)), method="retrain", runtime=runtime)
    records = _records(served)
    assert [r["kind"] for r in records] == ["deploy", "delete", "delete"]
    report = verify(served)
    assert report.ok, report.lines
    assert report.lines == [
        "ledger OK: 3 records chained, 1 file(s) match their hashes, 2 checkpoint(s) purged"
    ]


def test_a_purged_checkpoint_is_reported_as_purged_not_missing(served):
    deployed_sha = _records(served)[0]["output"]
    assert not (served / CHECKPOINTS / f"{deployed_sha}.safetensors").exists()
    assert {"what": "checkpoint", "sha256": deployed_sha} in _records(served)[1]["purged"]
    report = verify(served)
    assert report.ok, report.lines
    assert "1 checkpoint(s) purged" in report.lines[0]
    assert not any("missing" in line for line in report.lines)


def test_a_missing_checkpoint_that_was_not_purged_fails(served):
    head = _records(served)[1]["output"]
    (served / CHECKPOINTS / f"{head}.safetensors").unlink()
    report = verify(served)
    assert not report.ok
    assert report.lines == [f"FAILED: record 1: {head}.safetensors is missing (not purged)"]


def test_an_altered_checkpoint_fails_naming_its_record(served):
    head = _records(served)[1]["output"]
    path = served / CHECKPOINTS / f"{head}.safetensors"
    path.write_bytes(path.read_bytes() + b"\0")
    report = verify(served)
    assert not report.ok
    assert report.lines == [f"FAILED: record 1: {head}.safetensors does not match its hash"]


def test_an_ids_file_that_does_not_match_its_digest_fails(served):
    key = _records(served)[1]["forget_digest"]
    path = served / FORGOTTEN / f"{key}.json"
    assert json.loads(path.read_text()) == {"ids": list(IDS)}
    path.write_text(json.dumps({"ids": [37, 41]}))
    report = verify(served)
    assert not report.ok
    assert report.lines == ["FAILED: record 1: its ids file does not match its digest"]


def test_an_edited_record_fails_naming_it(served):
    path = served / LEDGER
    records = _records(served)
    records[1]["method"] = "ft"
    path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
    report = verify(served)
    assert not report.ok
    assert report.lines[0].startswith("FAILED: record 1 (delete, ")
    assert report.lines[0].endswith("its content does not match its hash (edited)")


def test_a_folder_that_is_no_deployment_is_refused(tmp_path):
    with pytest.raises(DeploymentError, match="holds no ledger: is it a deployment"):
        verify(tmp_path)


def _invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_the_cli_exits_0_when_it_holds_and_1_when_it_does_not(served):
    result = _invoke("ledger", "verify", served)
    assert result.exit_code == 0, result.output
    assert "ledger OK: 2 records chained" in result.stdout
    head = _records(served)[1]["output"]
    path = served / CHECKPOINTS / f"{head}.safetensors"
    path.write_bytes(b"\0" + path.read_bytes())
    result = _invoke("ledger", "verify", served)
    assert result.exit_code == 1
    assert "FAILED: record 1:" in result.stdout and "ledger OK" not in result.stdout


def test_the_cli_refuses_a_folder_that_is_no_deployment(tmp_path):
    result = _invoke("ledger", "verify", tmp_path)
    assert result.exit_code == 2
    assert [line for line in result.stderr.splitlines() if line.strip()] == [
        f"error: {tmp_path} holds no ledger: is it a deployment?"
    ]


def _patient_files(tmp_path, n_train=64):
    """A patient map (every training id its patient) and a request naming PATIENTS."""
    mapping = tmp_path / "patients.csv"
    rows = [f"{i},{PATIENTS.get(i, f'MRN-{100000 + i}')}" for i in range(n_train)]
    mapping.write_text("train_id,patient_id\n" + "\n".join(rows) + "\n")
    request = tmp_path / "request.txt"
    request.write_text("\n".join(sorted(set(PATIENTS.values()))) + "\n")
    return request, mapping


def _holds_an_id(text: str) -> bool:
    """Whether a text holds the request's patients or its ids as a list."""
    as_lists = (json.dumps(list(IDS)), ", ".join(map(str, IDS)), ",".join(map(str, IDS)),
                " ".join(map(str, IDS)))  # fmt: skip
    return any(p in text for p in PATIENTS.values()) or any(ids in text for ids in as_lists)


def test_show_names_no_patient(deployed, tmp_path, runtime):
    request, mapping = _patient_files(tmp_path)
    outcome = delete(deployed, patients=request, patient_map=mapping, method="retrain",
                     runtime=runtime)  # fmt: skip
    assert outcome.record["n_patients"] == 2 and outcome.record["n_images"] == len(IDS)
    assert json.loads((deployed / FORGOTTEN / f"{outcome.record['forget_digest']}.json")
                      .read_text())["ids"] == list(IDS)  # fmt: skip
    assert _holds_an_id(json.dumps({"ids": list(IDS)}))  # the search finds them where they are
    lines = summary(deployed)
    assert len(lines) == 2 and "delete" in lines[1] and "3 image(s), retrain, released" in lines[1]
    result = _invoke("ledger", "show", deployed)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == lines
    assert not _holds_an_id(result.stdout)
    assert not _holds_an_id((deployed / LEDGER).read_text())


def test_signed_records_verify_with_the_public_key(checkpoint, settings, tmp_path, runtime):
    pytest.importorskip("cryptography")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private, public = tmp_path / "hospital.pem", tmp_path / "hospital.pub.pem"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))  # fmt: skip
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))  # fmt: skip
    folder = deploy(checkpoint, tmp_path / "deployment", settings, runtime=runtime, key=private)
    delete(folder, ids=_ids_file(tmp_path), method="retrain", runtime=runtime, key=private)
    assert verify(folder, public).ok, verify(folder, public).lines
    result = _invoke("ledger", "verify", folder, "--public-key", public)
    assert result.exit_code == 0, result.output
    records = _records(folder)
    records[1]["signature"] = records[0]["signature"]
    (folder / LEDGER).write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
    assert verify(folder).ok  # the chain alone cannot tell
    report = verify(folder, public)
    assert not report.ok and report.lines[0].endswith("its signature does not match")
    assert _invoke("ledger", "verify", folder, "--public-key", public).exit_code == 1

"""The deployment commands end to end on the tiny fixture (deploy, protocol, delete by ids and by
patients, ledger verify and show), and bad input: one line on stderr, exit status 2, nothing
written, the ledger unchanged."""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import medunlearn.cli as cli
from medunlearn.cli import app
from medunlearn.config import RuntimeConfig
from medunlearn.deletion.deployment import LEDGER
from medunlearn.deletion.ledger import Ledger

runner = CliRunner()
FT = ("-p", "epochs=1", "-p", "batch_size=16")


@pytest.fixture(autouse=True)
def _one_thread_runtime(monkeypatch):
    """The deployment commands build their own runtime: keep it on one CPU thread."""
    monkeypatch.setattr(cli, "RuntimeConfig", functools.partial(RuntimeConfig, threads=1))


def _invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def _ok(result):
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result


def _words(text: str) -> str:
    """Text with its whitespace runs made single spaces (the console wraps long lines)."""
    return " ".join(text.split())


def _error_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


def _refused(result, words: str) -> None:
    """Exit status 2 and one line on stderr holding `words`, no traceback."""
    assert result.exit_code == 2, result.output + repr(result.exception)
    lines = _error_lines(result)
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert words in lines[0], lines[0]
    assert "Traceback" not in result.output
    assert result.stdout == ""


def _snapshot(folder: Path) -> dict[str, str]:
    """Every file under a folder with the SHA-256 of its bytes."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}  # fmt: skip


@pytest.fixture
def run_options(cache_dir):
    """CPU and the test's cache, for every deployment command."""
    return ("--device", "cpu", "--cache", cache_dir)


@pytest.fixture
def deployed(checkpoint, settings, tmp_path, run_options):
    """A deployment started with `medunlearn deploy`."""
    out = tmp_path / "deployment"
    result = _ok(_invoke("deploy", checkpoint, "--out", out, "--config", settings, *run_options))
    assert _words(result.stdout) == f"deployment: {out} (ledger {out / LEDGER})"
    return out


def _patient_map(tmp_path: Path, n_train: int = 64) -> Path:
    """Patient P<k> owns training ids 2k and 2k + 1."""
    path = tmp_path / "patients.csv"
    rows = [f"{i},P{i // 2:03d}" for i in range(n_train)]
    path.write_text("train_id,patient_id\n" + "\n".join(rows) + "\n")
    return path


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_deploy_protocol_delete_and_ledger_end_to_end(deployed, tmp_path, run_options):
    (record,) = Ledger.read(deployed / LEDGER).records
    assert record["kind"] == "deploy"
    assert (deployed / "config.yaml").is_file()
    assert _snapshot(deployed)["current.safetensors"] == record["output"]

    result = _ok(_invoke("protocol", deployed, "--method", "ft", *FT, *run_options))
    lines = result.stdout.splitlines()
    assert lines[0] == "ft: validated"
    assert len(lines) == 3 and all(": at most " in line for line in lines[1:])

    # by ids, with the protocol's method (no --method)
    ids = _write(tmp_path / "ids.txt", "37 41 53\n")
    result = _ok(_invoke("delete", deployed, "--ids", ids, *run_options))
    head = Ledger.read(deployed / LEDGER).head
    assert head["method"] in ("ft", "retrain") and head["n_images"] == 3
    audit = deployed / "audits" / head["request"] / "audit.html"
    assert _words(result.stdout) == (
        f"request {head['request']}: {head['decision']} ({head['method']}); audit: {audit}"
    )
    assert audit.is_file()
    # the checkpoint a user reads is the new head, never the purged model
    assert _snapshot(deployed)["current.safetensors"] == head["output"]

    # by patients, through the map: P010 owns ids 20 and 21
    patients = _write(tmp_path / "patients.txt", "P010\n")
    result = _ok(_invoke("delete", deployed, "--patients", patients, "--patient-map",
                         _patient_map(tmp_path), "--method", "retrain", *run_options))  # fmt: skip
    head = Ledger.read(deployed / LEDGER).head
    assert (head["n_patients"], head["n_images"], head["decision"]) == (1, 2, "released")
    assert f"request {head['request']}: released (retrain)" in _words(result.stdout)

    # asked again: answered from the ledger, nothing written
    before = _snapshot(deployed)
    result = _ok(_invoke("delete", deployed, "--ids", ids, *run_options))
    assert result.stdout.startswith("already forgotten: request ")
    assert _snapshot(deployed) == before

    result = _ok(_invoke("ledger", "verify", deployed))
    assert result.stdout.startswith("ledger OK: 4 records chained")
    result = _ok(_invoke("ledger", "show", deployed))
    shown = result.stdout.splitlines()
    assert [line.split()[2] for line in shown] == ["deploy", "protocol", "delete", "delete"]
    assert "P010" not in result.stdout


def test_a_checkpoint_of_other_data_is_not_deployed(checkpoint, settings, write_npz, tmp_path,
                                                    run_options):  # fmt: skip
    other = write_npz("bloodmnist", 64, 24, 24, seed=1, folder=tmp_path / "other").parent
    out = tmp_path / "deployment"
    result = _invoke("deploy", checkpoint, "--out", out, "--config", settings,
                     "--data-root", other, *run_options)  # fmt: skip
    _refused(result, "was trained on data of fingerprint")
    assert not out.exists()


def test_a_deployment_is_not_deployed_over(deployed, checkpoint, settings, run_options):
    before = _snapshot(deployed)
    result = _invoke("deploy", checkpoint, "--out", deployed, "--config", settings, *run_options)
    _refused(result, "is a deployment already")
    assert _snapshot(deployed) == before


def test_a_folder_that_is_no_deployment_is_refused(tmp_path, run_options):
    folder = tmp_path / "not-a-deployment"
    folder.mkdir()
    (folder / "notes.txt").write_text("hello\n")
    ids = _write(tmp_path / "ids.txt", "1 2\n")
    for args in (["delete", folder, "--ids", ids, *run_options],
                 ["protocol", folder, "--method", "ft", *run_options]):  # fmt: skip
        _refused(_invoke(*args), "is not a deployment: start one with `medunlearn deploy")
    for command in ("show", "verify"):
        _refused(_invoke("ledger", command, folder), "holds no ledger: is it a deployment?")
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]


def test_bad_requests_change_nothing(deployed, write_npz, tmp_path, run_options):
    patient_map = _patient_map(tmp_path)
    other = write_npz("bloodmnist", 64, 24, 24, seed=1, folder=tmp_path / "other").parent
    class_three = [i for i, label in enumerate(_train_labels(deployed)) if label == 3]
    cases = {
        "unknown patient": (["--patients", _write(tmp_path / "p.txt", "P001\nP999\n"),
                             "--patient-map", patient_map, "--method", "retrain"],
                            "1 unknown patient(s), e.g. ['P999']"),
        "id out of range": (["--ids", _write(tmp_path / "far.txt", "3 64\n"), "--method",
                             "retrain"], "out of range [0, 63], e.g. [64]"),
        "patients without a map": (["--patients", tmp_path / "p.txt", "--method", "retrain"],
                                   "--patients needs --patient-map"),
        "ids and patients": (["--ids", tmp_path / "far.txt", "--patients", tmp_path / "p.txt"],
                             "name what to forget"),
        "a class emptied": (["--ids", _write(tmp_path / "class.txt", " ".join(map(str, class_three))),
                             "--method", "retrain"], "every training image of class"),
        "no protocol": (["--ids", _write(tmp_path / "ok.txt", "5\n"), "--method", "ft"],
                        "no protocol validates ft on this deployment"),
        "other data": (["--ids", tmp_path / "ok.txt", "--method", "retrain", "--data-root",
                        other], "is not the data this deployment serves"),
        "unknown method": (["--ids", tmp_path / "ok.txt", "--method", "scrubb"], "scrubb"),
    }  # fmt: skip
    before = _snapshot(deployed)
    for name, (args, words) in cases.items():
        result = _invoke("delete", deployed, *args, *run_options)
        try:
            _refused(result, words)
        except AssertionError as error:
            raise AssertionError(f"{name}: {error}") from None
        assert _snapshot(deployed) == before, name


def test_a_ledger_that_does_not_chain_is_not_served(deployed, tmp_path, run_options):
    path = deployed / LEDGER
    (record,) = [json.loads(line) for line in path.read_text().splitlines()]
    record["dataset"] = "pneumoniamnist"
    path.write_text(json.dumps(record, sort_keys=True) + "\n")
    before = _snapshot(deployed)
    ids = _write(tmp_path / "ids.txt", "5\n")
    result = _invoke("delete", deployed, "--ids", ids, "--method", "retrain", *run_options)
    _refused(result, "does not chain: record 0 (deploy,")
    assert _snapshot(deployed) == before
    assert _invoke("ledger", "verify", deployed).exit_code == 1


def _train_labels(deployed: Path) -> list[int]:
    """The training labels of the data a deployment serves."""
    from medunlearn.config import load_config
    from medunlearn.data.medmnist import load_medmnist

    data = load_config(deployed / "config.yaml").data
    dataset = load_medmnist(data.dataset, data.size, root=data.root, download=False)
    return dataset.train.labels.tolist()

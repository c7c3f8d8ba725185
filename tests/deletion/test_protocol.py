"""The validated protocol: simulated requests against banks of Retrains, the strong tests of
the method against Retrain, the acceptance criteria derived, and its ledger record."""

from __future__ import annotations

import json

import pytest
import yaml

from medunlearn.config import UserError
from medunlearn.deletion.deployment import PROTOCOLS, Deployment
from medunlearn.deletion.ledger import Ledger
from medunlearn.deletion.protocol import simulated_requests, validate_protocol
from medunlearn.deletion.service import delete
from medunlearn.store import file_sha256

QUICK = {"epochs": 1, "batch_size": 16}


@pytest.fixture
def deployment(make_config, tmp_path, data_root, runtime):
    """A tiny deployment whose protocol tolerances a tiny model can meet."""
    from medunlearn.deletion.service import deploy
    from medunlearn.experiment import export_original

    settings = tmp_path / "deletion.yaml"
    settings.write_text(yaml.safe_dump({"deletion": {"protocol": {
        "requests": 2, "size": 6, "bank": 3, "repeats": 3, "attack_gap": 1.0, "ulira": 1.0,
        "ain": 0.0}}}))  # fmt: skip
    checkpoint, _ = export_original(make_config(epochs=2), tmp_path / "model")
    return deploy(checkpoint, tmp_path / "deployment", settings, str(data_root), runtime)


def test_a_protocol_runs_its_simulated_requests_and_records_its_criteria(deployment, runtime):
    protocol = validate_protocol(deployment, "ft", QUICK, runtime=runtime)
    assert protocol["validated"] and not protocol["failures"]
    assert [v["request"] for v in protocol["validation"]] == [1, 2]
    for check in protocol["validation"]:
        assert check["images"] == 6
        assert {"lira_gap", "rmia_gap", "ulira_acc", "forget_quality", "ain"} <= set(check)
    criteria = {c["key"]: c for c in protocol["criteria"]}
    assert set(criteria) == {"pop_phi_matched_auc", "forget_gap"}
    for criterion in criteria.values():
        assert len(criterion["values"]) == 2 and criterion["bound"] >= max(criterion["values"])
    record = Ledger.read(deployment / "ledger.jsonl").records[-1]
    assert record["kind"] == "protocol" and record["method"] == "ft" and record["validated"]
    path = deployment / PROTOCOLS / f"{record['protocol']}.json"
    assert file_sha256(path) == record["protocol"]
    assert json.loads(path.read_text())["criteria"] == protocol["criteria"]


def test_the_simulated_requests_are_drawn_like_real_ones_from_what_is_left(
    deployment, tmp_path, runtime
):
    delete(deployment, ids=_write(tmp_path, "1 2 3 4 5"), method="retrain", runtime=runtime)
    opened = Deployment.open(deployment, runtime=runtime)
    requests = simulated_requests(opened, None)
    assert [len(r) for r in requests] == [6, 6]
    assert all(not set(r.tolist()) & {1, 2, 3, 4, 5} for r in requests)
    mapping = tmp_path / "map.csv"
    mapping.write_text("train_id,patient_id\n" + "".join(f"{i},p{i // 2}\n" for i in range(64)))
    by_patient = simulated_requests(opened, mapping)
    assert all(len(r) == 12 and all(i // 2 not in (0, 1, 2) for i in r) for r in by_patient)
    assert [r.tolist() for r in simulated_requests(opened, None)] == [r.tolist() for r in requests]


def _write(tmp_path, text: str):
    path = tmp_path / "ids.txt"
    path.write_text(text)
    return path


def test_a_method_that_fails_its_protocol_serves_no_request(deployment, tmp_path, runtime):
    config = yaml.safe_load((deployment / "config.yaml").read_text())
    config["deletion"]["protocol"].update(attack_gap=0.0, ulira=0.5)
    (deployment / "config.yaml").write_text(yaml.safe_dump(config))
    protocol = validate_protocol(deployment, "ga", {"epochs": 1, "lr": 0.5}, runtime=runtime)
    assert not protocol["validated"] and protocol["failures"]
    with pytest.raises(UserError, match="ga failed its protocol"):
        delete(deployment, ids=_write(tmp_path, "9 10"), method="ga",
               params={"epochs": 1, "lr": 0.5}, runtime=runtime)  # fmt: skip


def test_retrain_needs_no_protocol_and_other_params_are_refused(deployment, tmp_path, runtime):
    with pytest.raises(UserError, match="needs no protocol"):
        validate_protocol(deployment, "retrain", runtime=runtime)
    validate_protocol(deployment, "ft", QUICK, runtime=runtime)
    with pytest.raises(UserError, match="validated ft with"):
        delete(deployment, ids=_write(tmp_path, "9 10"), method="ft",
               params={"epochs": 3, "batch_size": 16}, runtime=runtime)  # fmt: skip


def test_a_protocol_of_another_model_is_refused(deployment, tmp_path, runtime):
    validate_protocol(deployment, "ft", QUICK, runtime=runtime)
    opened = Deployment.open(deployment, runtime=runtime)
    sha = opened.ledger_protocol_sha("ft")
    path = deployment / PROTOCOLS / f"{sha}.json"
    protocol = json.loads(path.read_text())
    protocol["model"]["width"] = 64
    path.write_text(json.dumps(protocol))
    with pytest.raises(UserError, match="missing or altered"):
        delete(deployment, ids=_write(tmp_path, "9 10"), runtime=runtime)

"""The validated protocol of a method on a deployment (as a predetermined change control plan
does): certify once, on simulated requests drawn like real ones, each against a bank of
Retrains with the strong tests (LiRA, RMIA, U-LiRA, the forgetting score, relearning) and the
clinical metrics; derive the acceptance criteria every real request's cheap evidence is then
held to; record the protocol in the ledger. Certifying each request with a bank would cost
more than the Retrain unlearning saves."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from medunlearn.config import EvaluationConfig, MethodConfig, RuntimeConfig, UserError
from medunlearn.deletion.deployment import PROTOCOLS, Deployment
from medunlearn.deletion.evidence import criteria_dicts, derive_criteria, forget_gap
from medunlearn.deletion.requests import read_patient_map
from medunlearn.deletion.service import now
from medunlearn.forget import ForgetSet
from medunlearn.methods import Context, UnlearnData
from medunlearn.methods.registry import get_method, method_params
from medunlearn.metrics.gap import add_gaps
from medunlearn.progress import Progress
from medunlearn.roles import METHOD, RETRAIN, RETRAIN_METHOD, row_role, study_methods
from medunlearn.seeds import Seeds, derived_seed
from medunlearn.store import atomic_write_text, file_sha256
from medunlearn.study.rows import ForgetRun, finish_rows


def simulated_requests(deployment: Deployment, patient_map: str | Path | None) -> list[np.ndarray]:
    """The protocol's requests: `size` patients each (where a map is given) or `size` images,
    drawn at random (seeded) from what is not forgotten yet."""
    settings = deployment.config.deletion.protocol
    n_train = len(deployment.session.dataset.train)
    forgotten = deployment.forgotten()
    rng = np.random.default_rng(derived_seed(deployment.config.seeds[0], "protocol"))
    if patient_map is not None:
        mapping = read_patient_map(patient_map, n_train)
        patients = sorted(p for p, ids in mapping.items() if not np.isin(ids, forgotten).any())
        if len(patients) < settings.size:
            raise UserError(
                f"only {len(patients)} patients left to simulate requests of {settings.size}"
            )
        chosen = [
            rng.choice(patients, settings.size, replace=False) for _ in range(settings.requests)
        ]
        return [np.unique(np.concatenate([mapping[p] for p in group])) for group in chosen]
    left = np.setdiff1d(np.arange(n_train), forgotten)
    return [
        np.sort(rng.choice(left, settings.size, replace=False)) for _ in range(settings.requests)
    ]


def _strong_tests(rows: list[dict], tolerance) -> tuple[dict, list[str]]:
    """One simulated request's strong tests of the method against Retrain, and the tolerances
    they break."""
    method = next(r for r in rows if row_role(r) == METHOD)
    retrain = next(r for r in rows if row_role(r) == RETRAIN)
    gap = {a: None if method.get(f"{a}_auc") is None else abs(method[f"{a}_auc"] - retrain[f"{a}_auc"])
           for a in ("lira", "rmia")}  # fmt: skip
    tests = {"lira_gap": gap["lira"], "rmia_gap": gap["rmia"], "ulira_acc": method.get("ulira_acc"),
             "forget_quality": method.get("forget_quality"), "ain": method.get("ain"),
             "ag": method.get("ag"), "ta": method["ta"], "retrain_ta": retrain["ta"]}  # fmt: skip
    failures = [
        message for message, broken in (
            (f"LiRA AUC {gap['lira']:.3f} from Retrain's", (gap["lira"] or 0) > tolerance.attack_gap),
            (f"RMIA AUC {gap['rmia']:.3f} from Retrain's", (gap["rmia"] or 0) > tolerance.attack_gap),
            (f"U-LiRA accuracy {tests['ulira_acc']}", (tests["ulira_acc"] or 0) > tolerance.ulira),
            (f"anamnesis index {tests['ain']}", tests["ain"] is not None and tests["ain"] < tolerance.ain),
        ) if broken
    ]  # fmt: skip
    return tests, failures


def validate_protocol(
    folder: str | Path,
    method: str,
    params: dict | None = None,
    patient_map: str | Path | None = None,
    data_root: str | None = None,
    runtime: RuntimeConfig | None = None,
    key: str | Path | None = None,
    progress: Progress | None = None,
) -> dict:
    """Validate a method on a deployment's current model (see the module docstring); writes
    the protocol file and its ledger record, and returns the protocol."""
    started = time.perf_counter()
    deployment = Deployment.open(folder, data_root, runtime, progress)
    params = params or {}
    method_params(method, params)
    get_method(method).check_data(deployment.session.dataset)
    if method == RETRAIN:
        raise UserError(
            "Retrain is exact and needs no protocol: serve requests with --method retrain"
        )
    settings = deployment.config.deletion.protocol
    evaluation = EvaluationConfig(bank=settings.bank, repeats=settings.repeats, relearn=True,
                                  matched=True, calibration=True)  # fmt: skip
    chosen = MethodConfig(method, params)
    config = dataclasses.replace(deployment.config, evaluation=evaluation,
                                 methods=[RETRAIN_METHOD, chosen])  # fmt: skip
    session, head = deployment.session, deployment.model()
    seeds = Seeds(deployment.config.seeds[0])
    work = session.store.root / "protocols" / deployment.head_sha[:16] / method
    rows, validation, failures = [], [], []
    for number, ids in enumerate(simulated_requests(deployment, patient_map), start=1):
        dataset = session.dataset
        forget_set = ForgetSet(ids, len(dataset.train), dataset.name, dataset.fingerprint,
                               {"mode": "protocol", "label": f"protocol-{number}"}, seeds.forget,
                               deployment.forgotten())  # fmt: skip
        context = Context(session.engine, seeds.seed, config.train, config.model, session.store)
        run = ForgetRun(config, UnlearnData(dataset, forget_set), head, context, seeds,
                        work / f"request{number}")  # fmt: skip
        request_rows = finish_rows(run, study_methods(config))
        add_gaps(request_rows)
        for row in request_rows:
            row["forget_gap"] = forget_gap(row)
        tests, broken = _strong_tests(request_rows, settings)
        validation.append({"request": number, "images": int(ids.size), **tests, "failures": broken})
        failures += [f"simulated request {number}: {message}" for message in broken]
        rows += request_rows
    method_rows = [row for row in rows if row_role(row) == METHOD]
    protocol = {
        "method": method, "params": params, "time": now(),
        "model": dataclasses.asdict(deployment.config.model),
        "data_fingerprint": session.dataset.fingerprint, "head": deployment.head_sha,
        "settings": dataclasses.asdict(settings),
        "criteria": criteria_dicts(derive_criteria(method_rows, settings.confidence)),
        "validation": validation, "validated": not failures, "failures": failures,
        "debt": dataclasses.asdict(deployment.config.deletion.debt),
        "seconds": time.perf_counter() - started,
    }  # fmt: skip
    path = deployment.folder / PROTOCOLS / ".staging.json"
    atomic_write_text(path, json.dumps(protocol, indent=1, default=str))
    sha = file_sha256(path)
    path.replace(deployment.folder / PROTOCOLS / f"{sha}.json")
    entry = {"kind": "protocol", "time": protocol["time"], "method": method, "params": params,
             "protocol": sha, "validated": protocol["validated"],
             "criteria": {c["key"]: c["bound"] for c in protocol["criteria"]},
             "input": deployment.head_sha, "output": deployment.head_sha,
             "seconds": protocol["seconds"]}  # fmt: skip
    deployment.ledger.appended(entry, key)
    return protocol

"""The deletion service: start a deployment, and serve its requests one after another.

A request forgets patients (or images) on the deployment's current model with a validated
method, measures its evidence in inference only, passes the clinical release gate against the
last exactly retrained model (or falls back to an exact Retrain), tracks the unlearning debt,
purges what learned from the patient, and commits with one ledger record and its audit."""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from medunlearn.checkpoints import load_model
from medunlearn.config import (
    MethodConfig,
    RuntimeConfig,
    UserError,
    load_config,
)
from medunlearn.deletion import audit as audit_module
from medunlearn.deletion.deployment import (
    AUDITS,
    CHECKPOINTS,
    SLICES,
    Deployment,
    DeploymentError,
    create,
    publish_checkpoint,
    publish_ids,
    refresh_current,
    slice_checkpoints,
)
from medunlearn.deletion.evidence import measure, within
from medunlearn.deletion.gate import GateResult, judge
from medunlearn.deletion.ledger import versions
from medunlearn.deletion.oneoff import check_fingerprint, config_from_checkpoint
from medunlearn.deletion.requests import (
    Closure,
    check_classes_remain,
    close_request,
    digest,
    patients_to_ids,
    read_patient_map,
    read_patients,
    request_ids,
)
from medunlearn.forget import ForgetSet
from medunlearn.methods import Context, UnlearnData
from medunlearn.methods.registry import get_method, method_params, original_recipe
from medunlearn.metrics.evaluate import is_binary
from medunlearn.progress import Progress
from medunlearn.roles import RETRAIN_METHOD
from medunlearn.seeds import derived_seed
from medunlearn.sharding import ShardedModel, deletion_columns, verify_slices
from medunlearn.store import atomic_write_json, cache_key, file_sha256
from medunlearn.study.pipeline import run_method
from medunlearn.study.setup import open_session

PENDING = "pending"


def now() -> str:
    """The time of a record (UTC, seconds)."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def deploy(
    checkpoint: str | Path,
    out: str | Path,
    config_file: str | Path | None = None,
    data_root: str | None = None,
    runtime: RuntimeConfig | None = None,
    progress: Progress | None = None,
    key: str | Path | None = None,
) -> Path:
    """Start a deployment of a trained checkpoint in folder `out`: its config (the checkpoint's
    data, model and recipe; the deletion settings of `config_file` where given), its first
    checkpoint and the ledger's first record (signed with `key`, an Ed25519 private key in PEM,
    where given). Refused for a checkpoint of other data."""
    checkpoint, out = Path(checkpoint), Path(out)
    if (out / "ledger.jsonl").is_file():
        raise DeploymentError(
            f"{out} is a deployment already: serve requests with `medunlearn delete`"
        )
    config = config_from_checkpoint(checkpoint, data_root, runtime)
    if config_file is not None:
        config.deletion = load_config(config_file).deletion
    session = open_session(config, progress)
    trained = load_model(checkpoint, config.model, session.dataset)
    check_fingerprint(trained, session.dataset.fingerprint, checkpoint)
    if isinstance(trained.model, ShardedModel):
        verify_slices(trained.model.sharding)  # SISA restarts from them: refuse them altered
    record = {
        "kind": "deploy", "time": now(), "input": file_sha256(checkpoint),
        "dataset": session.dataset.name, "data_fingerprint": session.dataset.fingerprint,
        "config": cache_key("config", config.data, config.model, config.train, config.deletion),
        "versions": versions(),
    }  # fmt: skip
    create(out, config, trained, record, key)
    return out


@dataclass
class Outcome:
    """What a request produced: its ledger record, its audit folder (None where the request
    was answered from the ledger), and whether it was answered so."""

    record: dict
    audit: Path | None
    answered: bool = False


def resolve_ids(
    deployment: Deployment,
    ids: str | Path | None,
    patients: str | Path | None,
    patient_map: str | Path | None,
) -> tuple[np.ndarray, int | None]:
    """The training ids a request names (and how many patients), from an id file, or from a
    patient list through the patient map."""
    n_train = len(deployment.session.dataset.train)
    if (ids is None) == (patients is None):
        raise UserError(
            "name what to forget: --ids FILE, or --patients FILE with --patient-map CSV"
        )
    if ids is not None:
        return request_ids(ids, n_train), None
    if patient_map is None:
        raise UserError("--patients needs --patient-map CSV (columns train_id, patient_id)")
    named = read_patients(patients)
    return patients_to_ids(named, read_patient_map(patient_map, n_train)), len(set(named))


def resolve_method(
    deployment: Deployment, name: str | None, params: dict
) -> tuple[MethodConfig, dict | None]:
    """The request's method (default: the last validated protocol's) and its protocol; an
    approximate method needs a protocol validated for it on this deployment's model, an exact
    one (Retrain, SISA) none, and a method that needs a recipe of its own (SISA: shards and
    slices) the deployment's model trained with it."""
    protocol = deployment.protocol(name)
    if name is None:
        if protocol is None:
            raise UserError("no protocol validated yet: name a method (--method), or run "
                            "`medunlearn protocol DEPLOYMENT --method M` first")  # fmt: skip
        name = protocol["method"]
        params = {**protocol["params"], **params}
    method = MethodConfig(name, params)
    method_params(name, params)
    spec = get_method(name)
    spec.check_data(deployment.session.dataset)
    train = deployment.config.train
    if original_recipe(train, method) != train:
        raise UserError(
            f"{name} needs a model trained otherwise ({spec.summary}); this deployment's was "
            f"trained with {train.shards} shard(s) of {train.slices} slice(s): serve the request "
            "with --method retrain, or deploy a model trained for it"
        )
    if spec.exact:
        return method, None
    if protocol is None:
        raise UserError(
            f"no protocol validates {name} on this deployment: run `medunlearn protocol "
            f"DEPLOYMENT --method {name}` first, or serve the request exactly with --method retrain"
        )
    if protocol["params"] != params and not all(
        protocol["params"].get(k) == v for k, v in params.items()
    ):
        raise UserError(f"the protocol validated {name} with {protocol['params']}, not {params}")
    model = deployment.config.model
    if (protocol["model"]["arch"], protocol["model"]["width"], protocol["data_fingerprint"]) != (
        model.arch,
        model.width,
        deployment.session.dataset.fingerprint,
    ):
        raise UserError(
            f"the protocol of {name} was validated on another model or data: run it again"
        )
    if not protocol["validated"]:
        raise UserError(
            f"{name} failed its protocol ({protocol['failures'][0]}): serve the request with "
            "--method retrain, or tune the method and validate it again"
        )
    return method, protocol


def delete(
    folder: str | Path,
    ids: str | Path | None = None,
    patients: str | Path | None = None,
    patient_map: str | Path | None = None,
    method: str | None = None,
    params: dict | None = None,
    data_root: str | None = None,
    runtime: RuntimeConfig | None = None,
    reference: bool = False,
    auto_retrain: bool | None = None,
    key: str | Path | None = None,
    progress: Progress | None = None,
) -> Outcome:
    """Serve one deletion request on a deployment (see the module docstring); the ledger is
    unchanged where anything is refused, and a request stopped anywhere leaves the deployment as
    it was and completes once when run again."""
    deployment = Deployment.open(folder, data_root, runtime, progress)
    named, n_patients = resolve_ids(deployment, ids, patients, patient_map)
    settings = deployment.config.deletion
    closure = close_request(deployment.session.dataset, named, settings.phash_distance,
                            settings.forget_neighbours)  # fmt: skip
    forgotten = deployment.forgotten()
    new = np.setdiff1d(closure.ids, forgotten)
    if not new.size:
        return answered(deployment, closure.ids)
    check_classes_remain(deployment.session.dataset, np.union1d(forgotten, new))
    chosen, protocol = resolve_method(deployment, method, params or {})
    request = Request(deployment, closure, new, forgotten, n_patients, chosen, protocol)
    return request.serve(reference, settings.auto_retrain if auto_retrain is None else auto_retrain,
                         key)  # fmt: skip


def answered(deployment: Deployment, ids: np.ndarray) -> Outcome:
    """A request for ids forgotten already, answered from the ledger: the records that forgot
    them (the last of them returned), nothing trained, nothing written."""
    covering = [r for r in deployment.served()
                if np.intersect1d(deployment.request_ids(r["forget_digest"]), ids).size]  # fmt: skip
    return Outcome(covering[-1], None, answered=True)


def _probabilities(logits: torch.Tensor) -> np.ndarray:
    """Softmax probabilities of float logits, as numpy."""
    return torch.softmax(logits.double(), 1).numpy()


@dataclass
class Request:
    """One request being served."""

    deployment: Deployment
    closure: Closure
    new: np.ndarray
    forgotten: np.ndarray
    n_patients: int | None
    method: MethodConfig
    protocol: dict | None

    @property
    def key(self) -> str:
        """What identifies this request's work: the model it starts from, its ids, its method."""
        return cache_key("request", self.deployment.head_sha, digest(self.new), self.method)

    @property
    def seed(self) -> int:
        """The request's own seed, fixed by the deployment's seed and its ids."""
        return derived_seed(self.deployment.config.seeds[0], f"request-{digest(self.new)}")

    def forget_set(self) -> ForgetSet:
        """The request's forget set: its new ids, everything forgotten earlier excluded."""
        dataset = self.deployment.session.dataset
        return ForgetSet(self.new, len(dataset.train), dataset.name, dataset.fingerprint,
                         {"mode": "request"}, self.seed, self.forgotten)  # fmt: skip

    def run(self, method: MethodConfig) -> tuple[torch.nn.Module, float]:
        """Unlearn with `method` from the current model (resumable; a finished result is kept in
        the deployment's pending folder, so that a request stopped later does not train again)."""
        deployment = self.deployment
        pending = deployment.folder / PENDING / f"{cache_key(self.key, method)}.json"
        if pending.is_file():
            saved = json.loads(pending.read_text())
            trained = deployment.model(saved["checkpoint"])
            return trained.model, saved["seconds"]
        head = deployment.model()
        session = deployment.session
        context = Context(session.engine, self.seed, deployment.config.train,
                          deployment.config.model, session.store, name=f"request {method.name}")  # fmt: skip
        data = UnlearnData(session.dataset, self.forget_set())
        model, seconds = run_method(method, data, head, context, cache_key(self.key, method))
        sha = publish_checkpoint(deployment.folder, model, {**head.meta, "unlearned": method.name})
        atomic_write_json(pending, {"checkpoint": sha, "seconds": seconds})
        return model, seconds

    def judge(self, model: torch.nn.Module) -> tuple[dict, GateResult, list[dict]]:
        """A result's evidence, the gate's verdict against the last exact model, and the
        protocol's criteria checks."""
        session, deployment = self.deployment.session, self.deployment
        evidence, logits = measure(model, session.dataset, self.forget_set(), session.engine,
                                   self.seed)  # fmt: skip
        exact = deployment.model(deployment.exact_record()["output"])
        reference = session.engine.logits(exact.model, session.dataset.test.images, "reference")
        gate = judge(_probabilities(logits), _probabilities(reference),
                     session.dataset.test.labels.numpy(), deployment.config.deletion.gate,
                     is_binary(session.dataset), self.seed)  # fmt: skip
        criteria = within(evidence, self.protocol["criteria"]) if self.protocol else []
        return evidence, gate, criteria

    def serve(self, reference: bool, auto_retrain: bool, key: str | Path | None) -> Outcome:
        """Unlearn, judge, fall back or hold, track the debt, then commit (see `delete`)."""
        deployment = self.deployment
        gate_config = deployment.config.deletion.gate
        before, _, _ = self.judge(deployment.model().model)
        model, seconds = self.run(self.method)
        evidence, gate, criteria = self.judge(model)
        exact = get_method(self.method.name).exact
        passed = gate.released and all(c["passed"] for c in criteria)
        decision = "released" if passed else None
        if not passed and exact:
            # the gate applies to an exact deletion too: held where the hospital holds a
            # failing model for review; else released, since a Retrain would be no better
            decision = "held" if gate_config.fallback == "hold" else "released"
        attempt = None
        if decision is None:
            attempt = {"method": self.method.name, "seconds": seconds, "evidence": evidence,
                       "gate": gate.to_dict(), "criteria": criteria}  # fmt: skip
            if gate_config.fallback == "hold":
                decision = "held"
            else:
                model, seconds = self.run(RETRAIN_METHOD)
                evidence, gate, criteria = self.judge(model)
                decision, exact = "retrained", True
        debt = None if exact or decision == "held" else self.debt(model, evidence, gate)
        if debt is not None and debt["exceeded"] and auto_retrain:
            attempt = attempt or {"method": self.method.name, "seconds": seconds,
                                  "evidence": evidence, "gate": gate.to_dict(), "released": True}  # fmt: skip
            model, seconds = self.run(RETRAIN_METHOD)
            evidence, gate, criteria = self.judge(model)
            decision, exact = "retrained (debt)", True
        exact_reference = self.exact_reference(model) if reference else None
        return self.commit(model, seconds, before, evidence, gate, criteria, decision, exact,
                           attempt, debt, exact_reference, key)  # fmt: skip

    def exact_reference(self, model: torch.nn.Module) -> dict:
        """`--reference retrain`: the exact Retrain of this request and the evidence gaps of the
        served model to it (an audit sample)."""
        retrained, seconds = self.run(RETRAIN_METHOD)
        exact, _, _ = self.judge(retrained)
        served, _, _ = self.judge(model)
        keys = ("ua", "ta", "pop_phi_matched_auc", "forget_gap")
        return {"seconds": seconds, "retrain": {k: exact.get(k) for k in keys},
                "gaps": {k: None if exact.get(k) is None or served.get(k) is None
                         else served[k] - exact[k] for k in keys}}  # fmt: skip

    def debt(self, model: torch.nn.Module, evidence: dict, gate: GateResult) -> dict:
        """The unlearning debt since the last exact model: images forgotten approximately, test
        accuracy drift, and forgetting reversal (each earlier request's forgotten images
        re-checked with this model), against the bounds."""
        deployment, session = self.deployment, self.deployment.session
        bounds = deployment.config.deletion.debt
        earlier = deployment.since_exact()
        images = int(self.new.size + sum(r["n_images"] for r in earlier))
        drift = -next(c.change for c in gate.checks if c.metric == "accuracy")
        protocol_bound = next((c["bound"] for c in (self.protocol or {}).get("criteria", [])
                               if c["key"] == "pop_phi_matched_auc"), 0.5 + bounds.reversal)  # fmt: skip
        reversal = []
        for record in earlier:
            ids = deployment.request_ids(record["forget_digest"])
            forget_set = ForgetSet(ids, len(session.dataset.train), session.dataset.name,
                                   session.dataset.fingerprint)  # fmt: skip
            columns, _ = measure(model, session.dataset, forget_set, session.engine, self.seed)
            reversal.append({"request": record["request"], "ua": columns["ua"],
                             "auc": columns["pop_phi_matched_auc"],
                             "recognised": columns["pop_phi_matched_auc"] > protocol_bound})  # fmt: skip
        reasons = [reason for reason, over in (
            (f"{images} images forgotten approximately (bound {bounds.images})", images > bounds.images),
            (f"test accuracy {drift:.2f} points below the last exact model (bound {bounds.drift})",
             drift > bounds.drift),
            ("an earlier request's images are recognisable again", any(r["recognised"] for r in reversal)),
        ) if over]  # fmt: skip
        return {"images": images, "drift": drift, "reversal": reversal, "exceeded": bool(reasons),
                "reasons": reasons}  # fmt: skip

    def purges(self, output: str | None, exact: bool) -> tuple[list[dict], list[dict]]:
        """What learned from the forgotten images and goes: the cache's artefacts, and the
        deployment's earlier checkpoints (kept: the new model, and the last exact model, the
        gate's reference, until the next exact one)."""
        deployment = self.deployment
        session = deployment.session
        artefacts = session.store.influenced_by(self.new, session.dataset.fingerprint)
        purged = [
            {"what": "cache", "path": str(path.relative_to(session.store.root))}
            for path in artefacts
        ]
        keep = {output}
        kept = []
        if not exact:
            reference = deployment.exact_record()["output"]
            keep.add(reference)
            kept.append({"checkpoint": reference, "reason": "the clinical gate's reference (the "
                         "last exactly retrained model), purged at the next exact retrain"})  # fmt: skip
        for path in sorted((deployment.folder / CHECKPOINTS).glob("*.safetensors")):
            sha = path.stem
            if sha not in keep and not sha.startswith("."):
                purged.append({"what": "checkpoint", "sha256": sha})
        # a sharded model's slice checkpoints that no kept model restarts from (the stages a
        # deletion retrained, which held the forgotten images)
        used = {c.path.name for sha in keep for c in slice_checkpoints(deployment.checkpoint(sha))}
        purged += [{"what": "slice", "path": f"{SLICES}/{path.name}"}
                   for path in sorted((deployment.folder / SLICES).glob("*.safetensors"))
                   if path.name not in used]  # fmt: skip
        return purged, kept

    def commit(self, model, seconds, before, evidence, gate, criteria, decision, exact, attempt,
               debt, exact_reference, key) -> Outcome:  # fmt: skip
        """Publish the result, its ids and audit, then write the ledger record (the commit),
        then purge what the record says goes."""
        deployment = self.deployment
        head = deployment.model()
        # the method that produced the model: Retrain where the request fell back to it
        served = RETRAIN_METHOD if decision.startswith("retrained") else self.method
        output = None
        if decision != "held":
            output = publish_checkpoint(
                deployment.folder, model, {**head.meta, "unlearned": served.name}
            )
        forget_digest = publish_ids(deployment.folder, self.new)
        purged, kept = self.purges(output, exact) if output else ([], [])
        config = deployment.config
        entry = {
            "kind": "delete", "time": now(), "request": forget_digest[:16],
            "forget_digest": forget_digest, "n_images": int(self.new.size),
            "n_named": int(self.closure.named.size), "n_patients": self.n_patients,
            "n_duplicates": int(self.closure.duplicates.size),
            "n_neighbours": int(self.closure.neighbours.size),
            "neighbours_forgotten": self.closure.forget_neighbours,
            "test_duplicates": int(self.closure.test_duplicates.size),
            "input": deployment.head_sha, **({"output": output} if output else {}),
            "method": served.name, "params": served.params,
            "config": cache_key("config", config.data, config.model, config.train, config.deletion),
            "seed": self.seed, "seconds": seconds, "decision": decision, "exact": exact,
            "ta": evidence.get("ta"), "evidence": {"before": before, "after": evidence,
                                                   "criteria": criteria},
            "gate": gate.to_dict(), "attempt": attempt, "debt": debt, "reference": exact_reference,
            "protocol": (deployment.ledger_protocol_sha(self.method.name)
                         if self.protocol else None),
            "purged": purged, "kept": kept, "versions": versions(),
            **({"sharding": columns} if (columns := _sharding_columns(model, self.new)) else {}),
        }  # fmt: skip
        record = deployment.ledger.prepared(entry)
        folder = deployment.folder / AUDITS / record["request"]
        audit_module.write(folder, audit_module.document(deployment, record, self.closure))
        deployment.ledger = deployment.ledger.appended(entry, key)
        refresh_current(deployment.folder, deployment.head_sha)
        finish_purges(deployment)
        return Outcome(deployment.ledger.head, folder)


def _sharding_columns(model: torch.nn.Module, ids: np.ndarray) -> dict:
    """What a SISA deletion retrained (shards, slices, share of the training's work) and what a
    random request of its size is expected to; empty for any other model."""
    return deletion_columns(model, ids) if isinstance(model, ShardedModel) else {}


def finish_purges(deployment: Deployment) -> None:
    """Carry out the purges the ledger records (idempotent: a stop right after a commit is
    finished at the next request), then drop the pending results."""
    store = deployment.session.store
    for record in deployment.ledger.of_kind("delete"):
        for item in record.get("purged", []):
            if item["what"] == "checkpoint":
                deployment.checkpoint(item["sha256"]).unlink(missing_ok=True)
            elif item["what"] == "slice":
                (deployment.folder / item["path"]).unlink(missing_ok=True)
            else:
                path = store.root / item["path"]
                if path.exists():
                    store.purge(path)
    for stale in (deployment.folder / PENDING).glob("*.json"):
        stale.unlink()

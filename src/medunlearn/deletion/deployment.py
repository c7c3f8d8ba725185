"""A deployed model's state, a folder whose ledger is the truth: every checkpoint the deployment
served (named by its SHA-256), the ids each request forgot (kept apart from the ledger, which
can then be shown without patient ids), the protocols it validated, the audits. The current
checkpoint is the one the ledger's last record names; the forgotten ids are those its served
requests name. A request becomes part of the state when, and only when, its ledger record is
written (one atomic replace of the ledger file): a request stopped before that leaves the
deployment as it was."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import nn

from medunlearn.checkpoints import TrainedModel, load_model, save_model
from medunlearn.config import ExperimentConfig, RuntimeConfig, UserError, dump_config, load_config
from medunlearn.deletion.ledger import Ledger
from medunlearn.deletion.requests import digest
from medunlearn.progress import Progress
from medunlearn.sharding import ShardedModel, Sharding, SliceCheckpoint, bundle
from medunlearn.store import (
    atomic_write,
    atomic_write_json,
    atomic_write_text,
    file_sha256,
    load_checkpoint,
)
from medunlearn.study.setup import Session, open_session

CONFIG, LEDGER = "config.yaml", "ledger.jsonl"
CHECKPOINTS, FORGOTTEN, PROTOCOLS, AUDITS = "checkpoints", "forgotten", "protocols", "audits"
# a sharded model's slice checkpoints (SISA restarts from them), shared by its checkpoints
SLICES = "slices"
# the checkpoint a user reads: a copy of the ledger's head, refreshed whenever it is opened
CURRENT = "current.safetensors"


class DeploymentError(UserError):
    """A deployment folder that cannot be served as it is."""


def publish_checkpoint(folder: Path, model: nn.Module, meta: dict) -> str:
    """Save a model into the deployment's checkpoints, named by its SHA-256 (a sharded model's
    slice checkpoints copied into `slices/`, where its metadata names them); the SHA-256."""
    if isinstance(model, ShardedModel):
        model = bundle(model, folder / SLICES)
    staging = folder / CHECKPOINTS / ".staging.safetensors"
    save_model(staging, model, meta)
    sha = file_sha256(staging)
    staging.replace(folder / CHECKPOINTS / f"{sha}.safetensors")
    return sha


def checkpoint_sharding(checkpoint: Path) -> Sharding | None:
    """The sharding a deployment checkpoint's metadata records (its slice checkpoints, each
    with its SHA-256); None for a model trained whole."""
    meta = load_checkpoint(checkpoint)[1]
    return Sharding.from_meta(meta["sharding"], checkpoint.parent) if "sharding" in meta else None


def slice_checkpoints(checkpoint: Path) -> list[SliceCheckpoint]:
    """The slice checkpoints a deployment checkpoint names (none for a model trained whole)."""
    sharding = checkpoint_sharding(checkpoint)
    return [] if sharding is None else [c for shard in sharding.checkpoints for c in shard]


def refresh_current(folder: Path, sha: str) -> None:
    """Make `current.safetensors` a copy of the checkpoint of `sha`, the ledger's head (it must
    never stay a copy of a model that a later request purged)."""
    current, head = folder / CURRENT, folder / CHECKPOINTS / f"{sha}.safetensors"
    if not current.is_file() or file_sha256(current) != sha:
        atomic_write(current, lambda tmp: shutil.copyfile(head, tmp))


def publish_ids(folder: Path, ids: np.ndarray) -> str:
    """Save a request's ids (patient data, never in the ledger) under their digest."""
    key = digest(ids)
    atomic_write_json(folder / FORGOTTEN / f"{key}.json", {"ids": sorted(map(int, ids))})
    return key


@dataclass
class Deployment:
    """An open deployment: its folder, config, ledger and the session its work runs in."""

    folder: Path
    config: ExperimentConfig
    ledger: Ledger
    session: Session

    @classmethod
    def open(
        cls,
        folder: str | Path,
        data_root: str | None = None,
        runtime: RuntimeConfig | None = None,
        progress: Progress | None = None,
    ) -> Deployment:
        """Open a deployment, refusing one whose ledger does not chain, whose data is not the
        data it was deployed on, or whose current checkpoint is not the one its ledger names."""
        folder = Path(folder)
        ledger = Ledger.read(folder / LEDGER)
        if not (folder / CONFIG).is_file() or not ledger.records:
            raise DeploymentError(
                f"{folder} is not a deployment: start one with `medunlearn deploy CHECKPOINT "
                f"--out {folder}`"
            )
        if problems := ledger.verify():
            raise DeploymentError(
                f"{folder / LEDGER} does not chain: {problems[0]}; restore the ledger from a "
                "backup (`medunlearn ledger verify` lists every problem)"
            )
        config = load_config(folder / CONFIG, [f"data.root={data_root}"] if data_root else [])
        if runtime is not None:
            config.runtime = runtime
        session = open_session(config, progress)
        deployment = cls(folder, config, ledger, session)
        deployment._check_data()
        deployment._check_head()
        return deployment

    def _check_data(self) -> None:
        """The data is the data the deployment was deployed on (by content)."""
        deployed = next(self.ledger.of_kind("deploy"))
        dataset = self.session.dataset
        if deployed["data_fingerprint"] != dataset.fingerprint:
            raise DeploymentError(
                f"the data loaded ({dataset.name}, fingerprint {dataset.fingerprint}) is not the "
                f"data this deployment serves ({deployed['dataset']}, fingerprint "
                f"{deployed['data_fingerprint']}): point --data-root at the folder of that file"
            )

    def _check_head(self) -> None:
        """The current checkpoint is the ledger's head, byte for byte; `current.safetensors`
        is refreshed from it."""
        path = self.checkpoint(self.head_sha)
        if not path.is_file() or file_sha256(path) != self.head_sha:
            raise DeploymentError(
                f"the current checkpoint {path.name} is missing or is not the ledger's head "
                f"(sha256 {self.head_sha[:16]}...): restore it from a backup"
            )
        refresh_current(self.folder, self.head_sha)

    @property
    def head_sha(self) -> str:
        """The SHA-256 of the current checkpoint: the output of the last record that has one (a
        held request, or a protocol, changes nothing)."""
        return [r for r in self.ledger.records if "output" in r][-1]["output"]

    def checkpoint(self, sha: str) -> Path:
        """Where the checkpoint of a SHA-256 is kept."""
        return self.folder / CHECKPOINTS / f"{sha}.safetensors"

    def model(self, sha: str | None = None) -> TrainedModel:
        """A checkpoint of the deployment (the current one by default) as a model."""
        path = self.checkpoint(sha or self.head_sha)
        if not path.is_file():
            raise DeploymentError(f"checkpoint {path.name} is not kept: it was purged")
        trained = load_model(path, self.config.model, self.session.dataset)
        trained.meta["origin"] = sha or self.head_sha
        return trained

    def request_ids(self, key: str) -> np.ndarray:
        """The ids a served request forgot, checked against the digest the ledger records."""
        path = self.folder / FORGOTTEN / f"{key}.json"
        if not path.is_file():
            raise DeploymentError(f"the ids of request {key[:16]} are missing from {path.parent}")
        ids = np.array(json.loads(path.read_text())["ids"], dtype=np.int64)
        if digest(ids) != key:
            raise DeploymentError(f"{path} does not hold the ids its ledger record names")
        return ids

    def served(self) -> list[dict]:
        """The records of the requests served (released or retrained), in order."""
        return [r for r in self.ledger.of_kind("delete") if r.get("decision") != "held"]

    def forgotten(self) -> np.ndarray:
        """Every training id forgotten so far."""
        parts = [self.request_ids(r["forget_digest"]) for r in self.served()]
        return np.unique(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)

    def exact_record(self) -> dict:
        """The last record whose output was trained exactly (the deployment, an exact retrain
        or a fallback): the reference of the clinical gate."""
        return [r for r in self.ledger.records if r.get("exact") and "output" in r][-1]

    def since_exact(self) -> list[dict]:
        """The requests served approximately since the last exact model."""
        exact = self.exact_record()["index"]
        return [r for r in self.served() if r["index"] > exact and not r.get("exact")]

    def ledger_protocol_sha(self, method: str) -> str | None:
        """The file hash of the last protocol validated for a method, as the ledger names it."""
        found = [r for r in self.ledger.of_kind("protocol") if r["method"] == method]
        return found[-1]["protocol"] if found else None

    def protocol(self, method: str | None = None) -> dict | None:
        """The last protocol validated on this deployment (for `method`, where named)."""
        found = [r for r in self.ledger.of_kind("protocol")
                 if method is None or r["method"] == method]  # fmt: skip
        if not found:
            return None
        path = self.folder / PROTOCOLS / f"{found[-1]['protocol']}.json"
        if not path.is_file() or file_sha256(path) != found[-1]["protocol"]:
            raise DeploymentError(f"protocol file {path.name} is missing or altered")
        return json.loads(path.read_text())


def create(
    folder: Path,
    config: ExperimentConfig,
    trained: TrainedModel,
    record: dict,
    key: Path | None = None,
) -> None:
    """Write a new deployment: its config, its first checkpoint and the ledger's first record
    (signed with the key at `key` where given, as every later record can be)."""
    (folder / CHECKPOINTS).mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / CONFIG, dump_config(config))
    sha = publish_checkpoint(folder, trained.model, trained.meta)
    refresh_current(folder, sha)
    Ledger.read(folder / LEDGER).appended({**record, "output": sha, "exact": True}, key)

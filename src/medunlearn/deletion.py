"""A real deletion request: checkpoint + ids to forget -> unlearned checkpoint + audit report."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from medunlearn.checkpoints import TrainedModel, load_model, save_model
from medunlearn.config import (
    ConfigError,
    DataConfig,
    ExperimentConfig,
    MethodConfig,
    ModelConfig,
    RuntimeConfig,
    TrainConfig,
    from_dict,
)
from medunlearn.forget import ForgetSet, load_forget_set
from medunlearn.methods import Context, UnlearnData, unlearn
from medunlearn.metrics.evaluate import Request, evaluate
from medunlearn.progress import Progress
from medunlearn.store import (
    atomic_write_json,
    atomic_write_text,
    file_sha256,
    load_checkpoint,
)
from medunlearn.study.setup import Session, open_session


@dataclass
class DeletionResult:
    """What a deletion produced: the files written and the before / after metrics."""

    checkpoint: Path
    report: Path
    before: dict
    after: dict
    seconds: float


def config_from_checkpoint(
    path: Path, data_root: str | None, runtime: RuntimeConfig | None = None
) -> ExperimentConfig:
    """The data, model and recipe a checkpoint was trained with (data folder overridable), and
    the runtime to serve it with."""
    _, meta = load_checkpoint(path)
    try:
        data = from_dict(DataConfig, {**meta["data"], "root": data_root or meta["data"]["root"]})
        model = ModelConfig(arch=meta["model"]["arch"], width=meta["model"]["width"])
        train = from_dict(TrainConfig, meta["train"])
    except (KeyError, TypeError, ConfigError) as error:
        raise ConfigError(
            f"{path}: the checkpoint lacks its training metadata ({error})"
        ) from error
    return ExperimentConfig(data=data, model=model, train=train, runtime=runtime or RuntimeConfig())


def open_checkpoint(
    checkpoint: Path,
    forget_ids: Path,
    data_root: str | None,
    runtime: RuntimeConfig | None,
    progress: Progress | None = None,
) -> tuple[Session, TrainedModel, ForgetSet]:
    """The set-up of a one-off request (`unlearn`, `evaluate`): the checkpoint's config, its
    session (the same set-up as `run`, cache folder included), its model and the forget set."""
    config = config_from_checkpoint(checkpoint, data_root, runtime)
    session = open_session(config, progress)
    original = load_model(checkpoint, config.model, session.dataset)
    return session, original, load_forget_set(forget_ids, session.dataset)


def evaluate_checkpoint(model, session: Session, forget_set: ForgetSet, seed: int) -> dict:
    """Every metric of a model on the forget set, its attacks computed at once."""
    result = evaluate(model, session.dataset, forget_set, session.engine, Request(seed))
    return result.columns


def _package_version() -> str:
    """The installed medunlearn version, for the audit trail."""
    try:
        return version("medunlearn")
    except PackageNotFoundError:
        return "unknown"


def _change(label: str, before: float | None, after: float | None, unit: str = "%") -> str:
    """One Markdown table row: a metric before and after, and the difference."""
    if before is None or after is None:
        return f"| {label} | n/a | n/a | n/a |"
    return f"| {label} | {before:.2f}{unit} | {after:.2f}{unit} | {after - before:+.2f} |"


def audit_markdown(request: dict, before: dict, after: dict) -> str:
    """The audit report in plain language, for a clinician and a data-protection officer."""
    rows = [
        _change("Accuracy on the forgotten images", 100 - before["ua"], 100 - after["ua"]),
        _change("Accuracy on the kept training images", before["ra"], after["ra"]),
        _change("Accuracy on unseen test images", before["ta"], after["ta"]),
        _change("Forgotten images an attacker calls 'never seen' (MIA)", before["mia"],
                after["mia"]),
    ]  # fmt: skip
    if "fnr" in after:
        rows += [
            _change("Missed positive cases on test (FNR)", before.get("fnr"), after.get("fnr")),
            _change("Sensitivity on test", before.get("sensitivity"), after.get("sensitivity")),
            _change("Global risk, missed case costs 20x (scenario II)", before.get("risk_2"),
                    after.get("risk_2"), unit=""),
        ]  # fmt: skip
    drop = before["ta"] - after["ta"]
    verdict = (
        "The model's accuracy on unseen patients changed by "
        f"{-drop:+.2f} points; "
        + ("review before deployment: the drop exceeds 2 points." if drop > 2 else
           "this is within 2 points of the model before deletion.")
    )  # fmt: skip
    lines = [
        "# Deletion audit report",
        "",
        f"- Request: forget {request['n_forget']} training image(s) of {request['dataset']} "
        f"(ids in `{request['forget_ids_file']}`)",
        f"- Method: {request['method']} with {request['params'] or 'default settings'}",
        f"- Run time: {request['seconds'] / 60:.2f} min on {request['device']}",
        f"- Input checkpoint: `{request['input']}` (sha256 {request['input_sha256'][:16]}…)",
        f"- Output checkpoint: `{request['output']}` (sha256 {request['output_sha256'][:16]}…)",
        f"- Date: {request['date']}; medunlearn {request['version']}",
        "",
        "| measure | before | after | change |",
        "|---|---|---|---|",
        *rows,
        "",
        "How to read it: after a good deletion, accuracy on the forgotten images falls towards the "
        "accuracy on unseen test images (the model treats them as never seen), while accuracy on "
        "test images stays close to before. " + verdict,
        "",
        "This is an approximate unlearning method: the reference for exact removal is retraining "
        "from scratch without these images (`medunlearn unlearn --method retrain`).",
    ]
    return "\n".join(lines) + "\n"


def serve_deletion(
    checkpoint: Path,
    forget_ids: Path,
    method: MethodConfig,
    out: Path,
    data_root: str | None = None,
    runtime: RuntimeConfig | None = None,
    progress: Progress | None = None,
) -> DeletionResult:
    """Unlearn the ids from a trained checkpoint; write unlearned.safetensors, audit.md and
    audit.json."""
    checkpoint, forget_ids, out = Path(checkpoint), Path(forget_ids), Path(out)
    session, original, forget_set = open_checkpoint(
        checkpoint, forget_ids, data_root, runtime, progress
    )
    engine, dataset, config = session.engine, session.dataset, session.config
    seed = int(original.meta.get("seed", 0))
    before = evaluate_checkpoint(original.model, session, forget_set, seed)
    context = Context(engine, seed, config.train, config.model, session.store)
    result = unlearn(original.model, UnlearnData(dataset, forget_set), method, context)
    after = evaluate_checkpoint(result.model, session, forget_set, seed)
    out.mkdir(parents=True, exist_ok=True)
    output = out / "unlearned.safetensors"
    save_model(output, result.model, {**original.meta, "unlearned": method.name}, beside=True)
    forget_set.save(out / "forget_set.json")
    request = {
        "dataset": dataset.name, "n_forget": len(forget_set.forget_ids),
        "forget_ids_file": str(forget_ids), "method": method.name, "params": method.params,
        "seconds": result.seconds, "device": str(engine.device), "input": str(checkpoint),
        "input_sha256": file_sha256(checkpoint), "output": str(output),
        "output_sha256": file_sha256(output), "version": _package_version(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }  # fmt: skip
    atomic_write_json(out / "audit.json", {"request": request, "before": before, "after": after})
    report = out / "audit.md"
    atomic_write_text(report, audit_markdown(request, before, after))
    return DeletionResult(output, report, before, after, result.seconds)

"""A one-off deletion request: checkpoint + ids to forget -> unlearned checkpoint + audit report
(no deployment, no ledger: see `service` for requests served one after another)."""

from __future__ import annotations

import dataclasses
import datetime
from dataclasses import dataclass
from pathlib import Path

import torch

from medunlearn.analyses.tables import fmt
from medunlearn.checkpoints import TrainedModel, load_model, save_model
from medunlearn.config import (
    ConfigError,
    DataConfig,
    EvaluationConfig,
    ExperimentConfig,
    MethodConfig,
    ModelConfig,
    RuntimeConfig,
    TrainConfig,
    UserError,
    from_dict,
)
from medunlearn.deletion.audit import verdict
from medunlearn.deletion.gate import GateResult, judge
from medunlearn.deletion.ledger import versions
from medunlearn.forget import ForgetSet, load_forget_set
from medunlearn.methods import Context, UnlearnData, unlearn
from medunlearn.metrics.evaluate import Request, evaluate, is_binary
from medunlearn.metrics.evidence import Reference
from medunlearn.progress import Progress
from medunlearn.seeds import Seeds
from medunlearn.store import (
    atomic_write_json,
    atomic_write_text,
    file_sha256,
    load_checkpoint,
)
from medunlearn.study.rows import ForgetRun
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
    check_fingerprint(original, session.dataset.fingerprint, checkpoint)
    return session, original, load_forget_set(forget_ids, session.dataset)


def check_fingerprint(trained: TrainedModel, fingerprint: str, path: Path) -> None:
    """Refuse a checkpoint trained on other data than the data loaded: its ids would name
    other images."""
    recorded = trained.meta.get("data_fingerprint")
    if recorded is not None and recorded != fingerprint:
        raise UserError(
            f"{path} was trained on data of fingerprint {recorded}, but the data loaded has "
            f"fingerprint {fingerprint}: its ids would name other images; point --data-root at "
            "the folder of the file it was trained on"
        )


def bank_of(
    config: ExperimentConfig, data: UnlearnData, original: TrainedModel, context: Context, bank: int
) -> tuple[Reference | None, float | None]:
    """`bank` reference Retrains of the forget set (none for 0) and RMIA's a tuned on the
    original against them, through the study's cached bank."""
    if not bank:
        return None, None
    if bank < 2:
        raise ConfigError("a bank needs at least 2 reference Retrains; got 1")
    study = dataclasses.replace(config, evaluation=EvaluationConfig(bank=bank))
    seed = int(original.meta.get("seed", 0))
    run = ForgetRun(study, data, original, context, Seeds(seed), Path())
    return run.reference(), run.rmia_a()


def evaluate_checkpoint(
    model,
    session: Session,
    forget_set: ForgetSet,
    seed: int,
    reference: Reference | None = None,
    rmia_a: float | None = None,
) -> tuple[dict, torch.Tensor]:
    """Every metric of a model on the forget set, its attacks computed at once (the class-
    matched phi attack and the calibration error too; LiRA and RMIA against a bank where one
    is given), the checked attacks with their intervals; and its test logits."""
    evaluation = EvaluationConfig(matched=True, calibration=True)
    request = Request(seed, evaluation=evaluation, reference=reference, rmia_a=rmia_a,
                      intervals=True)  # fmt: skip
    result = evaluate(model, session.dataset, forget_set, session.engine, request)
    return result.columns, result.evidence.logits["test"]


ATTACKS = (
    ("mia", "Forgotten images the SVC attack calls 'never seen' (SalUn's MIA)", 2),
    ("pop_phi_auc", "Attack score, forgotten vs unseen test images (0.5: cannot tell)", 3),
    ("pop_phi_matched_auc", "Attack score, vs unseen images of the same classes", 3),
    ("lira_auc", "Attack score of LiRA against reference Retrains", 3),
    ("rmia_auc", "Attack score of RMIA against reference Retrains", 3),
)


def _change(label: str, before: float | None, after: float | None, digits: int = 2) -> str:
    """One Markdown table row: a measure before and after, and the difference."""
    if before is None or after is None:
        return f"| {label} | {fmt(before, digits)} | {fmt(after, digits)} | n/a |"
    return f"| {label} | {fmt(before, digits)} | {fmt(after, digits)} | {fmt(after - before, digits, True)} |"


def _interval(columns: dict, key: str) -> str:
    """' [low, high]' of a checked attack's AUC, where the evaluation gave it."""
    low, high = columns.get(f"{key}_low"), columns.get(f"{key}_high")
    return "" if low is None else f" [{low:.3f}, {high:.3f}]"


def audit_markdown(request: dict, before: dict, after: dict, gate: GateResult) -> str:
    """The one-off audit in plain language: the measures before and after, every attack the
    evaluation ran (the bank's too, where a bank was trained), and the clinical verdict of each
    gate measure against the model before the deletion, with its interval and margin."""
    rows = [
        _change("Accuracy on the forgotten images", 100 - before["ua"], 100 - after["ua"]),
        _change("Accuracy on the kept training images", before["ra"], after["ra"]),
        _change("Accuracy on unseen test images", before["ta"], after["ta"]),
        _change("Missed positive cases on test (false-negative rate)", before.get("fnr"), after.get("fnr")),
        _change("Clinical risk when a missed case costs 20 false alarms", before.get("risk_2"), after.get("risk_2")),
    ]  # fmt: skip
    attacks = [f"| {label} | {fmt(before.get(k), digits)}{_interval(before, k)} | "
               f"{fmt(after.get(k), digits)}{_interval(after, k)} |"
               for k, label, digits in ATTACKS if after.get(k) is not None]  # fmt: skip
    lines = [
        "# Deletion audit report (one-off request)",
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
        *[row for row in rows if "| n/a | n/a |" not in row],
        "",
        "Membership attacks: can an attacker tell the forgotten images from images the model never "
        "saw? An attack score (AUC) of 0.5 is a coin toss; 95% intervals in brackets.",
        "",
        "| attack | before | after |",
        "|---|---|---|",
        *attacks,
        "",
        "Against the model before the deletion, on the same resampled test images:",
        "",
        *[f"- {'Passed' if c.passed else '**Review before deployment**'}: "
          f"{verdict(dataclasses.asdict(c))}" for c in gate.checks],
        "",
        "This is a one-off request: it knows nothing of earlier requests (a second one would "
        "train again on the first one's images), keeps no ledger and no validated protocol. A "
        "deployed model serving requests one after another uses `medunlearn deploy`, `protocol` "
        "and `delete`.",
    ]  # fmt: skip
    return "\n".join(lines) + "\n"


def serve_deletion(
    checkpoint: Path,
    forget_ids: Path,
    method: MethodConfig,
    out: Path,
    data_root: str | None = None,
    runtime: RuntimeConfig | None = None,
    progress: Progress | None = None,
    bank: int = 0,
) -> DeletionResult:
    """Unlearn the ids from a trained checkpoint; write unlearned.safetensors, audit.md and
    audit.json (with `bank` >= 2 reference Retrains of the forget set, LiRA and RMIA too)."""
    checkpoint, forget_ids, out = Path(checkpoint), Path(forget_ids), Path(out)
    session, original, forget_set = open_checkpoint(
        checkpoint, forget_ids, data_root, runtime, progress
    )
    engine, dataset, config = session.engine, session.dataset, session.config
    seed = int(original.meta.get("seed", 0))
    data = UnlearnData(dataset, forget_set)
    context = Context(engine, seed, config.train, config.model, session.store)
    reference, rmia_a = bank_of(config, data, original, context, bank)
    before, before_logits = evaluate_checkpoint(original.model, session, forget_set, seed,
                                                reference, rmia_a)  # fmt: skip
    result = unlearn(original.model, data, method, context)
    after, after_logits = evaluate_checkpoint(result.model, session, forget_set, seed, reference,
                                              rmia_a)  # fmt: skip
    gate = judge(*(torch.softmax(x.double(), 1).numpy() for x in (after_logits, before_logits)),
                 dataset.test.labels.numpy(), config.deletion.gate, is_binary(dataset), seed)  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    output = out / "unlearned.safetensors"
    save_model(output, result.model, {**original.meta, "unlearned": method.name}, beside=True)
    forget_set.save(out / "forget_set.json")
    request = {
        "dataset": dataset.name, "n_forget": len(forget_set.forget_ids),
        "forget_ids_file": str(forget_ids), "method": method.name, "params": method.params,
        "seconds": result.seconds, "device": str(engine.device), "input": str(checkpoint),
        "input_sha256": file_sha256(checkpoint), "output": str(output),
        "output_sha256": file_sha256(output), "version": versions()["medunlearn"],
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }  # fmt: skip
    atomic_write_json(out / "audit.json", {"request": request, "before": before, "after": after,
                                           "gate": gate.to_dict()})  # fmt: skip
    report = out / "audit.md"
    atomic_write_text(report, audit_markdown(request, before, after, gate))
    return DeletionResult(output, report, before, after, result.seconds)

"""Wall time of a whole experiment split into its phases, the share of evaluation, peak memory.

Runs `medunlearn.experiment.run` on the default experiment (or `--config FILE`), with fresh
temporary cache and output folders so nothing is reused, and times its phases by wrapping the
library's functions from here (the library times nothing but run times):

- data: loading the dataset;
- original: training the original model (its per-epoch validation inference included, and
  shown on its own line);
- one line per method (Retrain first): unlearning only;
- evaluation + metrics: the per-row evaluation (one inference pass per split read, then every
  registered metric: UA / RA / TA and, on binary tasks, clinical metrics; the attacks on
  per-sample scores, the forgetting score and U-LiRA among them) and the deferred SVC attacks,
  fitted in parallel once a forget set's methods have trained; split into inference, metrics,
  attacks, the forgetting score and the SVC; its share of the total is the figure to watch;
- bank, RMIA's a, repeats (with `--set evaluation.bank=K --set evaluation.repeats=N`): the
  reference Retrains, RMIA's a tuned on the original, and the repeated unlearning runs, each
  trained and scored (each a job of the study);
- other: what is left (forget-set selection, checkpoints, result files and report).

Peak memory: the process's peak RSS (`resource.getrusage`) and, on CUDA,
`torch.cuda.max_memory_allocated`.

    python benchmarks/experiment.py --quick                  # every epoch count set to 1
    python benchmarks/experiment.py --set train.epochs=2 --set methods.ft.params.epochs=1
    python benchmarks/experiment.py --data-root ../shared/data --device cpu --json experiment.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch

import medunlearn.experiment as experiment
import medunlearn.metrics.evaluate as evaluate
import medunlearn.study.bank as bank
import medunlearn.study.plan as plan
import medunlearn.study.rows as rows_module
import medunlearn.study.setup as setup
from medunlearn.config import ExperimentConfig, load_config
from medunlearn.engine import Engine
from medunlearn.metrics import registry
from timing import PhaseTimer, sync


def quick(config: ExperimentConfig) -> list[str]:
    """Overrides setting every epoch count (training, Retrain, each method) to 1."""
    overrides = ["train.epochs=1"]
    for i, method in enumerate(config.methods):
        if method.name != "retrain" or "epochs" in method.params:
            overrides.append(f"methods.{i}.params.epochs=1")
    return overrides


def build_config(args: argparse.Namespace, cache: Path) -> ExperimentConfig:
    """The config: default or from a file, --quick, --set and --data-root, with a fresh cache."""
    config = load_config(args.config, args.set)
    if args.quick:
        config = load_config(args.config, [*quick(config), *args.set])
    if args.data_root:
        config.data.root = str(args.data_root)
    if args.device:
        config.runtime.device = args.device
    config.runtime.cache_dir = str(cache)
    return config


# the phases of the stronger evaluation: its attacks (part of each row) and the models it trains
ATTACKS = "  attacks (thresholds, AUC intervals, LiRA, RMIA, U-LiRA)"
FORGETTING = "  forgetting score (F)"
INFERENCE = "  inference, every model (rows, bank, RMIA's a)"
SVC = "  MIA (SVC, attacks in parallel)"
BANK = "bank (reference Retrains, scored)"
RMIA_A = "RMIA's a (tuned on the original)"
REPEATS = "repeats (unlearning runs, scored)"


def run_timed(config: ExperimentConfig, out: Path) -> tuple[dict, list[dict], float]:
    """Run the experiment with every phase wrapped; the phase seconds, rows and total seconds."""
    timer = PhaseTimer()
    timer.wrap(setup, "load_dataset", "data")
    timer.wrap(plan, "train_original", "original")
    timer.wrap(rows_module, "run_method", lambda method, *a, **k: f"method {method.display_name}")
    timer.wrap(rows_module, "evaluate", lambda *a, **k: "evaluation rows" if a[4].defer else RMIA_A)
    timer.wrap(evaluate, "predict", INFERENCE)
    for name, metric in registry.registered().items():
        attack = metric.attack and metric.deferred is None
        phase = FORGETTING if name == "forget_quality" else ATTACKS if attack else "  metrics"
        timer.wrap_metric(name, SVC if metric.deferred is not None else phase)
    timer.wrap(plan, "reference_model", BANK)
    timer.wrap(plan, "repeated_run", REPEATS)
    timer.wrap(bank, "shadow_original", REPEATS)

    def logits_phase(engine, model, images, description=""):
        if description == "validation":
            return "  of which validation inference"
        return f"logits {description}"

    timer.wrap(Engine, "logits", logits_phase)
    with timer.active():
        sync()
        began = time.perf_counter()
        rows = experiment.run(config, out)
        sync()
        total = time.perf_counter() - began
    return dict(timer.seconds), rows, total


def evaluation_seconds(seconds: dict) -> float:
    """Evaluation and metrics: the rows' passes and metrics, and the deferred SVC attacks (the
    SVC's part inside the rows' evaluation is only its inputs: the phase is the fits)."""
    return seconds.get("evaluation rows", 0.0) + seconds.get(SVC, 0.0)


def phase_lines(seconds: dict, rows: list[dict], total: float) -> list[tuple[str, float]]:
    """(label, seconds) in report order; indented labels are parts of the line above."""
    lines = [
        ("data", seconds.get("data", 0.0)),
        ("original (train + val)", seconds.get("original", 0.0)),
    ]
    in_training = seconds.get("  of which validation inference", 0.0)
    lines.append(("  of which validation inference", in_training))
    methods = [k for k in seconds if k.startswith("method ")]
    methods.sort(key=lambda k: (k != "method retrain", k))
    lines += [(k.removeprefix("method "), seconds[k]) for k in methods]
    evaluation = evaluation_seconds(seconds)
    lines.append((f"evaluation + metrics ({len(rows)} rows)", evaluation))
    for key in (INFERENCE, "  metrics", ATTACKS, FORGETTING, SVC):
        lines.append((key, seconds.get(key, 0.0)))
    lines += [(key, seconds[key]) for key in (BANK, RMIA_A, REPEATS) if key in seconds]
    accounted = seconds.get("data", 0.0) + seconds.get("original", 0.0) + evaluation
    accounted += sum(seconds[k] for k in methods)
    accounted += sum(seconds.get(key, 0.0) for key in (BANK, RMIA_A, REPEATS))
    lines.append(("other (forget sets, files, report)", total - accounted))
    lines.append(("total", total))
    return lines


def table(lines: list[tuple[str, float]], total: float) -> str:
    """An aligned text table: phase, seconds, share of the total."""
    width = max(len(label) for label, _ in lines)
    out = [
        f"{'phase'.ljust(width)}  {'seconds':>8}  {'share':>6}",
        f"{'-' * width}  {'-' * 8}  {'-' * 6}",
    ]
    for label, seconds in lines:
        out.append(f"{label.ljust(width)}  {seconds:8.1f}  {100 * seconds / total:5.1f}%")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=None, help="experiment YAML (default experiment)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, as the CLI's --set")  # fmt: skip
    parser.add_argument("--data-root", default=None, help="folder of the MedMNIST npz files")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (runtime.device)")
    parser.add_argument("--quick", action="store_true", help="every epoch count set to 1")
    parser.add_argument("--out", default=None, help="keep the results here (default: temporary)")
    parser.add_argument("--json", default=None, help="write the phases to this JSON file")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="medunlearn-bench-") as tmp:
        config = build_config(args, Path(tmp) / "cache")
        out = Path(args.out) if args.out else Path(tmp) / "out"
        load = os.getloadavg()
        seconds, rows, total = run_timed(config, out)
        after = os.getloadavg()
    lines = phase_lines(seconds, rows, total)
    evaluation = evaluation_seconds(seconds)
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    peak_cuda = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_initialized() else None
    overrides = " ".join(f"--set {s}" for s in args.set)
    print(
        f"experiment {config.name}: {config.data.dataset} {config.data.size}px, "
        f"{config.model.arch} w{config.model.width}, train {config.train.epochs} epochs, "
        f"{len(config.methods)} methods, device {config.runtime.device}, bf16 "
        f"{config.runtime.bf16}, channels_last {config.runtime.channels_last}"
        f"{' (--quick)' if args.quick else ''} {overrides}".rstrip()
    )
    print(table(lines, total))
    memory = f"peak RSS {peak_rss:.0f} MiB"
    if peak_cuda is not None:
        memory += f", peak CUDA allocated {peak_cuda:.0f} MiB"
    print(
        f"evaluation + metrics: {100 * evaluation / total:.1f}% of the total; {memory}; "
        f"load average {load[0]:.2f} before, {after[0]:.2f} after"
    )
    result = {
        "config": config.name,
        "quick": args.quick,
        "overrides": args.set,
        "total_s": total,
        "phases": dict(lines),
        "evaluation_share": evaluation / total,
        "peak_rss_mib": peak_rss,
        "peak_cuda_mib": peak_cuda,
        "load_before": load,
        "load_after": after,
        "rows": [
            {k: r.get(k) for k in ("method", "ua", "ra", "ta", "mia", "rte_min", "eval_s")}
            for r in rows
        ],
        "argv": sys.argv[1:] if argv is None else argv,
    }
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1, default=str))
    return result


if __name__ == "__main__":
    main()

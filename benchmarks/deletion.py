"""The deletion service's budgets: what a request adds to its method, and what a protocol costs.

Trains (or reuses, with `--cache`) the default experiment's BloodMNIST model, starts a
deployment, validates the method's protocol on it (`deletion.protocol`: M simulated requests,
each against a bank of K Retrains), then serves `--requests` requests of `--size` random
training images in turn, timing each request's phases by wrapping the library's functions from
here:

- method: the unlearning run itself (what an experiment reports as the method's run time);
- evidence + gate: inference-only evidence of the model before and after (phi attack with its
  bootstrap interval, accuracies) and the clinical gate's paired bootstrap on the test split;
- debt: the earlier requests' forgotten images re-checked with the new model (forgetting reversal);
- audit, ledger, publish, purges: the audit files, the ledger's record, the checkpoint and ids
  written, the cache purged;
- open: the deployment opened (data loaded, ledger chain and head checked).

Budgets (issue 22, 2 CPU cores): evidence, gate, debt, audit and ledger at most 15% of the
method's run time; the protocol for SalUn with M = 3, K = 4 at most 30 minutes.

    python benchmarks/deletion.py --data-root ../shared/data                # the budgets
    python benchmarks/deletion.py --data-root ../shared/data --quick        # a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import medunlearn.deletion.audit as audit
import medunlearn.deletion.service as service
from medunlearn.config import RuntimeConfig, dump_config, load_config
from medunlearn.deletion.ledger import Ledger
from medunlearn.deletion.protocol import validate_protocol
from medunlearn.experiment import export_original
from medunlearn.roles import RETRAIN
from medunlearn.store import atomic_write_text
from timing import PhaseTimer

EVIDENCE_PHASES = ("evidence + gate", "debt", "audit", "ledger", "publish", "purges")
EVIDENCE_TARGET = 0.15
PROTOCOL_TARGET_MIN = 30.0


def wrap_request(timer: PhaseTimer) -> None:
    """Time a request's phases (see the module docstring)."""
    timer.wrap(service.Deployment, "open", "open")
    timer.wrap(service.Request, "run", lambda self, method: f"method {method.name}")
    timer.wrap(service.Request, "judge", "evidence + gate")
    timer.wrap(service.Request, "debt", "debt")
    timer.wrap(audit, "document", "audit")
    timer.wrap(audit, "write", "audit")
    timer.wrap(Ledger, "appended", "ledger")
    timer.wrap(service, "publish_checkpoint", "publish")
    timer.wrap(service, "publish_ids", "publish")
    timer.wrap(service, "finish_purges", "purges")


def serve_timed(
    deployment: Path, ids: np.ndarray, method: str, folder: Path, runtime: RuntimeConfig
) -> dict:
    """Serve one request of `ids` with `method`, its phases timed; the phase seconds and record."""
    path = folder / f"request-{ids[0]}.txt"
    atomic_write_text(path, "\n".join(map(str, ids)) + "\n")
    timer = PhaseTimer()
    wrap_request(timer)
    with timer.active():
        began = time.perf_counter()
        outcome = service.delete(deployment, ids=path, method=method, runtime=runtime)
        total = time.perf_counter() - began
    return {"total": total, "phases": dict(timer.seconds), "record": outcome.record}


def request_lines(result: dict, method: str) -> tuple[list[tuple[str, float]], float, float]:
    """A request's (phase, seconds) lines, its method's seconds and its evidence seconds."""
    phases = result["phases"]
    run = sum(s for k, s in phases.items() if k.startswith("method "))
    evidence = sum(phases.get(k, 0.0) for k in EVIDENCE_PHASES)
    lines = [(k, s) for k, s in phases.items() if k.startswith("method ")]
    lines += [(k, phases.get(k, 0.0)) for k in (*EVIDENCE_PHASES, "open")]
    lines.append(("other", result["total"] - run - evidence - phases.get("open", 0.0)))
    lines.append(("total", result["total"]))
    return lines, run, evidence


def table(lines: list[tuple[str, float]], reference: float) -> str:
    """Phase, seconds and share of the method's run time."""
    width = max(len(label) for label, _ in lines)
    rows = [f"{'phase'.ljust(width)}  {'seconds':>8}  {'of method':>9}"]
    rows += [f"{k.ljust(width)}  {s:8.1f}  {100 * s / reference:8.1f}%" for k, s in lines]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", default=None, help="folder of the MedMNIST npz files")
    parser.add_argument("--method", default="salun", help="the method validated and served")
    parser.add_argument("--requests", type=int, default=2, help="requests served in turn")
    parser.add_argument("--size", type=int, default=20, help="images per request")
    parser.add_argument("--cache", default=None, help="model cache (default: a fresh one)")
    parser.add_argument("--quick", action="store_true",
                        help="1 training epoch, 1 simulated request with a bank of 3")  # fmt: skip
    parser.add_argument("--json", default=None, help="write the figures to this JSON file")
    parser.add_argument("--loose", action="store_true",
                        help="a protocol that always validates (M = 1, K = 3, no bound): times "
                             "the method's own requests where its real protocol fails")  # fmt: skip
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    args = parser.parse_args(argv)
    overrides = ["train.epochs=1", "deletion.protocol.requests=1",
                 "deletion.protocol.bank=3"] if args.quick else []  # fmt: skip
    if args.loose:
        overrides += ["deletion.protocol.requests=1", "deletion.protocol.bank=3",
                      "deletion.protocol.attack_gap=1", "deletion.protocol.ulira=1",
                      "deletion.protocol.ain=0"]  # fmt: skip
    if args.threads:
        overrides.append(f"runtime.threads={args.threads}")
    config = load_config(None, overrides)
    params = next(m.params for m in config.methods if m.name == args.method)
    if args.quick and "epochs" in params:
        params = {**params, "epochs": 1}
    if args.data_root:
        config.data.root = str(args.data_root)
    with tempfile.TemporaryDirectory(prefix="medunlearn-bench-") as tmp:
        config.runtime.cache_dir = args.cache or str(Path(tmp) / "cache")
        load = os.getloadavg()
        checkpoint, _ = export_original(config, Path(tmp) / "model")
        atomic_write_text(Path(tmp) / "deletion.yaml", dump_config(config))
        runtime = config.runtime  # the cache and threads, for every step of the service
        deployment = service.deploy(checkpoint, Path(tmp) / "deployment", Path(tmp) / "deletion.yaml",
                                    args.data_root, runtime)  # fmt: skip
        began = time.perf_counter()
        protocol = validate_protocol(deployment, args.method, params, data_root=args.data_root,
                                     runtime=runtime)  # fmt: skip
        protocol_s = time.perf_counter() - began
        served = args.method if protocol["validated"] else RETRAIN
        rng = np.random.default_rng(0)
        opened = service.Deployment.open(deployment, args.data_root, runtime)
        left = np.setdiff1d(np.arange(len(opened.session.dataset.train)), opened.forgotten())
        results = []
        for _ in range(args.requests):
            ids = np.sort(rng.choice(left, args.size, replace=False))
            left = np.setdiff1d(left, ids)
            results.append(serve_timed(deployment, ids, served, Path(tmp), runtime))
        after = os.getloadavg()
    settings = config.deletion.protocol
    print(f"protocol {args.method} {params}: M = {settings.requests} simulated requests of "
          f"{settings.size} images, bank K = {settings.bank}, {settings.repeats} repeats: "
          f"{protocol_s / 60:.1f} min (target <= {PROTOCOL_TARGET_MIN:.0f} min; ratio "
          f"{protocol_s / 60 / PROTOCOL_TARGET_MIN:.2f}); validated {protocol['validated']}"
          + ("" if protocol["validated"] else f" ({'; '.join(protocol['failures'])})"))  # fmt: skip
    figures = []
    for number, result in enumerate(results, start=1):
        lines, run, evidence = request_lines(result, served)
        record = result["record"]
        tried = f" after {record['attempt']['method']}" if record.get("attempt") else ""
        print(f"\nrequest {number}: {args.size} images, decision {record['decision']}, "
              f"served by {record['method']}{tried}")  # fmt: skip
        print(table(lines, run))
        share = evidence / run
        print(f"evidence + ledger: {evidence:.1f} s = {100 * share:.1f}% of the method's "
              f"{run:.1f} s (target <= {100 * EVIDENCE_TARGET:.0f}%; ratio "
              f"{share / EVIDENCE_TARGET:.2f})")  # fmt: skip
        figures.append({"phases": dict(lines), "method_s": run, "evidence_s": evidence,
                        "share": share, "decision": record["decision"]})  # fmt: skip
    print(f"\nload average {load[0]:.2f} before, {after[0]:.2f} after")
    result = {"method": args.method, "params": params, "quick": args.quick,
              "protocol_s": protocol_s, "validated": protocol["validated"],
              "requests": figures, "load_before": load, "load_after": after,
              "argv": sys.argv[1:] if argv is None else argv}  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1, default=str))
    return result


if __name__ == "__main__":
    main()

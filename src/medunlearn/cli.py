"""The `medunlearn` command: a thin typer layer over the Python API."""

from __future__ import annotations

import contextlib
import dataclasses
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

from medunlearn.config import (
    MethodConfig,
    RuntimeConfig,
    UserError,
    dump_config,
    load_config,
    parse_assignments,
)
from medunlearn.progress import RichProgress

app = typer.Typer(
    help="Machine unlearning for medical image classifiers: train, forget, unlearn, evaluate.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console(width=None if sys.stdout.isatty() else 160)
errors = Console(stderr=True)

ConfigArg = Annotated[Path | None, typer.Argument(help="experiment YAML (default: built-in)")]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="output folder")]
SetOpt = Annotated[
    list[str] | None, typer.Option("--set", "-s", help="override a config field: key=value")
]
DataRootOpt = Annotated[str | None, typer.Option("--data-root", help="folder of the npz files")]
CacheOpt = Annotated[str | None, typer.Option("--cache", help="cache folder for trained models")]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu or cuda")]
ExecutorOpt = Annotated[
    str | None, typer.Option("--executor", help="sequential, or ray (the ray extra)")
]
AddressOpt = Annotated[
    str | None,
    typer.Option("--address", help="Ray cluster to submit to (ray://host:10001); implies ray"),
]


@contextlib.contextmanager
def _user_errors() -> Iterator[None]:
    """Turn a user error into one printed line (verbatim, never a traceback) and exit status 2;
    any other exception is a bug and keeps its traceback."""
    try:
        yield
    except UserError as error:
        errors.print(Text.assemble(("error: ", "bold red"), str(error)), soft_wrap=True)
        raise typer.Exit(2) from error


def _config(
    config: Path | None,
    overrides: list[str] | None,
    data_root: str | None,
    cache: str | None,
    executor: str | None = None,
    address: str | None = None,
):
    """The resolved experiment config: file or default, then --set, --data-root, --cache and
    the executor options (an address means the Ray executor)."""
    extra = [f"data.root={data_root}"] if data_root else []
    extra += [f"runtime.cache_dir={cache}"] if cache else []
    extra += [f"runtime.executor={executor}"] if executor else []
    extra += [f"runtime.address={address}", "runtime.executor=ray"] if address else []
    return load_config(config, [*(overrides or []), *extra])


def _print_tables(rows: list[dict], config=None) -> None:
    """The results tables on the terminal."""
    from medunlearn.report.write import rich_tables, study_of

    for table in rich_tables(study_of(rows, config)):
        console.print(table)


@app.command()
def run(
    config: ConfigArg = None,
    out: OutOpt = Path("runs/default"),
    set_: SetOpt = None,
    data_root: DataRootOpt = None,
    cache: CacheOpt = None,
    executor: ExecutorOpt = None,
    address: AddressOpt = None,
) -> None:
    """Run an experiment: original model, Retrain, each method, metrics and report."""
    from medunlearn.experiment import run as run_experiment

    with _user_errors():
        resolved = _config(config, set_, data_root, cache, executor, address)
        with RichProgress(errors) as progress:
            rows = run_experiment(resolved, out, progress)
    _print_tables(rows, resolved)
    console.print(f"results: {out / 'results.csv'}, {out / 'report.md'}")


@app.command()
def tune(
    config: ConfigArg = None,
    method: Annotated[
        list[str] | None,
        typer.Option(
            "--method", "-m", help="method to tune (repeat for several; default: tune.method)"
        ),
    ] = None,
    trials: Annotated[int | None, typer.Option(help="trials per method (tune.trials)")] = None,
    out: OutOpt = Path("runs/tune"),
    set_: SetOpt = None,
    data_root: DataRootOpt = None,
    cache: CacheOpt = None,
    executor: ExecutorOpt = None,
    address: AddressOpt = None,
) -> None:
    """Tune a method's params against Retrain (Optuna), then evaluate them on held-out seeds."""
    with _user_errors():
        from medunlearn.tuning import tune_methods

        extra = [f"tune.trials={trials}"] if trials is not None else []
        resolved = _config(config, [*(set_ or []), *extra], data_root, cache, executor, address)
        with RichProgress(errors) as progress:
            summaries = tune_methods(resolved, out, method or [None], progress)
    for summary in summaries:
        console.print(
            f"{summary['method']}: best {summary['best_params']}, cost {summary['cost']['tune_min']:.1f} min"
        )
    console.print(f"results: {out}")


@app.command()
def train(
    config: ConfigArg = None,
    out: OutOpt = Path("runs/model"),
    seed: Annotated[int, typer.Option(help="seed of the model and data order")] = 0,
    set_: SetOpt = None,
    data_root: DataRootOpt = None,
    cache: CacheOpt = None,
) -> None:
    """Train the original model of a config; writes OUT/model.safetensors and OUT/config.yaml."""
    from medunlearn.experiment import export_original

    with _user_errors():
        resolved = _config(config, set_, data_root, cache)
        with RichProgress(errors) as progress:
            path, meta = export_original(resolved, out, seed, progress)
    train_config = resolved.train
    if train_config.sharded:
        shape = f"{train_config.shards} shards x {train_config.slices} slices"
        console.print(f"model: {path} ({shape}; their slice checkpoints beside it)")
    else:
        console.print(
            f"model: {path} (best epoch {meta['best_epoch']}, val {meta['best_val']:.2f})"
        )


@app.command()
def unlearn(
    checkpoint: Annotated[Path, typer.Option(help="trained model (from `medunlearn train`)")],
    forget_ids: Annotated[Path, typer.Option(help="ids to forget: text list or forget_set.json")],
    method: Annotated[str, typer.Option(help="method name (see `medunlearn methods`)")] = "salun",
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="method hyper-parameter key=value")
    ] = None,
    out: OutOpt = Path("runs/deletion"),
    bank: Annotated[
        int, typer.Option("--bank", help="reference Retrains for LiRA and RMIA (0: none)")
    ] = 0,
    data_root: DataRootOpt = None,
    cache: CacheOpt = None,
    device: DeviceOpt = "auto",
) -> None:
    """A one-off deletion request: unlearned checkpoint plus an audit report.

    For a deployed model serving requests one after another (patients, a ledger, a validated
    protocol, the clinical gate), use `deploy`, `protocol` and `delete`: this command knows
    nothing of earlier requests."""
    from medunlearn.deletion.oneoff import serve_deletion

    with _user_errors():
        params = parse_assignments(param or [], "--param")
        runtime = RuntimeConfig(device=device, cache_dir=cache)
        with RichProgress(errors) as progress:
            result = serve_deletion(
                checkpoint, forget_ids, MethodConfig(method, params), out, data_root, runtime,
                progress, bank,
            )  # fmt: skip
    console.print(result.report.read_text())
    console.print(f"unlearned model: {result.checkpoint}; audit: {result.report}")


KeyOpt = Annotated[
    Path | None, typer.Option("--key", help="Ed25519 private key (PEM) signing the ledger record")
]
PatientMapOpt = Annotated[
    Path | None, typer.Option("--patient-map", help="CSV of train_id, patient_id")
]
ParamOpt = Annotated[
    list[str] | None, typer.Option("--param", "-p", help="method hyper-parameter key=value")
]


def _runtime(device: str, cache: str | None) -> RuntimeConfig:
    """The runtime of a deployment command."""
    return RuntimeConfig(device=device, cache_dir=cache)


@app.command()
def deploy(
    checkpoint: Annotated[Path, typer.Argument(help="trained model (from `medunlearn train`)")],
    out: OutOpt = Path("runs/deployment"),
    config: Annotated[
        Path | None, typer.Option("--config", help="YAML whose `deletion:` settings to use")
    ] = None,
    data_root: DataRootOpt = None,
    cache: CacheOpt = None,
    device: DeviceOpt = "auto",
    key: KeyOpt = None,
) -> None:
    """Start a deployment: its current checkpoint, its ledger and the ids it will forget."""
    from medunlearn.deletion.service import deploy as start

    with _user_errors(), RichProgress(errors) as progress:
        folder = start(checkpoint, out, config, data_root, _runtime(device, cache), progress, key)
    console.print(f"deployment: {folder} (ledger {folder / 'ledger.jsonl'})")


@app.command()
def protocol(
    deployment: Annotated[Path, typer.Argument(help="deployment folder")],
    method: Annotated[str, typer.Option("--method", "-m", help="method to validate")],
    param: ParamOpt = None,
    patient_map: PatientMapOpt = None,
    data_root: DataRootOpt = None,
    cache: CacheOpt = None,
    device: DeviceOpt = "auto",
    key: KeyOpt = None,
) -> None:
    """Validate a method once on the deployment: simulated requests against banks of Retrains;
    the acceptance criteria every real request is then held to."""
    from medunlearn.deletion.protocol import validate_protocol

    with _user_errors():
        params = parse_assignments(param or [], "--param")
        with RichProgress(errors) as progress:
            found = validate_protocol(deployment, method, params, patient_map, data_root,
                                      _runtime(device, cache), key, progress)  # fmt: skip
    verdict = (
        "validated" if found["validated"] else "NOT validated: " + "; ".join(found["failures"])
    )
    console.print(f"{method}: {verdict}")
    for criterion in found["criteria"]:
        console.print(f"  {criterion['label']}: at most {criterion['bound']:.3f}")


@app.command()
def delete(
    deployment: Annotated[Path, typer.Argument(help="deployment folder")],
    ids: Annotated[Path | None, typer.Option("--ids", help="training ids to forget")] = None,
    patients: Annotated[
        Path | None, typer.Option("--patients", help="patient ids to forget, one a line")
    ] = None,
    patient_map: PatientMapOpt = None,
    method: Annotated[
        str | None, typer.Option("--method", "-m", help="default: the protocol's")
    ] = None,
    param: ParamOpt = None,
    reference: Annotated[
        bool, typer.Option("--reference-retrain", help="also train the exact Retrain, compare")
    ] = False,
    auto_retrain: Annotated[
        bool | None, typer.Option("--auto-retrain/--no-auto-retrain", help="retrain when due")
    ] = None,
    data_root: DataRootOpt = None,
    cache: CacheOpt = None,
    device: DeviceOpt = "auto",
    key: KeyOpt = None,
) -> None:
    """Serve a deletion request on a deployment: forget patients (or images) with the validated
    method, pass the clinical gate (or fall back to an exact Retrain), commit to the ledger."""
    from medunlearn.deletion.service import delete as serve

    with _user_errors():
        params = parse_assignments(param or [], "--param")
        with RichProgress(errors) as progress:
            outcome = serve(deployment, ids, patients, patient_map, method, params, data_root,
                            _runtime(device, cache), reference, auto_retrain, key, progress)  # fmt: skip
    record = outcome.record
    if outcome.answered:
        console.print(
            f"already forgotten: request {record['request']} ({record['time']}); nothing done"
        )
        return
    console.print(f"request {record['request']}: {record['decision']} ({record['method']}); "
                  f"audit: {outcome.audit / 'audit.html'}")  # fmt: skip


@app.command()
def sequential(
    config: ConfigArg = None,
    out: OutOpt = Path("runs/sequential"),
    set_: SetOpt = None,
    data_root: DataRootOpt = None,
    cache: CacheOpt = None,
) -> None:
    """The sequential-requests study: each method serves the config's `sequential` requests one
    after another, against an exact Retrain at every `exact_every`-th; per-request tables, k*
    per method and sequential.png."""
    from medunlearn.analyses.base import Study
    from medunlearn.analyses.sequential import Sequential
    from medunlearn.deletion.sequential import run_sequential

    with _user_errors():
        resolved = _config(config, set_, data_root, cache)
        with RichProgress(errors) as progress:
            rows = run_sequential(resolved, out, progress)
    for table in Sequential().tables(Study(rows, resolved.name)):
        console.print(table.rich())
    console.print(f"results: {out / 'results.csv'}, {out / 'report.md'}, {out / 'sequential.png'}")


ledger_app = typer.Typer(help="The deployment's ledger: show it, or verify its chain.")
app.add_typer(ledger_app, name="ledger")


@ledger_app.command("verify")
def ledger_verify(
    deployment: Annotated[Path, typer.Argument(help="deployment folder")],
    public_key: Annotated[
        Path | None, typer.Option("--public-key", help="Ed25519 public key (PEM)")
    ] = None,
) -> None:
    """Recompute the ledger's chain (and signatures) and every checkpoint hash it can find."""
    from medunlearn.deletion.verify import verify

    with _user_errors():
        report = verify(deployment, public_key)
    for line in report.lines:
        console.print(line)
    if not report.ok:
        raise typer.Exit(1)


@ledger_app.command("show")
def ledger_show(deployment: Annotated[Path, typer.Argument(help="deployment folder")]) -> None:
    """The ledger's records, one a line (no patient id is in them)."""
    from medunlearn.deletion.verify import summary

    with _user_errors():
        for line in summary(deployment):
            console.print(line, markup=False)


@app.command()
def evaluate(
    checkpoint: Annotated[Path, typer.Option(help="model to evaluate")],
    forget_ids: Annotated[Path, typer.Option(help="ids of the forget set")],
    data_root: DataRootOpt = None,
    cache: CacheOpt = None,
    device: DeviceOpt = "auto",
) -> None:
    """UA, RA, TA and MIA (plus clinical metrics on binary tasks) of a checkpoint."""
    from medunlearn.deletion.oneoff import evaluate_checkpoint, open_checkpoint

    with _user_errors():
        runtime = RuntimeConfig(device=device, cache_dir=cache)
        session, trained, forget_set = open_checkpoint(checkpoint, forget_ids, data_root, runtime)
        seed = int(trained.meta.get("seed", 0))
        metrics, _ = evaluate_checkpoint(trained.model, session, forget_set, seed)
    from medunlearn.analyses.tables import fmt

    for key, value in metrics.items():
        console.print(f"{key:>20}: {fmt(value, None)}")


@app.command()
def report(out: Annotated[Path, typer.Argument(help="folder of a finished run")]) -> None:
    """Print a run's tables again and rewrite its report.md, results.csv and figures."""
    from medunlearn.report.write import read_results, write_results

    with _user_errors():
        rows = read_results(out)
        config = load_config(out / "config.yaml") if (out / "config.yaml").is_file() else None
        write_results(out, rows, config)
    _print_tables(rows, config)


@app.command()
def methods() -> None:
    """List the unlearning methods and their hyper-parameters with defaults."""
    from medunlearn.methods import METHODS

    for name, spec in sorted(METHODS.items()):
        defaults = {f.name: f.default for f in dataclasses.fields(spec.params)}
        console.print(f"[bold]{name}[/]: {spec.summary}\n    {defaults}")


@app.command("show-config")
def show_config(config: ConfigArg = None, set_: SetOpt = None) -> None:
    """Print the resolved config (the default experiment when no file is given)."""
    with _user_errors():
        console.print(dump_config(load_config(config, set_ or [])), markup=False)

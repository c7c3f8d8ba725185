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
    data_root: DataRootOpt = None,
    cache: CacheOpt = None,
    device: DeviceOpt = "auto",
) -> None:
    """Serve a deletion request: unlearned checkpoint plus an audit report."""
    from medunlearn.deletion import serve_deletion

    with _user_errors():
        params = parse_assignments(param or [], "--param")
        runtime = RuntimeConfig(device=device, cache_dir=cache)
        with RichProgress(errors) as progress:
            result = serve_deletion(
                checkpoint, forget_ids, MethodConfig(method, params), out, data_root, runtime,
                progress,
            )  # fmt: skip
    console.print(result.report.read_text())
    console.print(f"unlearned model: {result.checkpoint}; audit: {result.report}")


@app.command()
def evaluate(
    checkpoint: Annotated[Path, typer.Option(help="model to evaluate")],
    forget_ids: Annotated[Path, typer.Option(help="ids of the forget set")],
    data_root: DataRootOpt = None,
    cache: CacheOpt = None,
    device: DeviceOpt = "auto",
) -> None:
    """UA, RA, TA and MIA (plus clinical metrics on binary tasks) of a checkpoint."""
    from medunlearn.deletion import evaluate_checkpoint, open_checkpoint

    with _user_errors():
        runtime = RuntimeConfig(device=device, cache_dir=cache)
        session, trained, forget_set = open_checkpoint(checkpoint, forget_ids, data_root, runtime)
        seed = int(trained.meta.get("seed", 0))
        metrics = evaluate_checkpoint(trained.model, session, forget_set, seed)
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

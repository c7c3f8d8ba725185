"""The same study through the sequential executor and through Ray on this machine: wall
times, their ratios (the target: Ray at most 1.15x sequential), and whether the runs gave
the same trials and held-out rows.

Four runs of one study, each with fresh cache and output folders (nothing is reused):

- sequential: every job in this process, on every core;
- Ray, one job at a time (`runtime.job_cpus` = the cores): the same threads per job; the
  ratio to sequential is what Ray's tasks cost, and the rows must be the sequential run's to
  the last bit (one inference path for the whole study, never picked by timing);
- Ray, jobs side by side (`job_cpus` 1): one job per core; the ratio is what spreading the
  jobs gains;
- sequential on one thread: a training's float sums depend on its thread count, so the
  side-by-side run is compared with this one, whose jobs have its threads.

The study is a SalUn search on BloodMNIST (the small CNN of the default experiment), cut down
to run in minutes: 4 trials asked 2 at a time (`tune.parallel`: the same study whichever
executor runs it), 4 training epochs, 3 SalUn epochs, one held-out seed. `--trials 16 --set
train.epochs=12 --set methods.salun.params.epochs=5` gives the issue's full study (about an
hour per run on 2 cores).

    MEDUNLEARN_DATA=../shared/data python benchmarks/study.py
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

from medunlearn.config import load_config
from medunlearn.engine import usable_cores
from medunlearn.tuning import tune_methods

TIMING = {"minutes", "rte_min", "eval_s", "speedup", "bank_min", "repeats_min", "relearn_s"}


def _rows(path: Path) -> list[dict]:
    """A CSV's rows without their timing columns."""
    with open(path, newline="") as handle:
        return [{k: v for k, v in row.items() if k not in TIMING} for row in csv.DictReader(handle)]


def _timed(config, folder: Path, **runtime) -> tuple[float, Path]:
    """Wall time of the whole `medunlearn tune` study with these runtime settings, and its
    output folder."""
    settings = {**runtime, "cache_dir": str(folder / "cache")}
    runtime_config = dataclasses.replace(config.runtime, **settings)
    out = folder / "out"
    started = time.perf_counter()
    tune_methods(dataclasses.replace(config, runtime=runtime_config), out, ["salun"])
    return time.perf_counter() - started, out / "salun"


def _same(first: Path, second: Path) -> bool:
    """Whether two runs gave the same trials and held-out rows (timing columns aside)."""
    return all(
        _rows(first / name) == _rows(second / name)
        for name in ("trials.csv", "held-out/results.csv")
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="examples/tune-bloodmnist.yaml")
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    args = parser.parse_args()
    overrides = [
        "train.epochs=4", "methods.salun.params.epochs=3", "tune.held_out=[1]",
        f"tune.trials={args.trials}", f"tune.parallel={args.parallel}", *args.overrides,
    ]  # fmt: skip
    config = load_config(args.config, overrides)
    cores = usable_cores()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        sequential, sequential_out = _timed(config, folder / "sequential", threads=cores)
        one, one_out = _timed(config, folder / "ray-one", executor="ray", job_cpus=cores)
        spread, spread_out = _timed(config, folder / "ray-spread", executor="ray", job_cpus=1)
        _, single_out = _timed(config, folder / "sequential-1", threads=1)
        same = _same(sequential_out, one_out)
        close = _same(single_out, spread_out)
    print(f"study: SalUn, {config.tune.trials} trials ({config.tune.parallel} at a time), "
          f"train.epochs {config.train.epochs}, held-out seeds {config.tune.held_out}, "
          f"{cores} cores")  # fmt: skip
    print(f"sequential executor ({cores} threads):     {sequential / 60:6.2f} min")
    print(f"Ray, one {cores}-core job at a time:       {one / 60:6.2f} min   "
          f"ratio {one / sequential:.3f} (target <= 1.15); same results: {same}")  # fmt: skip
    print(f"Ray, {cores} one-core jobs side by side:  {spread / 60:6.2f} min   "
          f"ratio {spread / sequential:.3f}; same results as sequential on 1 thread: {close}")  # fmt: skip
    return 0 if same and close else 1


if __name__ == "__main__":
    sys.exit(main())

"""SISA's two budgets, measured in one run: sharded training against the unsharded training of
the same total epochs, and exact deletions against a full Retrain.

On the default experiment's recipe (BloodMNIST 28 px, the small CNN, 12 epochs, cosine,
crop-flip; `--set` changes it), in a fresh cache (nothing reused), after one warm-up epoch,
one after another:

1. the unsharded original (train.shards = train.slices = 1);
2. the same recipe in 4 shards of 4 slices: target at most 1.15x step 1 (`slice_epochs` gives
   the S shards the same total work);
3. the same recipe in 8 shards of 4 slices (the model the deletions start from);
4. a full Retrain of the unsharded recipe without the 10 images of step 6;
5. sisa deleting 1 random image from step 3's model: target at most 0.15x step 4;
6. sisa deleting 10 random images from it: target at most 0.6x step 4.

Each deletion is printed with the shards and slices it retrained, the share of the sharded
training's work (image-epochs) that was, and the share a random request of its size is expected
to retrain, beside its measured time share. Wall times are the calls' own (what `unlearn` and the
trainings report); the machine's load average is printed before and after, since a shared CPU
slows one step and not another.

    MEDUNLEARN_DATA=../shared/data python benchmarks/sisa.py
    python benchmarks/sisa.py --data-root DIR --set train.epochs=2   # a quick dry run
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
import time
from pathlib import Path

from medunlearn.config import ExperimentConfig, ForgetConfig, MethodConfig, load_config
from medunlearn.forget import select_forget
from medunlearn.methods import Context, UnlearnData, unlearn
from medunlearn.sharding import deletion_columns
from medunlearn.study.pipeline import train_original
from medunlearn.study.setup import Session, open_session

TRAINING_TARGET, ONE_TARGET, TEN_TARGET = 1.15, 0.15, 0.6


def _sharded(config: ExperimentConfig, shards: int, slices: int) -> ExperimentConfig:
    """The config with its recipe in `shards` shards of `slices` slices."""
    train = dataclasses.replace(config.train, shards=shards, slices=slices)
    return dataclasses.replace(config, train=train)


def _training(config: ExperimentConfig, session: Session) -> tuple[float, object]:
    """The wall time of training a config's original (nothing cached), and the model."""
    started = time.perf_counter()
    trained = train_original(config, session.dataset, session.engine, session.store, 0)
    return time.perf_counter() - started, trained


def _load() -> str:
    """The 1, 5 and 15 minute load averages."""
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    parser.add_argument("--data-root", default=None, help="folder of the MedMNIST npz files")
    parser.add_argument("--json", default=None, help="write the results to this JSON file")
    args = parser.parse_args(argv)
    overrides = [*(["data.root=" + args.data_root] if args.data_root else []), *args.overrides]
    results: dict = {"load_before": _load()}
    with tempfile.TemporaryDirectory() as cache:
        base = load_config(None, [*overrides, f"runtime.cache_dir={cache}"])
        session = open_session(base)
        dataset, engine = session.dataset, session.engine
        warm = dataclasses.replace(base.train, epochs=1)  # first-call costs, timed in no step
        _training(dataclasses.replace(base, train=warm), session)
        whole, _ = _training(base, session)
        four, _ = _training(_sharded(base, 4, 4), session)
        eight_config = _sharded(base, 8, 4)
        eight, sharded = _training(eight_config, session)
        forget = {n: select_forget(dataset, ForgetConfig(mode="random", count=n), seed=n)
                  for n in (1, 10)}  # fmt: skip
        context = Context(engine, 0, base.train, base.model, session.store)
        retrain = unlearn(sharded.model, UnlearnData(dataset, forget[10]), MethodConfig("retrain"),
                          context).seconds  # fmt: skip
        deletions = {}
        for n, forget_set in forget.items():
            result = unlearn(sharded.model, UnlearnData(dataset, forget_set),
                             MethodConfig("sisa"), context)  # fmt: skip
            columns = deletion_columns(result.model, forget_set.forget_ids)
            deletions[n] = {"seconds": result.seconds, "ratio": result.seconds / retrain, **columns}
    results |= {"whole_s": whole, "four_s": four, "eight_s": eight, "retrain_s": retrain,
                "four_ratio": four / whole, "deletions": deletions, "load_after": _load()}  # fmt: skip
    _print(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=float))
    return results


def _print(results: dict) -> None:
    """The measurements and their ratios to the targets."""
    print(f"load average (1, 5, 15 min) before: {results['load_before']}")
    print(f"unsharded training:            {results['whole_s'] / 60:6.2f} min")
    print(f"4 shards x 4 slices:           {results['four_s'] / 60:6.2f} min  "
          f"ratio {results['four_ratio']:.2f}x (target <= {TRAINING_TARGET}x)")  # fmt: skip
    print(f"8 shards x 4 slices:           {results['eight_s'] / 60:6.2f} min  "
          f"ratio {results['eight_s'] / results['whole_s']:.2f}x")  # fmt: skip
    print(f"full Retrain (unsharded):      {results['retrain_s'] / 60:6.2f} min")
    for n, target in ((1, ONE_TARGET), (10, TEN_TARGET)):
        d = results["deletions"][n]
        print(
            f"sisa, {n:>2} random image(s), S=8: {d['seconds'] / 60:6.2f} min  ratio "
            f"{d['ratio']:.3f}x (target <= {target}x); {d['shards_retrained']} shard(s) "
            f"(expected {d['shards_expected']:.2f}), {d['slices_retrained']} slice stage(s), "
            f"work share {d['retrain_share']:.3f} (expected {d['retrain_share_expected']:.3f})"
        )
    print(f"load average (1, 5, 15 min) after: {results['load_after']}")


if __name__ == "__main__":
    main()

"""The forgetting score's epsilons: the per-example numpy reference against the batched torch code.

Times `example_epsilon` over every forget example (what `forgetting_score` ran before) and
`forgetting_epsilons` (the batched code it runs now, on --device) on synthetic banks of phi:
per example a level ~ N(4, 3); each model's phi is that level (shifted by N(0, 1) for the
retrained bank) plus N(0, s) noise, s uniform in [0.5, 2] per example and bank. The batched code
is warmed up on a few examples first (CUDA start-up, kernel loads). Prints both times, their
ratio and the largest difference of the epsilons (0 expected).

    python benchmarks/forgetting_score.py                          # 1196 examples, N = 8, CPU
    python benchmarks/forgetting_score.py --threads 1              # steadier on a busy CPU
    python benchmarks/forgetting_score.py --device cuda --models 64
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from medunlearn.metrics.attacks.forgetting_quality import example_epsilon, forgetting_epsilons
from timing import timed

WARMUP_EXAMPLES = 16


def banks(n_models: int, n_examples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic unlearned and retrained banks of phi, models x examples."""
    rng = np.random.default_rng(seed)
    level = rng.normal(4, 3, n_examples)
    unlearned = rng.normal(level, rng.uniform(0.5, 2, n_examples), (n_models, n_examples))
    shifted = level + rng.normal(0, 1, n_examples)
    retrained = rng.normal(shifted, rng.uniform(0.5, 2, n_examples), (n_models, n_examples))
    return unlearned, retrained


def reference(unlearned: np.ndarray, retrained: np.ndarray) -> np.ndarray:
    """The per-example numpy epsilons."""
    return np.array([example_epsilon(u, r) for u, r in zip(unlearned.T, retrained.T, strict=True)])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda, ...")
    parser.add_argument("--examples", type=int, default=1196, help="forget examples")
    parser.add_argument("--models", type=int, default=8, help="models N in each bank")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    unlearned, retrained = banks(args.models, args.examples, args.seed)
    forgetting_epsilons(
        unlearned[:, :WARMUP_EXAMPLES], retrained[:, :WARMUP_EXAMPLES], device=device
    )
    results: dict = {}
    new_s = timed(
        lambda: results.update(new=forgetting_epsilons(unlearned, retrained, device=device)), device
    )
    began = time.perf_counter()
    old = reference(unlearned, retrained)
    old_s = time.perf_counter() - began
    difference = float(np.abs(old - results["new"]).max())
    print(
        f"forgetting score, {args.examples} examples, N = {args.models}, torch {torch.__version__}"
        f" ({torch.get_num_threads()} threads): per-example numpy {old_s:.2f} s, batched on "
        f"{device} {new_s:.2f} s, {old_s / new_s:.1f}x; largest epsilon difference {difference:g}"
    )
    return {"old_s": old_s, "new_s": new_s, "difference": difference}


if __name__ == "__main__":
    main()

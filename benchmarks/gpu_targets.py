"""The GPU run's throughput targets (issue 24), read from `throughput.py --json` files.

Targets: every model's training loop at least 90% of its bare step's images/s, and the
small-stem ResNet-18 at 64 px at least 20,000 training images/s. Prints one line per target and
file, "met" or "MISSED"; the exit status is 0 either way (a miss is a finding, not a failure).

    python benchmarks/gpu_targets.py gpu-out/throughput.json gpu-out/throughput-compile.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

LOOP_SHARE = 0.90
TARGET_MODEL = "resnet18-small@64"
TARGET_IMAGES_PER_S = 20_000


def _verdict(met: bool) -> str:
    """How a target line ends."""
    return "met" if met else "MISSED"


def target_lines(result: dict, label: str) -> list[str]:
    """One line per target that the results of one throughput run can show."""
    lines = []
    for row in result["rows"]:
        if row["train_ratio"] is None:  # an --inference-only run
            continue
        share = row["train_ratio"]
        lines.append(
            f"{label} {row['model']}: loop {share:.1%} of the bare step "
            f"(target >= {LOOP_SHARE:.0%}): {_verdict(share >= LOOP_SHARE)}"
        )
        if row["model"] == TARGET_MODEL:
            rate = row["train_loop"]
            lines.append(
                f"{label} {row['model']}: {rate:,.0f} training images/s "
                f"(target >= {TARGET_IMAGES_PER_S:,}): {_verdict(rate >= TARGET_IMAGES_PER_S)}"
            )
    return lines


def main(argv: list[str] | None = None) -> list[str]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="+", type=Path, help="throughput.py --json files")
    args = parser.parse_args(argv)
    lines = []
    for path in args.results:
        if not path.is_file():
            lines.append(f"{path.name}: not written (its run failed or was skipped)")
            continue
        lines += target_lines(json.loads(path.read_text()), path.stem)
    print("\n".join(lines))
    return lines


if __name__ == "__main__":
    main()

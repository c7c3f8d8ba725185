"""Benchmark: ResNet-18 training throughput under each augmentation mode, and augmentation cost.

For every mode this times full training steps (augment + uint8->float + forward + backward + SGD
step) of `torchvision.models.resnet18(num_classes=8)` on a random uint8 batch, and the augmentation
alone on the same batch. Steps of the different modes are interleaved round by round in a
rotating order, so drift of the machine hits all modes alike, and the fastest of each mode's
timings is kept (the one least disturbed by other processes). Columns:

- images/s: batch size / best step time;
- vs none: images/s relative to the "none" mode of the same run;
- aug ms: best time of the augmentation alone on the batch;
- aug share: aug ms / best step time.

Usage: PYTHONPATH=src python benchmarks/augment.py [--device cpu|cuda] [--size 28] [--batch 256]
       [--steps 3] [--threads N] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import torch
import torchvision

from medunlearn.augment import AUG_MODES, build_augment
from timing import timed


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--size", type=int, default=28, help="image height and width")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=3, help="timed training steps per mode")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--json", type=Path, default=None, help="also write the table here")
    return parser.parse_args(argv)


def make_train_step(device: torch.device, labels: torch.Tensor) -> Callable[[torch.Tensor], None]:
    """One SGD training step of a fresh ResNet-18 (8 classes) on a uint8 batch."""
    model = torchvision.models.resnet18(num_classes=8).to(device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)

    def step(images: torch.Tensor) -> None:
        """Forward, backward and update on `images`."""
        loss = torch.nn.functional.cross_entropy(model(images.float() / 255), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def run(args: argparse.Namespace) -> list[dict[str, float | str]]:
    """Time every mode; one row per mode."""
    device = torch.device(args.device)
    setup = torch.Generator().manual_seed(0)
    shape = (args.batch, 3, args.size, args.size)
    images = torch.randint(0, 256, shape, dtype=torch.uint8, generator=setup).to(device)
    labels = torch.randint(0, 8, (args.batch,), generator=setup).to(device)
    train_step = make_train_step(device, labels)
    augments = {mode: build_augment(mode) for mode in AUG_MODES}
    generator = torch.Generator(device=device).manual_seed(0)
    train_step(images)  # warm-up: allocator, kernels, autotuning
    step_times: dict[str, list[float]] = {mode: [] for mode in AUG_MODES}
    augment_times: dict[str, list[float]] = {mode: [] for mode in AUG_MODES}
    for augment in augments.values():
        augment(images, generator)  # warm-up
    for round_index in range(args.steps):
        shift = round_index % len(AUG_MODES)  # rotate the order: no mode always runs first
        for mode in AUG_MODES[shift:] + AUG_MODES[:shift]:
            augment = augments[mode]
            augment_times[mode].append(timed(lambda a=augment: a(images, generator), device))
            step_times[mode].append(
                timed(lambda a=augment: train_step(a(images, generator)), device)
            )
    base = args.batch / min(step_times["none"])
    rows: list[dict[str, float | str]] = []
    for mode in AUG_MODES:
        step = min(step_times[mode])
        augment_s = min(augment_times[mode])
        rows.append(
            {
                "mode": mode,
                "images_per_s": args.batch / step,
                "vs_none": args.batch / step / base,
                "augment_ms": augment_s * 1e3,
                "step_ms": step * 1e3,
                "augment_share": augment_s / step,
            }
        )
    return rows


def format_table(rows: list[dict[str, float | str]]) -> str:
    """The rows as an aligned text table."""
    header = f"{'mode':<26}{'images/s':>10}{'vs none':>9}{'aug ms':>9}{'aug share':>11}"
    lines = [header, "-" * len(header)]
    for row in rows:
        lines.append(
            f"{row['mode']:<26}{row['images_per_s']:>10.1f}{row['vs_none']:>9.3f}"
            f"{row['augment_ms']:>9.2f}{row['augment_share']:>10.1%}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark, print the table and optionally write it as JSON."""
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = run(args)
    device_name = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    print(
        f"ResNet-18 training step, batch {args.batch}, {args.size}x{args.size}x3, {device_name}, "
        f"{torch.get_num_threads()} CPU threads, torch {torch.__version__}, "
        f"best of {args.steps} steps per mode"
    )
    print(format_table(rows))
    if args.json:
        setup = {key: value for key, value in vars(args).items() if key != "json"}
        report = {"setup": {**setup, "device_name": device_name}, "rows": rows}
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()

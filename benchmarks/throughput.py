"""Engine overhead: the full training / inference loop against the bare model, in images/s.

(a) Training: `Engine.batches` (a resident uint8 split, crop-flip augmentation) feeding
`Engine.train_epoch`, against the bare step (forward, cross-entropy, backward, SGD step) on one
resident random float batch of the same shape, with the same model and the same optimiser.
(b) Inference: `Engine.logits` on a uint8 split against bare `model(x)` under inference_mode
on one resident float chunk of the evaluation batch size.

The bare batches take the memory layout the engine feeds (channels-last where it uses it), so
a ratio measures the engine's own overhead. Loop and bare runs alternate over `--rounds`
rounds (the first of each pair alternating too); rates are medians over the rounds and each
ratio is the median of the per-round ratios, which keeps them fair on a shared machine.

    python benchmarks/throughput.py                      # CPU or GPU, every model
    python benchmarks/throughput.py --device cpu --models cnn --steps 20 --json out.json
    python benchmarks/throughput.py --bf16 --channels-last --compile
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from medunlearn.augment import build_augment
from medunlearn.config import ModelConfig, RuntimeConfig
from medunlearn.data import Split
from medunlearn.engine import Engine
from medunlearn.models import build_model

CHANNELS, CLASSES = 3, 8


@dataclass(frozen=True)
class Spec:
    """One model to measure, with its batch sizes and steps on the CPU and on a GPU."""

    name: str
    arch: str
    size: int
    cpu: tuple[int, int, int, int]  # train batch, train steps, eval batch, eval chunks
    gpu: tuple[int, int, int, int]


SPECS = {
    spec.name: spec
    for spec in (
        Spec("cnn", "cnn", 28, (256, 6, 1024, 3), (256, 50, 1024, 20)),
        Spec("resnet18", "resnet18", 28, (128, 3, 512, 2), (256, 50, 1024, 20)),
        Spec("resnet18-small", "resnet18-small", 28, (64, 2, 256, 2), (256, 30, 1024, 10)),
        Spec("resnet18-small@64", "resnet18-small", 64, (16, 2, 64, 2), (256, 20, 1024, 5)),
    )
}


@dataclass
class Row:
    """The measurements of one model."""

    model: str
    px: int
    batch: int
    steps: int
    train_loop: float
    train_bare: float
    train_ratio: float
    eval_batch: int
    eval_images: int
    eval_loop: float
    eval_bare: float
    eval_ratio: float


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(device: torch.device, run: Callable[[], object]) -> float:
    """Seconds one call takes, the device work included."""
    _sync(device)
    began = time.perf_counter()
    run()
    _sync(device)
    return time.perf_counter() - began


def _layout(engine: Engine, images: torch.Tensor, inference: bool) -> torch.Tensor:
    """The memory layout the engine feeds the model."""
    if engine.channels_last or (inference and engine.device.type == "cpu"):
        return images.contiguous(memory_format=torch.channels_last)
    return images


def _uint8_split(n: int, size: int, seed: int) -> Split:
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, CHANNELS, size, size), dtype=torch.uint8, generator=generator)
    return Split(images, torch.randint(0, CLASSES, (n,), generator=generator))


def _alternate(
    rounds: int, device: torch.device, loop: Callable[[], object], bare: Callable[[], object]
) -> tuple[list[float], list[float]]:
    """Seconds of `loop` and `bare` per round, alternating which runs first."""
    loop_s, bare_s = [], []
    for r in range(rounds):
        if r % 2:
            bare_s.append(_timed(device, bare))
            loop_s.append(_timed(device, loop))
        else:
            loop_s.append(_timed(device, loop))
            bare_s.append(_timed(device, bare))
    return loop_s, bare_s


def _rates(images: int, loop_s: list[float], bare_s: list[float]) -> tuple[float, float, float]:
    """Median images/s of loop and bare, and the median of the per-round ratios."""
    ratio = statistics.median(b / a for a, b in zip(loop_s, bare_s, strict=True))
    return images / statistics.median(loop_s), images / statistics.median(bare_s), ratio


def measure(spec: Spec, args: argparse.Namespace, device: torch.device) -> Row:
    """Training and inference throughput of one model, loop and bare."""
    batch, steps, eval_batch, chunks = spec.gpu if device.type == "cuda" else spec.cpu
    steps = args.steps or steps
    runtime = RuntimeConfig(
        device=str(device), threads=args.threads, bf16=args.bf16,
        channels_last=args.channels_last, compile=args.compile, eval_batch_size=eval_batch,
    )  # fmt: skip
    engine = Engine(runtime)
    torch.manual_seed(0)
    model = engine.prepare(build_model(ModelConfig(spec.arch, width=32), CHANNELS, CLASSES))
    optimizer = engine.sgd(model, lr=0.01, momentum=0.9, weight_decay=5e-4)
    augment = build_augment("crop-flip")
    generator = engine.generator(0)
    split = _uint8_split(batch * steps, spec.size, seed=1)
    rows = torch.arange(len(split))

    def loss_fn(logits, b):
        return F.cross_entropy(logits, b.labels)

    def loop(n_rows: int = len(rows)) -> float:
        batches = engine.batches(split, rows[:n_rows], batch, generator, augment)
        return engine.train_epoch(model, batches, optimizer, loss_fn)

    x = _layout(engine, torch.rand(batch, CHANNELS, spec.size, spec.size, device=device), False)
    y = torch.randint(0, CLASSES, (batch,), device=device)

    def bare(n_steps: int = steps) -> None:
        model.train()
        for _ in range(n_steps):
            with engine.autocast():
                loss = F.cross_entropy(engine.forward(model, x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    warm = args.warmup or (10 if device.type == "cuda" else 1)
    loop(min(warm, steps) * batch)  # compiles, allocates, moves the split once
    bare(warm)
    loop_s, bare_s = _alternate(args.rounds, device, loop, bare)
    train = _rates(batch * steps, loop_s, bare_s)

    eval_split = _uint8_split(eval_batch * chunks, spec.size, seed=2)
    chunk = _layout(engine, torch.rand(eval_batch, CHANNELS, spec.size, spec.size), True)
    chunk = chunk.to(device)

    def eval_loop() -> torch.Tensor:
        return engine.logits(model, eval_split.images)

    @torch.inference_mode()
    def eval_bare() -> None:
        model.eval()
        for _ in range(chunks):
            with engine.autocast():
                model(chunk)

    eval_loop()
    eval_bare()
    loop_s, bare_s = _alternate(args.rounds, device, eval_loop, eval_bare)
    evaluation = _rates(eval_batch * chunks, loop_s, bare_s)
    return Row(spec.name, spec.size, batch, steps, *train, eval_batch, eval_batch * chunks,
               *evaluation)  # fmt: skip


def table(rows: list[Row]) -> str:
    """An aligned text table of the rows."""
    head = ["model", "px", "batch", "steps", "train img/s", "bare img/s", "ratio",
            "eval n", "eval img/s", "bare img/s", "ratio"]  # fmt: skip
    body = [
        [r.model, str(r.px), str(r.batch), str(r.steps), f"{r.train_loop:.1f}",
         f"{r.train_bare:.1f}", f"{100 * r.train_ratio:.1f}%", f"{r.eval_images}/{r.eval_batch}",
         f"{r.eval_loop:.1f}", f"{r.eval_bare:.1f}", f"{100 * r.eval_ratio:.1f}%"]
        for r in rows
    ]  # fmt: skip
    widths = [max(len(line[i]) for line in [head, *body]) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in
                       enumerate(zip(line, widths, strict=True))) for line in [head, *body]]  # fmt: skip
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", choices=("cpu", "cuda", "auto"))
    parser.add_argument("--models", nargs="+", default=list(SPECS), choices=list(SPECS))
    parser.add_argument("--steps", type=int, default=None, help="train steps per round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating loop/bare rounds")
    parser.add_argument("--warmup", type=int, default=None, help="warm-up steps (CPU 1, GPU 10)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: all)")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast")
    parser.add_argument("--channels-last", action="store_true", help="channels-last model")
    parser.add_argument("--compile", action="store_true", help="torch.compile the training step")
    parser.add_argument("--json", default=None, help="write the results to this JSON file")
    args = parser.parse_args(argv)
    device = Engine(RuntimeConfig(device=args.device, threads=args.threads)).device
    load = os.getloadavg()
    began = time.perf_counter()
    rows = [measure(SPECS[name], args, device) for name in args.models]
    seconds = time.perf_counter() - began
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    print(
        f"device {device} ({name or platform.machine()}), torch {torch.__version__}, "
        f"threads {torch.get_num_threads()}, bf16 {args.bf16}, channels_last "
        f"{args.channels_last}, compile {args.compile}, crop-flip, {args.rounds} rounds"
    )
    print(table(rows))
    after = os.getloadavg()
    print(
        f"steps: train steps per round (ratio = loop / bare); eval n/batch: images per round / "
        f"chunk. {seconds:.0f} s; load average {load[0]:.2f} before, {after[0]:.2f} after"
    )
    if args.json:
        meta = {"device": str(device), "device_name": name, "torch": torch.__version__,
                "threads": torch.get_num_threads(), "bf16": args.bf16,
                "channels_last": args.channels_last, "compile": args.compile,
                "rounds": args.rounds, "seconds": seconds, "load_before": load,
                "load_after": after}  # fmt: skip
        with open(args.json, "w") as handle:
            json.dump({"meta": meta, "rows": [asdict(r) for r in rows]}, handle, indent=1)
    return rows


if __name__ == "__main__":
    main()

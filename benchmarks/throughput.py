"""Engine overhead: the full training / inference loop against the bare model, in images/s.

(a) Training: `Engine.batches` (a resident uint8 split, crop-flip augmentation) feeding
`Engine.train_epoch`, against the bare step (forward, cross-entropy, backward, SGD step) on one
resident random float batch of the same shape, with the same model and the same optimiser.
(b) Inference: `Engine.logits` on a uint8 split against bare `model(x)` under inference_mode
on one resident float chunk of the engine's inference chunk size.

The bare batches take the memory layout the engine feeds (channels-last where it uses it), so
a training ratio measures the engine's own overhead; the loop feeds uint8 images, so its figure
also holds the model's uint8-to-float normalisation, which the float bare batch skips. The
inference loop runs the engine's inference graph (batch norm folded, oneDNN regions on the CPU)
and the bare pass the model as built, so that ratio also holds what the graph gains. On the CPU
the batches and steps are cut to keep the default run to a few minutes (the small-stem ResNet
at 64 px trains at ~13 img/s on 2 cores: batch 16, 3 steps); on a GPU they are full size. Loop and bare runs alternate over `--rounds`
rounds (the first of each pair alternating too); rates are medians over the rounds and each
ratio is the median of the per-round ratios, which keeps them fair on a shared machine.

    python benchmarks/throughput.py                      # CPU or GPU, every model
    python benchmarks/throughput.py --device cpu --models cnn --steps 20 --json out.json
    python benchmarks/throughput.py --bf16 --channels-last --compile
    python benchmarks/throughput.py --bf16-accuracy 5 --data-root ../shared/data

`--bf16-accuracy EPOCHS` instead trains the default experiment's model (small CNN, its recipe
with EPOCHS epochs) on the real BloodMNIST in float32 and under bf16 autocast, seed by seed
(alternating), and prints each run's test accuracy and training images/s.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from medunlearn.augment import build_augment
from medunlearn.config import ModelConfig, RuntimeConfig, default_experiment
from medunlearn.data import Split, load_dataset
from medunlearn.engine import Engine
from medunlearn.metrics.accuracy import accuracy
from medunlearn.models import build_model
from medunlearn.training import train_model
from timing import timed

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
        Spec("cnn", "cnn", 28, (256, 10, 1024, 8), (256, 50, 1024, 20)),
        Spec("resnet18", "resnet18", 28, (128, 6, 1024, 4), (256, 50, 1024, 20)),
        Spec("resnet18-small", "resnet18-small", 28, (64, 3, 256, 3), (256, 30, 1024, 10)),
        Spec("resnet18-small@64", "resnet18-small", 64, (16, 3, 48, 3), (256, 20, 1024, 5)),
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


def _cpu_name() -> str:
    """The CPU model, from /proc/cpuinfo where there is one."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _uint8_split(n: int, size: int, seed: int) -> Split:
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(
        0, 256, (n, CHANNELS, size, size), dtype=torch.uint8, generator=generator
    )
    return Split(images, torch.randint(0, CLASSES, (n,), generator=generator))


def _alternate(
    rounds: int, device: torch.device, loop: Callable[[], object], bare: Callable[[], object]
) -> tuple[list[float], list[float]]:
    """Seconds of `loop` and `bare` per round, alternating which runs first."""
    loop_s, bare_s = [], []
    for r in range(rounds):
        if r % 2:
            bare_s.append(timed(bare, device))
            loop_s.append(timed(loop, device))
        else:
            loop_s.append(timed(loop, device))
            bare_s.append(timed(bare, device))
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

    x = engine._memory_format(torch.rand(batch, CHANNELS, spec.size, spec.size, device=device))
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

    # whole chunks of the engine's size (on the CPU it caps eval_batch_size to stay in cache)
    per_chunk = engine.inference_chunk(torch.empty(0, CHANNELS, spec.size, spec.size))
    chunks = max(1, round(eval_batch * chunks / per_chunk))
    eval_split = _uint8_split(per_chunk * chunks, spec.size, seed=2)
    chunk = engine._memory_format(torch.rand(per_chunk, CHANNELS, spec.size, spec.size), True)
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
    evaluation = _rates(len(eval_split), loop_s, bare_s)
    return Row(spec.name, spec.size, batch, steps, *train, per_chunk, len(eval_split),
               *evaluation)  # fmt: skip


def bf16_accuracy(args: argparse.Namespace, device: torch.device) -> list[dict]:
    """Test accuracy and training speed of the default model with and without bf16."""
    default = default_experiment()
    data = dataclasses.replace(default.data, root=args.data_root)
    dataset = load_dataset(data, download=False)
    recipe = dataclasses.replace(default.train, epochs=args.bf16_accuracy)
    rows = torch.arange(len(dataset.train))
    results = []
    for seed in args.seeds:
        for bf16 in (False, True):
            runtime = RuntimeConfig(
                device=str(device), threads=args.threads, bf16=bf16,
                channels_last=args.channels_last, compile=args.compile,
            )  # fmt: skip
            engine = Engine(runtime)
            torch.manual_seed(seed)
            model = build_model(default.model, dataset.channels, dataset.n_classes)
            began = time.perf_counter()
            trained = train_model(model, dataset, rows, recipe, engine, seed)
            seconds = time.perf_counter() - began
            test = accuracy(engine.logits(trained.model, dataset.test.images), dataset.test.labels)
            results.append({"seed": seed, "bf16": bf16, "test_acc": test,
                            "best_val": trained.best_val, "best_epoch": trained.best_epoch,
                            "seconds": seconds,
                            "img_per_s": recipe.epochs * len(rows) / seconds})  # fmt: skip
            print(
                f"seed {seed}  bf16 {bf16!s:5}  test acc {test:6.2f}%  best val "
                f"{trained.best_val:6.2f}% (epoch {trained.best_epoch})  {seconds:6.1f} s  "
                f"{results[-1]['img_per_s']:7.1f} train img/s (validation included)",
                flush=True,
            )
    for bf16 in (False, True):
        runs = [r for r in results if r["bf16"] == bf16]
        print(
            f"bf16 {bf16!s:5}  mean test acc {statistics.mean(r['test_acc'] for r in runs):6.2f}%"
            f"  mean {statistics.mean(r['img_per_s'] for r in runs):7.1f} img/s"
        )
    return results


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
    parser.add_argument("--rounds", type=int, default=4, help="alternating loop/bare rounds")
    parser.add_argument("--warmup", type=int, default=None, help="warm-up steps (CPU 1, GPU 10)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: all)")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast")
    parser.add_argument("--channels-last", action="store_true", help="channels-last model")
    parser.add_argument("--compile", action="store_true", help="torch.compile the training step")
    parser.add_argument("--json", default=None, help="write the results to this JSON file")
    parser.add_argument("--bf16-accuracy", type=int, default=None, metavar="EPOCHS",
                        help="instead: test accuracy with and without bf16 on BloodMNIST")  # fmt: skip
    parser.add_argument("--data-root", default=None, help="folder of bloodmnist.npz")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    args = parser.parse_args(argv)
    device = Engine(RuntimeConfig(device=args.device, threads=args.threads)).device
    load = os.getloadavg()
    if args.bf16_accuracy:
        results = bf16_accuracy(args, device)
        print(f"load average {load[0]:.2f} before, {os.getloadavg()[0]:.2f} after")
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=1))
        return []
    began = time.perf_counter()
    rows = [measure(SPECS[name], args, device) for name in args.models]
    seconds = time.perf_counter() - began
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name()
    print(
        f"device {device} ({name}), torch {torch.__version__}, "
        f"threads {torch.get_num_threads()}, bf16 {args.bf16}, channels_last "
        f"{args.channels_last}, compile {args.compile}, crop-flip, {args.rounds} rounds"
    )
    print(table(rows))
    after = os.getloadavg()
    print(
        f"steps: train steps per round (ratio = loop / bare); eval n/batch: images per round / "
        f"chunk. {seconds:.0f} s; load average {load[0]:.2f} before, {after[0]:.2f} after"
    )
    if device.type == "cpu":
        print("CPU: batches and steps cut short to keep the run brief (see the batch column)")
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

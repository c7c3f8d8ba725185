"""Engine overhead: the full training / inference loop against the bare model, in images/s.

(a) Training: `Engine.batches` (a resident uint8 split, crop-flip augmentation) feeding
`training.train_one_epoch`, against the bare step (forward, cross-entropy, backward, SGD step) on one
resident random float batch of the same shape, with the same model and the same optimiser.
(b) Inference, per model, each in images/s and as a ratio to the bare eager forward:
- bare: `model(x)` under inference_mode on one resident float chunk of the engine's CPU
  inference size (channels-last on the CPU), as many times as the split has chunks;
- nchw: the same with NCHW float chunks of `eval_batch_size` (the layout and size the CPU
  chunking replaced);
- ours: batch norm folded and conv regions on oneDNN tensors (`inference_model(model,
  onednn=True)`, built per call as the weights may have changed), channels-last chunks of the
  engine's size, on the uint8 split;
- library: the same loop with `torch.fx.experimental.optimization.optimize_for_inference`
  (conv-bn fusion, dropout removal, oneDNN layout) applied to the network behind `Normalize`;
- engine: `Engine.logits` on the path `runtime.inference_path: auto` resolves to here;
- one column per inference path (eager, folded, onednn): `Engine.logits` pinned to that path,
  so a user can pin the fastest in `runtime.inference_path` (a study never picks one by timing,
  which could differ between two runs); ours and library also show their build time per call.

The bare batches take the memory layout the engine feeds (channels-last where it uses it), so
a training ratio measures the engine's own overhead; the loops feed uint8 images, so their
figures also hold the model's uint8-to-float normalisation, which the float bare batch skips.
On the CPU the batches and steps are cut to keep the default run to a few minutes (the
small-stem ResNet at 64 px trains at ~13 img/s on 2 cores: batch 16, 3 steps); on a GPU they
are full size. The measured runs interleave over `--rounds` rounds (training: loop and bare,
the first of each pair alternating; inference: all five, the order rotating each round); rates
are medians over the rounds and each ratio is the median of the per-round ratios, which keeps
them fair on a shared machine. ours and library need float32 on a CPU with oneDNN ("-" else).

    python benchmarks/throughput.py                      # CPU or GPU, every model
    python benchmarks/throughput.py --device cpu --models cnn --steps 20 --json out.json
    python benchmarks/throughput.py --bf16 --channels-last --compile
    python benchmarks/throughput.py --device cpu --inference-only --models cnn resnet18 resnet18-small
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
from torch import nn
from torch.backends import mkldnn
from torch.fx.experimental.optimization import optimize_for_inference

from medunlearn.augment import build_augment
from medunlearn.config import ModelConfig, RuntimeConfig, default_experiment
from medunlearn.data import Split, load_dataset
from medunlearn.engine import Engine
from medunlearn.inference import PATHS
from medunlearn.metrics.accuracy import accuracy
from medunlearn.models import build_model, inference_model
from medunlearn.training import train_model, train_one_epoch
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
    train_loop: float | None  # None with --inference-only
    train_bare: float | None
    train_ratio: float | None
    eval_batch: int
    eval_images: int
    eval_loop: float  # the engine's logits on the path auto resolves to
    eval_bare: float
    eval_ratio: float
    eval_nchw: float
    nchw_ratio: float
    eval_ours: float | None  # None where oneDNN does not apply (GPU, bf16)
    ours_ratio: float | None
    eval_library: float | None
    library_ratio: float | None
    ours_build_ms: float | None
    library_build_ms: float | None
    auto_path: str
    paths: dict[str, float]  # images/s of Engine.logits pinned to each path


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


def _interleave(
    rounds: int, device: torch.device, runs: dict[str, Callable[[], object]]
) -> dict[str, list[float]]:
    """Seconds of each run per round, all runs in each round, the order rotating by one."""
    names = list(runs)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            seconds[name].append(timed(runs[name], device))
    return seconds


def library_graph(model: nn.Module) -> nn.Module:
    """`optimize_for_inference` on the network behind `Normalize` (fx's default tracer, which
    the library's passes use, cannot trace Normalize's test of the input dtype)."""
    return nn.Sequential(model[0], optimize_for_inference(model[1]))


def _build_ms(build: Callable[[nn.Module], nn.Module], model: nn.Module) -> float:
    """Median milliseconds of building an inference graph, over three builds."""
    times = []
    for _ in range(3):
        began = time.perf_counter()
        build(model)
        times.append(time.perf_counter() - began)
    return 1000 * statistics.median(times)


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
        return train_one_epoch(model, loss_fn, optimizer, batches, engine, 0)

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
    train: tuple[float | None, ...] = (None, None, None)
    if not args.inference_only:
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
    nchw_chunk = torch.rand(eval_batch, CHANNELS, spec.size, spec.size, device=device)
    nchw_chunks = max(1, round(len(eval_split) / eval_batch))

    def eval_loop() -> torch.Tensor:
        return engine.logits(model, eval_split.images)

    @torch.inference_mode()
    def eval_bare(x: torch.Tensor = chunk, n: int = chunks) -> None:
        model.eval()
        for _ in range(n):
            with engine.autocast():
                model(x)

    def graph_loop(build: Callable[[nn.Module], nn.Module]) -> Callable[[], object]:
        @torch.inference_mode()
        def run() -> torch.Tensor:  # as the engine ran before: a graph built for each call
            graph = build(model.eval())
            images = eval_split.images.to(device)
            return torch.cat(
                [graph(engine._memory_format(c, True)) for c in images.split(per_chunk)]
            )

        return run

    runs = {"engine": eval_loop, "bare": eval_bare,
            "nchw": lambda: eval_bare(nchw_chunk, nchw_chunks)}  # fmt: skip
    graphs = device.type == "cpu" and not args.bf16 and mkldnn.is_available()
    if graphs:
        runs["ours"] = graph_loop(lambda m: inference_model(m, onednn=True))
        runs["library"] = graph_loop(library_graph)
    pinned = [path for path in PATHS if path != "onednn" or graphs]
    for path in pinned:
        path_engine = Engine(dataclasses.replace(runtime, inference_path=path))
        runs[f"path {path}"] = lambda e=path_engine: e.logits(model, eval_split.images)
    for run in runs.values():
        run()
    seconds = _interleave(args.rounds, device, runs)
    n_eval = len(eval_split)

    def rate(name: str, images: int = n_eval) -> tuple[float | None, float | None]:
        if name not in seconds:
            return None, None
        ratio = statistics.median(
            b / a for a, b in zip(seconds[name], seconds["bare"], strict=True)
        )
        ratio *= images / n_eval  # the nchw run covers about as many images, not exactly
        return images / statistics.median(seconds[name]), ratio

    builds = (_build_ms(lambda m: inference_model(m, onednn=True), model),
              _build_ms(library_graph, model)) if graphs else (None, None)  # fmt: skip
    engine_rate, engine_ratio = rate("engine")
    paths = {path: rate(f"path {path}")[0] for path in pinned}
    return Row(spec.name, spec.size, batch, steps, *train, per_chunk, n_eval, engine_rate,
               n_eval / statistics.median(seconds["bare"]), engine_ratio,
               *rate("nchw", nchw_chunks * eval_batch), *rate("ours"), *rate("library"), *builds,
               engine.inference_path, paths)  # fmt: skip


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


def _aligned(head: list[str], body: list[list[str]]) -> str:
    """An aligned text table: the first column left-aligned, the others right-aligned."""
    widths = [max(len(line[i]) for line in [head, *body]) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in
                       enumerate(zip(line, widths, strict=True))) for line in [head, *body]]  # fmt: skip
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _rate(rate: float | None, ratio: float | None = None) -> str:
    """`img/s (ratio to bare)`, or "-" where the run does not apply."""
    if rate is None:
        return "-"
    return f"{rate:.1f}" if ratio is None else f"{rate:.1f} ({100 * ratio:.0f}%)"


def table(rows: list[Row]) -> str:
    """The training table (unless --inference-only) and the inference table."""
    tables = []
    if any(r.train_loop is not None for r in rows):
        head = ["model", "px", "batch", "steps", "train img/s", "bare img/s", "ratio"]
        body = [[r.model, str(r.px), str(r.batch), str(r.steps), _rate(r.train_loop),
                 _rate(r.train_bare), _rate(None) if r.train_ratio is None else
                 f"{100 * r.train_ratio:.1f}%"] for r in rows]  # fmt: skip
        tables.append(_aligned(head, body))
    head = ["model", "px", "eval n/chunk", "bare img/s", "nchw", "ours", "library", "engine",
            "auto path", "build ms ours/lib"]  # fmt: skip
    body = [
        [r.model, str(r.px), f"{r.eval_images}/{r.eval_batch}", _rate(r.eval_bare),
         _rate(r.eval_nchw, r.nchw_ratio), _rate(r.eval_ours, r.ours_ratio),
         _rate(r.eval_library, r.library_ratio), _rate(r.eval_loop, r.eval_ratio), r.auto_path,
         "-" if r.ours_build_ms is None else f"{r.ours_build_ms:.0f}/{r.library_build_ms:.0f}"]
        for r in rows
    ]  # fmt: skip
    tables.append(_aligned(head, body))
    pinned = [f"  {r.model}: " + ", ".join(f"{path} {rate:.1f}" for path, rate in r.paths.items())
              for r in rows if r.paths]  # fmt: skip
    if pinned:
        tables.append(
            "img/s of Engine.logits pinned to each inference path (pin the fastest with "
            "runtime.inference_path; auto never times):\n" + "\n".join(pinned)
        )
    return "\n\n".join(tables)


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
    parser.add_argument("--inference-only", action="store_true", help="skip the training runs")
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
        f"steps: train steps per round (ratio = loop / bare); eval n/chunk: images per round / "
        f"chunk; (%) = img/s against bare. {seconds:.0f} s; load average {load[0]:.2f} before, "
        f"{after[0]:.2f} after"
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

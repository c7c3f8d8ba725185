"""The training and inference loop shared by training, Retrain and every unlearning method.

Data stays uint8 and is moved to the device once (`resident`); each batch is gathered by index
(`index_select`, no float copy of a split) and augmented on the device. No step waits on the
device: the loss is summed on the device and read once per epoch. On the CPU, inference feeds
channels-last chunks of at most ~200k pixels per channel (activations that stay in cache: about
3x faster for the small CNN than 1024-image NCHW chunks) and every model runs on the one path
of the study (`runtime.inference_path`, see `medunlearn.inference`). On CUDA,
splits that do not fit in half the free device memory stay on the host (a memory-mapped set):
each batch is gathered into pinned memory and copied without blocking. Process-wide settings
(threads, glibc's malloc thresholds, cuDNN / TF32 flags) are set once by `configure_process`.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn
from torch.backends import mkldnn

from medunlearn.augment import Augment
from medunlearn.config import ConfigError, RuntimeConfig
from medunlearn.data import Split
from medunlearn.inference import PATHS, resolve_path
from medunlearn.progress import NullProgress, Progress

LossFn = Callable[[torch.Tensor, "Batch"], torch.Tensor]
Forward = Callable[[nn.Module, torch.Tensor], torch.Tensor]

# a split moves to the GPU when it takes at most this share of the free device memory
DEVICE_SHARE = 0.5
# CPU inference chunks hold at most this many pixels per channel (256 images at 28 px): the
# activations then stay in cache, 2-3x faster than chunks of 1024 for the small CNN; with
# oneDNN regions 256 beats 128 by 5-7% for the small CNN and ResNet-18 (384 ties, 768 loses);
# on a 2-core AMD EPYC eager NCHW chunks of 1024 run at 34-84% of eager channels-last 256s
CPU_CHUNK_PIXELS = 256 * 28 * 28
# glibc's mallopt parameters, and the values pinned for CPU work: blocks up to 32 MiB (the
# largest mmap threshold glibc takes) come from the heap, and up to 1 GiB of freed heap is kept
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
TRIM_THRESHOLD, MMAP_THRESHOLD = 1 << 30, 32 << 20


@dataclass
class Batch:
    """One training batch on the device: (augmented) images, labels and their row ids."""

    images: torch.Tensor
    labels: torch.Tensor
    index: torch.Tensor


def resolve_device(name: str) -> torch.device:
    """`auto` picks CUDA when present, else the CPU; anything else is passed to torch."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("runtime.device is 'cuda' but no CUDA device is available")
    return device


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask where the platform has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def keep_freed_memory() -> bool:
    """Pin glibc's malloc thresholds so freed tensor memory is reused, not handed back.

    By default glibc maps blocks over 128 KiB afresh and unmaps them when freed (its dynamic
    thresholds follow the sizes seen), so each step touches its activations' pages anew: on a
    2-core host that was 15-20% of CPU time in page faults. Fixed thresholds, as
    MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ would set, remove those faults. Returns
    whether glibc took them (False on other C libraries, or when those variables are set).
    """
    if not sys.platform.startswith("linux"):
        return False
    if "MALLOC_MMAP_THRESHOLD_" in os.environ or "MALLOC_TRIM_THRESHOLD_" in os.environ:
        return False
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is None:
        return False
    trimmed = mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    return bool(trimmed and mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))


def _env_threads() -> int | None:
    """The thread count OMP_NUM_THREADS asks for (a Ray task's cores), if it is a number."""
    value = os.environ.get("OMP_NUM_THREADS", "")
    return int(value) if value.isdigit() and int(value) > 0 else None


def configure_process(runtime: RuntimeConfig) -> None:
    """Process-wide settings for the work a runtime config describes, set once by the CLI and
    `run`: on the CPU `runtime.threads` threads, else OMP_NUM_THREADS (a Ray job's cores), else
    one per usable core, and glibc's malloc thresholds pinned; on CUDA
    cuDNN's autotuner and TF32 matmuls."""
    if resolve_device(runtime.device).type == "cpu":
        torch.set_num_threads(runtime.threads or _env_threads() or usable_cores())
        keep_freed_memory()
    else:
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def _eager_forward(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """model(images): the training forward when nothing is compiled."""
    return model(images)


class Engine:
    """Runs models on one device: resident data, batched augmentation, train and infer loops."""

    def __init__(self, runtime: RuntimeConfig | None = None, progress: Progress | None = None):
        runtime = runtime or RuntimeConfig()
        self.device = resolve_device(runtime.device)
        self.bf16 = runtime.bf16
        self.channels_last = runtime.channels_last
        self.compile = runtime.compile
        self.eval_batch_size = runtime.eval_batch_size
        # float32 CPU inference may run conv regions on oneDNN tensors (models.onednn_layout)
        onednn = self.device.type == "cpu" and not self.bf16 and mkldnn.is_available()
        self.inference_path = resolve_path(
            runtime.inference_path, self.device.type == "cpu", onednn
        )
        self.progress = progress or NullProgress()
        # id(host tensor) -> (host tensor, its device copy, or None when it stays on the host)
        self._copies: dict[int, tuple[torch.Tensor, torch.Tensor | None]] = {}
        self._forward: Forward = _eager_forward
        self._compile_tried = False

    def generator(self, seed: int) -> torch.Generator:
        """A seeded generator on the device: shuffling and augmentation draw from it."""
        return torch.Generator(device=self.device).manual_seed(seed)

    # --- data on the device -------------------------------------------------------------------

    def _fits(self, tensor: torch.Tensor) -> bool:
        """Whether a host tensor may move to the device (CUDA: half its free memory at most)."""
        if self.device.type != "cuda":
            return True
        free, _total = torch.cuda.mem_get_info(self.device)
        return tensor.numel() * tensor.element_size() <= DEVICE_SHARE * free

    def _device_copy(self, tensor: torch.Tensor, required: bool = False) -> torch.Tensor | None:
        """The tensor on the device, moved once and reused; None when it must stay on the host."""
        if tensor.device == self.device:
            return tensor
        key = id(tensor)
        cached = self._copies.get(key)
        if cached is None or cached[0] is not tensor:
            moved = None
            if required or self._fits(tensor):
                # a normal tensor even when first moved by `logits` (under inference mode):
                # training batches are gathered from the same copy
                with torch.inference_mode(False):
                    moved = tensor.to(self.device, non_blocking=True)
            cached = self._copies[key] = (tensor, moved)
        return cached[1]

    def resident(self, split: Split) -> Split:
        """The split with images and labels on the device, moved once and then reused.

        On CUDA, images too large for the device stay on the host (e.g. a memory-mapped set):
        `batches` then gathers each batch there and copies it over through pinned memory.
        """
        if self.device.type == "cpu":
            return split
        images = self._device_copy(split.images)
        labels = self._device_copy(split.labels, required=True)
        return Split(split.images if images is None else images, labels)

    def _gather(self, images: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Rows of a host tensor on the CUDA device (only there do images stay on the host):
        gathered into pinned memory, copied non-blocking.

        The pinned block comes from torch's caching host allocator, which reuses it only once
        the copy reading it is done.
        """
        shape = (len(rows), *images.shape[1:])
        pinned = torch.empty(shape, dtype=images.dtype, pin_memory=True)
        torch.index_select(images, 0, rows, out=pinned)
        return pinned.to(self.device, non_blocking=True)

    def _memory_format(self, images: torch.Tensor, inference: bool = False) -> torch.Tensor:
        """Channels-last when asked, and always for CPU inference (oneDNN's fast layout)."""
        wanted = self.channels_last or (inference and self.device.type == "cpu")
        if wanted and images.ndim == 4:
            return images.contiguous(memory_format=torch.channels_last)
        return images

    # --- models -------------------------------------------------------------------------------

    def prepare(self, model: nn.Module) -> nn.Module:
        """Move a model to the device (channels-last where asked); set up compilation if asked.

        The model object itself is returned (same parameters, same state-dict keys). With
        `runtime.compile`, the training forward (`forward`) runs through `torch.compile`; when the
        compiler is missing or fails, training goes on eagerly after one logged message.
        """
        model = model.to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        if self.compile and not self._compile_tried:
            self._compile_tried = True
            self._forward = self._compiled_forward()
        return model

    def _compiled_forward(self) -> Forward:
        """`model(images)` through torch.compile, falling back to eager on any compiler error.

        One compiled function takes the module as an argument, so no compiled wrapper is kept
        per model (a wrapper would be copied by `copy.deepcopy(model)` and pin the model).
        """
        try:
            compiled = torch.compile(_eager_forward)
        except Exception as error:  # unsupported Python / platform: torch raises RuntimeError
            self.progress.log(f"torch.compile unavailable ({error}); training runs eagerly")
            return _eager_forward
        from torch._dynamo.exc import TorchDynamoException

        def forward(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
            try:
                return compiled(model, images)
            except TorchDynamoException as error:  # compilation failed: nothing ran yet
                self.progress.log(f"torch.compile failed ({error}); training runs eagerly")
                self._forward = _eager_forward
                return model(images)

        return forward

    def forward(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        """The training forward `model(images)`: through torch.compile when it is enabled."""
        return self._forward(model, images)

    def autocast(self) -> contextlib.AbstractContextManager:
        """bf16 autocast when enabled, else nothing."""
        if not self.bf16:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def synchronize(self) -> None:
        """Wait for the device's queued work (CUDA), so a wall-clock time is the real one."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def sgd(self, model: nn.Module, lr: float, momentum: float, weight_decay: float):
        """SGD over the model's parameters (fused kernels on CUDA)."""
        fused = {"fused": True} if self.device.type == "cuda" else {}
        return torch.optim.SGD(
            model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay, **fused
        )

    # --- loops --------------------------------------------------------------------------------

    def batches(
        self,
        split: Split,
        indices: torch.Tensor,
        batch_size: int,
        generator: torch.Generator,
        augment: Augment | None = None,
        shuffle: bool = True,
    ) -> Iterator[Batch]:
        """Batches of the rows `indices` of a split, shuffled and augmented on the device.

        The permutation is drawn when the first batch is asked for, then each batch's
        augmentation, in batch order: the generator's draws are those of a plain loop.
        """
        data = self.resident(split)
        indices = indices.to(self.device)
        if shuffle:
            order = torch.randperm(len(indices), generator=generator, device=self.device)
            indices = indices[order]
        on_host = data.images.device != self.device
        host_rows = indices.cpu() if on_host else None
        for start in range(0, len(indices), batch_size):
            rows = indices[start : start + batch_size]
            if host_rows is None:
                images = data.images.index_select(0, rows)
            else:
                images = self._gather(data.images, host_rows[start : start + batch_size])
            if augment is not None:
                images = augment(images, generator)
            yield Batch(self._memory_format(images), data.labels.index_select(0, rows), rows)

    def inference_chunk(self, images: torch.Tensor) -> int:
        """Images per inference chunk: eval_batch_size, capped on the CPU to stay in cache."""
        if self.device.type != "cpu" or images.ndim != 4:
            return self.eval_batch_size
        pixels = images.shape[-1] * images.shape[-2]
        return max(1, min(self.eval_batch_size, CPU_CHUNK_PIXELS // pixels))

    @torch.inference_mode()
    def logits(self, model: nn.Module, images: torch.Tensor, description: str = "") -> torch.Tensor:
        """Float32 logits of every image (eval mode, no augmentation), gathered on the CPU.

        The model is moved to the device first (a model loaded from a checkpoint may not be),
        set to eval mode and run on the study's inference path (`inference_path`), in chunks.
        The progress task counts images.
        """
        model = self.prepare(model).eval()
        source = self._device_copy(images)
        source = images if source is None else source
        graph = PATHS[self.inference_path](model)
        size = self.inference_chunk(images)
        outputs = []
        with self.progress.task(description or "inference", len(source)) as task:
            for start in range(0, len(source), size):
                chunk = source[start : start + size]
                if chunk.device != self.device:
                    chunk = chunk.pin_memory().to(self.device, non_blocking=True)
                with self.autocast():
                    outputs.append(graph(self._memory_format(chunk, inference=True)).float())
                task.advance(len(chunk))
        return torch.cat(outputs).cpu() if outputs else torch.empty(0)


def n_batches(n_rows: int, batch_size: int) -> int:
    """How many batches `Engine.batches` yields for n rows."""
    return -(-n_rows // batch_size)

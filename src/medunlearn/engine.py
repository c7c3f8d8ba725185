"""The training and inference loop shared by training, Retrain and every unlearning method."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from medunlearn.augment import Augment
from medunlearn.config import RuntimeConfig
from medunlearn.data import Split
from medunlearn.progress import NullProgress, Progress

LossFn = Callable[[torch.Tensor, "Batch"], torch.Tensor]


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
        raise ValueError("runtime.device is 'cuda' but no CUDA device is available")
    return device


class Engine:
    """Runs models on one device: resident data, batched augmentation, train and infer loops."""

    def __init__(self, runtime: RuntimeConfig | None = None, progress: Progress | None = None):
        runtime = runtime or RuntimeConfig()
        self.device = resolve_device(runtime.device)
        self.bf16 = runtime.bf16
        self.channels_last = runtime.channels_last
        self.compile = runtime.compile
        self.eval_batch_size = runtime.eval_batch_size
        self.progress = progress or NullProgress()
        self._resident: dict[int, tuple[Split, Split]] = {}
        if self.device.type == "cpu":
            torch.set_num_threads(runtime.threads or len(os.sched_getaffinity(0)))
        else:
            torch.backends.cudnn.benchmark = True
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True

    def generator(self, seed: int) -> torch.Generator:
        """A seeded generator on the device: shuffling and augmentation draw from it."""
        return torch.Generator(device=self.device).manual_seed(seed)

    def resident(self, split: Split) -> Split:
        """The split with images and labels on the device, moved once and then reused."""
        if self.device.type == "cpu":
            return split
        key = id(split)
        if key not in self._resident or self._resident[key][0] is not split:
            moved = Split(
                split.images.to(self.device, non_blocking=True),
                split.labels.to(self.device, non_blocking=True),
            )
            self._resident[key] = (split, moved)
        return self._resident[key][1]

    def prepare(self, model: nn.Module) -> nn.Module:
        """Move a model to the device (channels-last where asked)."""
        model = model.to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        return model

    def autocast(self) -> contextlib.AbstractContextManager:
        """bf16 autocast when enabled, else nothing."""
        if not self.bf16:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def sgd(self, model: nn.Module, lr: float, momentum: float, weight_decay: float):
        """SGD over the model's parameters (fused kernels on CUDA)."""
        fused = {"fused": True} if self.device.type == "cuda" else {}
        return torch.optim.SGD(
            model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay, **fused
        )

    def batches(
        self,
        split: Split,
        indices: torch.Tensor,
        batch_size: int,
        generator: torch.Generator,
        augment: Augment | None = None,
        shuffle: bool = True,
    ) -> Iterator[Batch]:
        """Batches of the rows `indices` of a split, shuffled and augmented on the device."""
        data = self.resident(split)
        indices = indices.to(self.device)
        if shuffle:
            order = torch.randperm(len(indices), generator=generator, device=self.device)
            indices = indices[order]
        for rows in indices.split(batch_size):
            images = data.images[rows]
            if augment is not None:
                images = augment(images, generator)
            if self.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            yield Batch(images, data.labels[rows], rows)

    def train_epoch(
        self,
        model: nn.Module,
        batches: Iterable[Batch],
        optimizer: torch.optim.Optimizer,
        loss_fn: LossFn,
        after_step: Callable[[], None] | None = None,
        description: str = "train",
        total: int | None = None,
    ) -> float:
        """One pass over `batches`: forward, loss, backward, step; returns the mean loss."""
        model.train()
        loss_sum = torch.zeros((), device=self.device)
        steps = 0
        with self.progress.task(description, total) as task:
            for batch in batches:
                with self.autocast():
                    loss = loss_fn(model(batch.images), batch)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if after_step is not None:
                    after_step()
                loss_sum += loss.detach().float()
                steps += 1
                task.advance()
        return float(loss_sum) / max(steps, 1)

    @torch.inference_mode()
    def logits(self, model: nn.Module, images: torch.Tensor, description: str = "") -> torch.Tensor:
        """Float32 logits of every image (eval mode, no augmentation), gathered on the CPU."""
        model.eval()
        outputs = []
        chunks = images.split(self.eval_batch_size)
        with self.progress.task(description or "inference", len(chunks)) as task:
            for chunk in chunks:
                chunk = chunk.to(self.device, non_blocking=True)
                if self.channels_last:
                    chunk = chunk.contiguous(memory_format=torch.channels_last)
                with self.autocast():
                    outputs.append(model(chunk).float().cpu())
                task.advance()
        return torch.cat(outputs) if outputs else torch.empty(0)


def n_batches(n_rows: int, batch_size: int) -> int:
    """How many batches `Engine.batches` yields for n rows."""
    return -(-n_rows // batch_size)

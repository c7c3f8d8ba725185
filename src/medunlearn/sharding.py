"""Sharded, sliced training (SISA: Bourtoule et al., "Machine Unlearning", IEEE S&P 2021) and
the exact deletion it allows.

The training split is cut once into S shards, stratified by class and keeping each patient's
images together where the data has a mapping, and each shard into R slices, stratified too
(`assign_layout`: drawn on the whole split with a seed, so removing images moves no other
image). Shard k's model is trained by the one fit loop stage by stage: stage r trains on the
shard's slices 0..r (`slice_epochs` sets its epochs), and the model after each stage is
checkpointed. The shards answer as one module (`ShardedModel`). Deleting images retrains, in
each shard that held one, the stages from the first slice that held one, starting from the
checkpoint before it (`forget`).

Why the result is exact (bitwise the model trained from the start without the images, on the
same device and threads): each stage is a function of what it starts from and of its rows
only. It starts from the previous stage's checkpoint (the first from the shard's initial
weights, seeded by (seed, shard)), builds a fresh optimizer and schedule, draws its batches and
augmentation from a generator seeded by (seed, shard, slice), and trains on the shard's kept
images of slices 0..r, which the fixed layout determines. The stages before the first slice
holding a forgotten image have the same inputs with and without it, so the same checkpoints;
from that slice on, both train the same rows from the same checkpoint.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from medunlearn.config import ModelConfig, Recipe, TrainConfig, UserError, from_dict, to_dict
from medunlearn.data import Dataset
from medunlearn.engine import Batch, Engine
from medunlearn.models import build_model, load_weights, model_meta
from medunlearn.seeds import derived_seed
from medunlearn.store import (
    Store,
    atomic_write,
    cache_key,
    file_sha256,
    load_checkpoint,
    save_checkpoint,
)
from medunlearn.training import cross_entropy, fit, rows_batches

# the buffers of a ShardedModel that hold its layout, one value per training image
LAYOUT_BUFFERS = ("shard_of", "slice_of", "group_of", "removed")
# what a row of an exact deletion says about it (see `deletion_columns`)
DELETION_COLUMNS = (
    "shards",
    "slices",
    "shards_retrained",
    "slices_retrained",
    "shards_expected",
    "retrain_share",
    "retrain_share_expected",
)


class ShardingError(UserError):
    """Sharded training or an exact deletion that cannot be done as asked."""


# --- where each image sits ----------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """Where every training image sits: its shard, its slice within the shard, its group (its
    patient; each image its own without a mapping), and whether a deletion removed it."""

    shard: np.ndarray
    slice: np.ndarray
    group: np.ndarray
    removed: np.ndarray
    shards: int
    slices: int

    def rows(self, shard: int, stage: int) -> np.ndarray:
        """The kept training ids of a shard's slices 0..stage, in increasing order: what stage
        `stage` trains on."""
        return np.flatnonzero((self.shard == shard) & (self.slice <= stage) & ~self.removed)

    def without(self, ids: np.ndarray) -> Layout:
        """The same layout with the training ids `ids` removed (nothing else moves)."""
        removed = self.removed.copy()
        removed[np.asarray(ids, dtype=np.int64)] = True
        return dataclasses.replace(self, removed=removed)

    def first_slices(self, ids: np.ndarray) -> dict[int, int]:
        """Shard -> the first slice holding one of the kept ids `ids`: where a deletion of
        them restarts each shard it touches."""
        ids = np.asarray(ids, dtype=np.int64)
        kept = ids[~self.removed[ids]]
        first: dict[int, int] = {}
        for shard, part in zip(self.shard[kept].tolist(), self.slice[kept].tolist(), strict=True):
            first[shard] = min(part, first.get(shard, part))
        return dict(sorted(first.items()))

    def buffers(self) -> dict[str, torch.Tensor]:
        """The layout as the tensors a ShardedModel keeps in its state (and checkpoint): copies,
        so that no two share memory."""
        values = (self.shard, self.slice, self.group, self.removed)
        return {
            name: torch.tensor(array) for name, array in zip(LAYOUT_BUFFERS, values, strict=True)
        }


def _units(labels: np.ndarray, groups: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Each image's unit (its group, numbered from 0) and each unit's class: the most common
    label among its images (the lowest on a tie)."""
    if groups is None:
        return np.arange(labels.size), labels.astype(np.int64)
    _, unit_of = np.unique(np.asarray(groups), return_inverse=True)
    counts = np.zeros((unit_of.max() + 1, labels.max() + 1), dtype=np.int64)
    np.add.at(counts, (unit_of, labels), 1)
    return unit_of, counts.argmax(axis=1)


def _deal(
    classes: np.ndarray, sizes: np.ndarray, bins: int, rng: np.random.Generator
) -> np.ndarray:
    """A bin for each unit, the units taken in a random order, each put where its class has
    the fewest images so far (then the fewest images in all, then the lowest bin): every bin
    gets an equal share of every class, within one unit."""
    per_class = np.zeros((bins, int(classes.max()) + 1), dtype=np.int64)
    totals = np.zeros(bins, dtype=np.int64)
    chosen = np.empty(classes.size, dtype=np.int64)
    for unit in rng.permutation(classes.size).tolist():
        label = classes[unit]
        target = int(np.lexsort((np.arange(bins), totals, per_class[:, label]))[0])
        chosen[unit] = target
        per_class[target, label] += sizes[unit]
        totals[target] += sizes[unit]
    return chosen


def assign_layout(
    labels: np.ndarray, shards: int, slices: int, seed: int, groups: np.ndarray | None = None
) -> Layout:
    """Cut the training images into `shards` shards and each shard into `slices` slices, both
    stratified by class and seeded; with `groups` (a patient per image) a group's images share
    one shard and one slice. Refuses more shards than a class has units (images, or patients)
    and more slices than a shard has units."""
    labels = np.asarray(labels, dtype=np.int64)
    unit_of, classes = _units(labels, groups)
    sizes = np.bincount(unit_of)
    what = "patients" if groups is not None else "images"
    present = np.unique(classes)
    counts = np.bincount(classes)[present]
    if shards > counts.min():
        smallest = int(present[counts.argmin()])
        raise ShardingError(
            f"train.shards ({shards}) exceeds the {counts.min()} training {what} of class "
            f"{smallest}, the smallest: every shard must hold every class; lower train.shards"
        )
    rng = np.random.default_rng(seed)
    unit_shard = _deal(classes, sizes, shards, rng)
    unit_slice = np.empty(classes.size, dtype=np.int64)
    for shard in range(shards):
        members = np.flatnonzero(unit_shard == shard)
        if slices > members.size:
            raise ShardingError(
                f"train.slices ({slices}) exceeds the {members.size} {what} of shard "
                f"{shard + 1}: every slice must hold at least one; lower train.slices"
            )
        unit_slice[members] = _deal(classes[members], sizes[members], slices, rng)
    removed = np.zeros(labels.size, dtype=bool)
    return Layout(unit_shard[unit_of], unit_slice[unit_of], unit_of, removed, shards, slices)


# --- how long each slice trains -----------------------------------------------------------------


def slice_epochs(epochs: int, slices: int) -> list[int]:
    """The epochs of each stage, so that the S shards together cost what training the whole
    model for `epochs` epochs costs, and each stage costs the same.

    Stage r (1-based) trains on r of the shard's R slices, about r/R of its images, so an
    epoch of it costs r/R of an epoch over the shard. Each stage is given E/R shard-epochs of
    work: about E/r epochs (12 epochs, 4 slices: 12, 6, 4, 3), rounded so that the running
    total of work stays nearest r E/R, at least one each. A shard then costs E epochs over its
    own images, and the S shards E epochs over the training split: the unsharded training's
    cost. (SISA's reference code gives each slice about 2E/(R+1) epochs instead, the same
    total with more of it in the last stages, which every deletion retrains; equal stages
    make a deletion that restarts at slice r cost (R - r + 1)/R of its shard.)"""
    done, epochs_of = 0.0, []
    for stage in range(1, slices + 1):
        epochs_now = max(1, round((epochs * stage / slices - done) * slices / stage))
        epochs_of.append(epochs_now)
        done += epochs_now * stage / slices
    return epochs_of


def stage_recipe(recipe: TrainConfig, epochs: int) -> Recipe:
    """The SGD recipe of one stage: the training recipe's, for that stage's epochs."""
    values = {spec.name: getattr(recipe, spec.name) for spec in dataclasses.fields(Recipe)}
    return Recipe(**{**values, "epochs": epochs})


def layout_seed(seed: int) -> int:
    """The seed of the layout of a sharded model trained with `seed`."""
    return derived_seed(seed, "layout")


def shard_seed(seed: int, shard: int, stage: int | None = None) -> int:
    """The seed of a shard's initial weights (stage None) or of one stage's batches and
    augmentation."""
    return derived_seed(seed, f"shard-{shard}" + ("" if stage is None else f"-slice-{stage}"))


# --- the model the shards make ------------------------------------------------------------------


@dataclass(frozen=True)
class SliceCheckpoint:
    """A shard's model after one stage: its file, that file's SHA-256, and the seconds the
    stage trained."""

    path: Path
    sha256: str
    seconds: float


@dataclass
class Sharding:
    """How a sharded model was trained and where its slice checkpoints are: the recipe (with
    S, R and the aggregate), the seed, each shard's checkpoint after each stage, and the
    (shard, slice) stages its last deletion retrained (None: no deletion)."""

    recipe: TrainConfig
    seed: int
    checkpoints: list[list[SliceCheckpoint]]
    retrained: list[tuple[int, int]] | None = None

    @property
    def seconds(self) -> float:
        """What training every stage of every shard took."""
        return sum(c.seconds for shard in self.checkpoints for c in shard)

    def meta(self, folder: Path) -> dict:
        """The checkpoint metadata of this sharding, slice files named relative to `folder`
        (the aggregate checkpoint's), each with its SHA-256."""
        checkpoints = [
            [{"path": os.path.relpath(c.path, folder), "sha256": c.sha256, "seconds": c.seconds}
             for c in shard]
            for shard in self.checkpoints
        ]  # fmt: skip
        return {"recipe": to_dict(self.recipe), "seed": self.seed, "checkpoints": checkpoints,
                "retrained": self.retrained}  # fmt: skip

    @classmethod
    def from_meta(cls, meta: dict, folder: Path) -> Sharding:
        """The sharding a checkpoint in `folder` records (see `meta`)."""
        checkpoints = [
            [SliceCheckpoint(Path(os.path.normpath(folder / c["path"])), c["sha256"],
                             c["seconds"]) for c in shard]
            for shard in meta["checkpoints"]
        ]  # fmt: skip
        retrained = meta.get("retrained")
        return cls(
            from_dict(TrainConfig, meta["recipe"], "sharding.recipe"), int(meta["seed"]),
            checkpoints, None if retrained is None else [tuple(s) for s in retrained],
        )  # fmt: skip


class ShardedModel(nn.Module):
    """The shard models answering as one classifier, whose outputs are log-probabilities (so
    every metric and attack reads them as logits): the log of the mean of the shards' softmax,
    or with `vote` the shards' majority vote, its ties broken by that mean (which also keeps
    every class's probability above 0, so the logs stay finite). Its buffers hold the layout,
    so its checkpoint carries it; `sharding` says how it was trained and where its slice
    checkpoints are."""

    def __init__(
        self, shards: Sequence[nn.Module], layout: Layout, vote: bool, sharding: Sharding
    ) -> None:
        super().__init__()
        self.shards = nn.ModuleList(shards)
        self.vote = vote
        self.log_shards = math.log(len(shards))
        for name, tensor in layout.buffers().items():
            self.register_buffer(name, tensor)
        self.sharding = sharding

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        log_probs = torch.stack([F.log_softmax(shard(images).float(), -1) for shard in self.shards])
        mean = torch.logsumexp(log_probs, 0) - self.log_shards
        if not self.vote:
            return mean
        choices = log_probs.argmax(-1, keepdim=True)
        votes = torch.zeros_like(log_probs).scatter(-1, choices, 1.0).sum(0)
        return torch.logaddexp(votes.log(), mean) - math.log(len(self.shards) + 1)

    @property
    def layout(self) -> Layout:
        """Where each training image sits, read from the buffers."""
        values = [getattr(self, name).cpu().numpy() for name in LAYOUT_BUFFERS]
        recipe = self.sharding.recipe
        return Layout(*values, shards=recipe.shards, slices=recipe.slices)

    def set_layout(self, layout: Layout) -> None:
        """Write a layout into the buffers (a deletion marks its images removed)."""
        for name, tensor in layout.buffers().items():
            getattr(self, name).copy_(tensor)


def empty_sharded(sharding: Sharding, model_config: ModelConfig, dataset: Dataset) -> ShardedModel:
    """A sharded model of the right shape for a checkpoint's weights and layout to load into."""
    recipe, n_train = sharding.recipe, len(dataset.train)
    shards = [build_model(model_config, dataset.channels, dataset.n_classes)
              for _ in range(recipe.shards)]  # fmt: skip
    zeros = np.zeros(n_train, dtype=np.int64)
    layout = Layout(zeros, zeros, zeros, zeros.astype(bool), recipe.shards, recipe.slices)
    return ShardedModel(shards, layout, recipe.aggregate == "vote", sharding)


# --- training the shards ------------------------------------------------------------------------


@dataclass
class ShardTrainer:
    """What training the stages of one sharded model needs: its data, recipe, seed and layout
    (removed images excluded), and the store its slice checkpoints go to, each named by
    everything that made its weights (so a stage already trained, e.g. before an
    interruption, is read back rather than trained again)."""

    model_config: ModelConfig
    recipe: TrainConfig
    dataset: Dataset
    engine: Engine
    store: Store
    seed: int
    layout: Layout

    @cached_property
    def epochs(self) -> list[int]:
        """Each stage's epochs."""
        return slice_epochs(self.recipe.epochs, self.recipe.slices)

    @cached_property
    def _base(self) -> str:
        """What every stage's weights depend on besides its shard and rows."""
        return cache_key("shards", self.dataset.fingerprint, self.model_config, self.recipe,
                         self.engine.bf16, self.seed)  # fmt: skip

    def keys(self, shard: int) -> list[str]:
        """The key of each stage of a shard: a chain over the rows of it and every stage
        before it (a stage's weights depend on all of them)."""
        keys, key = [], cache_key("shard", self._base, shard)
        for stage in range(self.recipe.slices):
            key = cache_key("slice", key, self.layout.rows(shard, stage).tolist())
            keys.append(key)
        return keys

    def fresh(self, shard: int) -> nn.Module:
        """A shard's initial model, seeded by (seed, shard)."""
        torch.manual_seed(shard_seed(self.seed, shard))
        return build_model(self.model_config, self.dataset.channels, self.dataset.n_classes)

    def load(self, path: Path) -> nn.Module:
        """A shard's model from a slice checkpoint."""
        state, meta = load_checkpoint(path)
        model = build_model(self.model_config, self.dataset.channels, self.dataset.n_classes)
        expected = model_meta(self.model_config, self.dataset.channels, self.dataset.n_classes)
        load_weights(model, state, meta.get("model", {}), expected)
        return model

    def _stage(self, shard: int, stage: int, model: nn.Module, key: str) -> tuple[nn.Module, float]:
        """Train one stage from `model` (the previous stage's): its rows, a fresh optimizer and
        schedule over its epochs, its own seeded generator; resumable within the stage."""
        rows = torch.from_numpy(self.layout.rows(shard, stage))
        recipe = stage_recipe(self.recipe, self.epochs[stage])
        labels = self.dataset.train.labels[rows]
        ce = cross_entropy(labels, self.dataset.n_classes, recipe.class_weighted,
                           self.engine.device)  # fmt: skip

        def loss(logits: torch.Tensor, batch: Batch) -> torch.Tensor:
            return ce(logits, batch.labels)

        result = fit(
            model, recipe, self.engine,
            rows_batches(self.engine, self.dataset, rows, recipe, self.recipe.augment),
            lambda *_: loss, shard_seed(self.seed, shard, stage),
            state_path=self.store.path("states", f"slice-{key}", ".pt"),
            state_key=cache_key("rows", rows.tolist(), self.dataset.fingerprint),
            description=f"shard {shard + 1}/{self.recipe.shards} slice {stage + 1}/"
                        f"{self.recipe.slices}",
        )  # fmt: skip
        return result.model, result.seconds

    def train_shard(
        self, shard: int, first: int = 0, start: Path | None = None
    ) -> tuple[nn.Module, list[SliceCheckpoint], float]:
        """Train a shard's stages `first`..R-1, from the checkpoint `start` of the stage before
        (a fresh model when `first` is 0): its final model, the new stages' checkpoints, and
        the seconds of the stages read back from the store instead of trained."""
        previous: nn.Module | Path | None = start
        checkpoints, reused = [], 0.0
        for stage, key in list(enumerate(self.keys(shard)))[first:]:
            path = self.store.path("slices", key)
            if path.is_file():
                seconds = float(load_checkpoint(path)[1]["seconds"])
                previous, reused = path, reused + seconds
            else:
                if not len(self.layout.rows(shard, stage)):
                    raise ShardingError(
                        f"shard {shard + 1} would keep no image in slices 1..{stage + 1}: its "
                        "model could not be trained; train the model again with fewer shards"
                    )
                model = self._materialise(previous, shard)
                previous, seconds = self._stage(shard, stage, model, key)
                meta = {"model": model_meta(self.model_config, self.dataset.channels,
                                            self.dataset.n_classes),
                        "shard": shard, "slice": stage, "seconds": seconds}  # fmt: skip
                save_checkpoint(path, previous, meta)
                self.store.note_influence(path, self.layout.rows(shard, stage),
                                          len(self.dataset.train), self.dataset.fingerprint)  # fmt: skip
                self.store.path("states", f"slice-{key}", ".pt").unlink(missing_ok=True)
            checkpoints.append(SliceCheckpoint(path, file_sha256(path), seconds))
        return self._materialise(previous, shard), checkpoints, reused

    def _materialise(self, previous: nn.Module | Path | None, shard: int) -> nn.Module:
        """The model a stage starts from: in memory, read from its checkpoint, or fresh."""
        if previous is None:
            return self.fresh(shard)
        return self.load(previous) if isinstance(previous, Path) else previous


def shard_trainer(
    model_config: ModelConfig,
    recipe: TrainConfig,
    dataset: Dataset,
    engine: Engine,
    store: Store,
    seed: int,
    removed: np.ndarray | None = None,
) -> ShardTrainer:
    """The trainer of a sharded model with `seed` on the data, without the training ids
    `removed` (the layout is drawn on the whole split either way)."""
    layout = assign_layout(dataset.train.labels.numpy(), recipe.shards, recipe.slices,
                           layout_seed(seed), dataset.patients)  # fmt: skip
    if removed is not None:
        layout = layout.without(removed)
    return ShardTrainer(model_config, recipe, dataset, engine, store, seed, layout)


def train_sharded(trainer: ShardTrainer) -> tuple[ShardedModel, float]:
    """Every shard's stages (each read back where it was trained before, e.g. by its own job
    of a study) and their aggregate; the seconds of the stages read back."""
    shards, checkpoints, reused = [], [], 0.0
    for shard in range(trainer.recipe.shards):
        model, done, seconds = trainer.train_shard(shard)
        shards.append(model)
        checkpoints.append(done)
        reused += seconds
    sharding = Sharding(trainer.recipe, trainer.seed, checkpoints)
    vote = trainer.recipe.aggregate == "vote"
    return ShardedModel(shards, trainer.layout, vote, sharding), reused


# --- exact deletion -----------------------------------------------------------------------------


def slice_problems(sharding: Sharding) -> list[str]:
    """Each slice checkpoint of a sharded model that is missing or altered (its SHA-256 differs
    from the one its checkpoint recorded), in a line."""
    problems = []
    for shard, checkpoints in enumerate(sharding.checkpoints):
        for stage, checkpoint in enumerate(checkpoints):
            where = f"slice checkpoint {checkpoint.path} (shard {shard + 1}, slice {stage + 1})"
            if not checkpoint.path.is_file():
                problems.append(f"{where} is missing")
            elif (found := file_sha256(checkpoint.path)) != checkpoint.sha256:
                problems.append(f"{where} was altered: its SHA-256 is {found[:16]}…, the model "
                                f"recorded {checkpoint.sha256[:16]}…")  # fmt: skip
    return problems


def verify_slices(sharding: Sharding) -> None:
    """Refuse a sharded model whose slice checkpoints are missing or altered: a deletion
    restarts from them."""
    if problems := slice_problems(sharding):
        raise ShardingError(
            f"{problems[0]}: an exact deletion restarts from it; restore it, or train the model "
            "again"
        )


def forget(
    model: ShardedModel,
    forget_ids: np.ndarray,
    model_config: ModelConfig,
    dataset: Dataset,
    engine: Engine,
    store: Store,
) -> tuple[ShardedModel, float]:
    """Remove training ids from a sharded model exactly, in place: each shard that held one
    is retrained from the checkpoint before the first slice that held one, without them (new
    checkpoints in `store`); the others are kept. Its slice checkpoints are verified first, so
    a refused request writes nothing. Returns the model and the seconds of stages read back
    from the store (an interrupted deletion's)."""
    sharding = model.sharding
    verify_slices(sharding)
    first = model.layout.first_slices(forget_ids)
    layout = model.layout.without(forget_ids)
    trainer = ShardTrainer(model_config, sharding.recipe, dataset, engine, store, sharding.seed,
                           layout)  # fmt: skip
    reused = 0.0
    for shard, stage in first.items():
        start = sharding.checkpoints[shard][stage - 1].path if stage else None
        trained, checkpoints, seconds = trainer.train_shard(shard, stage, start)
        model.shards[shard].load_state_dict(trained.state_dict())
        sharding.checkpoints[shard][stage:] = checkpoints
        reused += seconds
    model.set_layout(layout)
    sharding.retrained = [(shard, s) for shard, stage in first.items()
                          for s in range(stage, layout.slices)]  # fmt: skip
    return model, reused


def bundle(model: ShardedModel, folder: Path) -> ShardedModel:
    """A copy of the model whose slice checkpoints are copies in `folder` (a deployment keeps
    them beside its checkpoint); files already there are kept."""
    bundled = copy.deepcopy(model)
    for checkpoints in bundled.sharding.checkpoints:
        for stage, checkpoint in enumerate(checkpoints):
            target = folder / checkpoint.path.name
            if not target.is_file():
                atomic_write(
                    target, lambda tmp, source=checkpoint.path: shutil.copyfile(source, tmp)
                )
            checkpoints[stage] = dataclasses.replace(checkpoint, path=target)
    return bundled


# --- what a deletion cost, and what a random one is expected to cost ----------------------------


def _untouched(total: int, inside: np.ndarray, drawn: int) -> np.ndarray:
    """The probability that `drawn` units drawn without replacement from `total` miss every
    one of `inside` units (for each count in `inside`)."""
    inside = np.asarray(inside, dtype=np.float64)
    probability = np.ones_like(inside)
    for step in range(drawn):
        probability *= np.clip((total - inside - step) / (total - step), 0.0, None)
    return probability


def deletion_columns(model: ShardedModel, forget_ids: np.ndarray) -> dict:
    """What an exact deletion retrained, and what one of as many random units (patients where
    the data has them, else images) is expected to: the shards it touched against the
    expected number, and the share of the sharded training's work (image-epochs) it redid
    against the expected share. Empty for a model no deletion produced."""
    sharding = model.sharding
    if sharding.retrained is None:
        return {}
    after = model.layout
    forget_ids = np.asarray(forget_ids, dtype=np.int64)
    removed = after.removed.copy()
    removed[forget_ids] = False
    before = dataclasses.replace(after, removed=removed)
    kept = ~before.removed
    units = np.unique(before.group[kept])
    drawn = np.unique(before.group[forget_ids]).size
    epochs = slice_epochs(sharding.recipe.epochs, sharding.recipe.slices)
    shards, slices = range(before.shards), range(before.slices)
    # per (shard, stage): its work, and the units of the slices it trains on
    work = np.array([[epochs[r] * before.rows(k, r).size for r in slices] for k in shards])
    inside = np.array([[np.unique(before.group[before.rows(k, r)]).size for r in slices]
                       for k in shards])  # fmt: skip
    retrained = np.zeros_like(work, dtype=bool)
    for shard, stage in sharding.retrained:
        retrained[shard, stage] = True
    touched = 1 - _untouched(units.size, inside[:, -1], drawn)
    redone = 1 - _untouched(units.size, inside, drawn)
    return {
        "shards": before.shards,
        "slices": before.slices,
        "shards_retrained": len({shard for shard, _ in sharding.retrained}),
        "slices_retrained": len(sharding.retrained),
        "shards_expected": float(touched.sum()),
        "retrain_share": float(work[retrained].sum() / work.sum()),
        "retrain_share_expected": float((work * redone).sum() / work.sum()),
    }

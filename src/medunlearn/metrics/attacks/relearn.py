"""Relearning resistance (ERASURE, aiim-research/ERASURE, `evaluations/measures.py`): how many
epochs of fine-tuning on the forget set bring a model back to the original model's accuracy
there, and the anamnesis index against Retrain's. A method that only hides the forget set
relearns it at once; Retrain, which never saw it, takes several epochs."""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping

import torch.nn.functional as F

from medunlearn.engine import Batch
from medunlearn.metrics.accuracy import accuracy
from medunlearn.metrics.evidence import Evidence
from medunlearn.metrics.registry import Column, Needs, Output, register_metric
from medunlearn.training import train_one_epoch

# added to both relearn times of the anamnesis index, as ERASURE does, so that 0 divides
AIN_OFFSET = 0.01


def relearn_time(evidence: Evidence) -> tuple[int, bool]:
    """Epochs of SGD on the forget samples (true labels, no augmentation; the recipe's lr,
    momentum, weight decay and batch size, constant lr) until the model's accuracy on them is
    at least (1 - tolerance) x the original model's, checked before the first epoch and after
    each; and whether it got there within the budget (else the budget is returned)."""
    model, relearning = evidence.trained_model()
    engine, recipe = relearning.engine, relearning.recipe
    forget = evidence.forget_set.forget_index
    images = evidence.dataset.train.images[forget]
    goal = (1.0 - relearning.tolerance) * relearning.target_accuracy
    current = accuracy(evidence.logits_of("forget"), evidence.labels_of("forget"))
    model = engine.prepare(copy.deepcopy(model))
    optimizer = engine.sgd(model, recipe.lr, recipe.momentum, recipe.weight_decay)
    generator = engine.generator(relearning.seed)
    for epoch in range(relearning.max_epochs):
        if current >= goal:
            return epoch, True
        batches = engine.batches(evidence.dataset.train, forget, recipe.batch_size, generator)
        train_one_epoch(model, _cross_entropy, optimizer, batches, engine, epoch,
                        description=f"relearning {epoch + 1}")  # fmt: skip
        current = accuracy(engine.logits(model, images), evidence.labels_of("forget"))
    return relearning.max_epochs, current >= goal


def _cross_entropy(logits, batch: Batch):
    """Cross-entropy with the true labels."""
    return F.cross_entropy(logits, batch.labels)


def anamnesis_index(row: Mapping, retrain: Mapping) -> dict:
    """AIN = (relearn time + 0.01) / (Retrain's relearn time + 0.01): near 1 for a model that
    relearns like one that never saw the forget set, far below 1 for one that only hid it."""
    mine, reference = row.get("relearn_epochs"), retrain.get("relearn_epochs")
    if mine is None or reference is None:
        return {"ain": None}
    return {"ain": (mine + AIN_OFFSET) / (reference + AIN_OFFSET)}


@register_metric(
    "relearn",
    "relearning resistance",
    Needs(splits=frozenset({"forget"}), model=True, option="relearn"),
    columns=("relearn_epochs", "relearn_reached", "relearn_s"),
    tables={
        "privacy": (
            Column("relearn_epochs", "relearn epochs", digits=1, gap=False),
            Column("ain", "AIN", digits=2, gap=False),
        )
    },
    against_retrain=anamnesis_index,
    derived=("ain",),
    timing=("relearn_s",),
)
def relearning_resistance(evidence: Evidence) -> Output:
    """The model's relearn time on the forget set, whether it relearned within the budget, and
    what relearning cost (seconds: this metric trains, so its cost is counted)."""
    started = time.perf_counter()
    epochs, reached = relearn_time(evidence)
    return Output(
        {
            "relearn_epochs": epochs,
            "relearn_reached": reached,
            "relearn_s": time.perf_counter() - started,
        }
    )

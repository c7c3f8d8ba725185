"""SalUn-CRA: malignant forget rows never get a label, benign ones do, retain CE is class-weighted."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from medunlearn.config import ConfigError, MethodConfig, ModelConfig
from medunlearn.data.dataset import Dataset, Split
from medunlearn.engine import Batch, Engine
from medunlearn.forget import ForgetSet
from medunlearn.methods import Context, UnlearnData, rl, salun_cra, unlearn
from medunlearn.methods.registry import method_params
from medunlearn.methods.salun import saliency, top_ratio_mask
from medunlearn.methods.salun_cra import SalUnCRAParams, cra_loss
from medunlearn.models import build_model

N_TRAIN = 48
FORGET_IDS = list(range(0, N_TRAIN, 3))  # 16 rows: 4 malignant, 12 benign


def _labels(n: int, n_classes: int = 2) -> torch.Tensor:
    """Every fourth sample positive (label 1) for two classes, else labels cycling over classes."""
    rows = torch.arange(n)
    return (rows % 4 == 0).long() if n_classes == 2 else rows % n_classes


def _split(n: int, seed: int, n_classes: int = 2) -> Split:
    """Tiny grey 8x8 images whose brightness follows the label (learnable), plus noise."""
    labels = _labels(n, n_classes)
    noise = torch.randint(0, 40, (n, 1, 8, 8), generator=torch.Generator().manual_seed(seed))
    images = (60 + 100 * labels).view(n, 1, 1, 1) + noise
    return Split(images.to(torch.uint8), labels)


def _dataset(n_classes: int = 2, positive_class: int | None = 1) -> Dataset:
    """An in-memory task: binary with label 1 = malignant unless told otherwise."""
    return Dataset(
        name="tiny",
        size=8,
        n_classes=n_classes,
        channels=1,
        label_names=[f"class {c}" for c in range(n_classes)],
        train=_split(N_TRAIN, 0, n_classes),
        val=_split(16, 1, n_classes),
        test=_split(16, 2, n_classes),
        task="binary" if n_classes == 2 else "multi-class",
        positive_class=positive_class,
    )


def _data(dataset: Dataset | None = None) -> UnlearnData:
    """The dataset with FORGET_IDS as its forget set."""
    dataset = dataset or _dataset()
    forget = ForgetSet(FORGET_IDS, N_TRAIN, dataset.name, dataset.fingerprint)
    return UnlearnData(dataset, forget)


@pytest.fixture
def context(engine: Engine) -> Context:
    """The shared one-thread CPU engine, seed 0; no store and no recipe (unlike conftest's)."""
    return Context(engine, seed=0)


@pytest.fixture
def data() -> UnlearnData:
    """The binary task and its forget set."""
    return _data()


def _params(**values) -> SalUnCRAParams:
    """Quick SalUn-CRA settings for the tiny task."""
    return SalUnCRAParams(**{"epochs": 2, "batch_size": 16, "augment": "none", **values})


def _rows(data: UnlearnData, kind: str) -> torch.Tensor:
    """Training rows of one kind: malignant / benign forget rows, or retain rows."""
    labels, forget = data.dataset.train.labels, data.is_forget
    keep = {
        "malignant": forget & (labels == 1),
        "benign": forget & (labels == 0),
        "retain": ~forget,
    }[kind]
    return torch.nonzero(keep).flatten()


def _batch(data: UnlearnData, rows: torch.Tensor) -> Batch:
    """A batch of the given training rows with their true labels."""
    split = data.dataset.train
    return Batch(split.images[rows], split.labels[rows], rows)


def _logits(n: int, seed: int = 0) -> torch.Tensor:
    """Random logits for n rows."""
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(seed)) * 2


def _minus_entropy(logits: torch.Tensor) -> torch.Tensor:
    """-H(softmax), computed from the definition."""
    p = torch.softmax(logits, 1)
    return (p * torch.log(p)).sum(1).mean()


def _weighted_ce(logits: torch.Tensor, labels: torch.Tensor, retain: torch.Tensor) -> torch.Tensor:
    """CE with w_c = N / (C N_c) over the retain labels, by hand."""
    counts = torch.bincount(retain, minlength=2).float()
    weights = len(retain) / (2 * counts)
    per_row = F.cross_entropy(logits, labels, reduction="none") * weights[labels]
    return per_row.sum() / weights[labels].sum()


def _loss(data: UnlearnData, context: Context, params: SalUnCRAParams | None = None, seed=0):
    """SalUn-CRA's loss with a fresh seeded generator."""
    return cra_loss(data, params or _params(), context, torch.Generator().manual_seed(seed))


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> list[torch.Tensor]:
    """Every random label draw RL's relabelled loss makes, in order."""
    draws: list[torch.Tensor] = []

    def spy(labels: torch.Tensor, n_classes: int, generator: torch.Generator) -> torch.Tensor:
        out = torch.randint(0, n_classes, labels.shape, generator=generator)
        draws.append(out)
        return out

    monkeypatch.setattr(rl, "random_labels", spy)
    return draws


@pytest.fixture
def relabelled_rows(monkeypatch: pytest.MonkeyPatch) -> list[torch.Tensor]:
    """The training rows of every batch part SalUn-CRA hands to RL's relabelled loss."""
    seen: list[torch.Tensor] = []
    original = salun_cra.relabelled_loss

    def spy(*args, **kwargs):
        inner = original(*args, **kwargs)

        def loss(logits: torch.Tensor, batch: Batch) -> torch.Tensor:
            seen.append(batch.index.clone())
            return inner(logits, batch)

        return loss

    monkeypatch.setattr(salun_cra, "relabelled_loss", spy)
    return seen


def test_the_task_has_all_three_kinds_of_rows(data: UnlearnData) -> None:
    sizes = [len(_rows(data, kind)) for kind in ("malignant", "benign", "retain")]
    assert sizes == [4, 12, 32]


def test_malignant_forget_loss_is_minus_entropy_alone(data, context, drawn) -> None:
    rows = _rows(data, "malignant")
    batch, logits = _batch(data, rows), _logits(len(rows))
    loss = _loss(data, context)(logits, batch)
    assert loss.item() == pytest.approx(_minus_entropy(logits).item(), abs=1e-6)
    assert drawn == []  # no label was even drawn
    for labels in (1 - batch.labels, torch.zeros_like(batch.labels)):
        other = _loss(data, context)(logits, Batch(batch.images, labels, batch.index))
        assert torch.equal(other, loss)


def test_uniform_output_is_the_minimum_for_malignant_rows(data, context) -> None:
    rows = _rows(data, "malignant")
    uniform = _loss(data, context)(torch.zeros(len(rows), 2), _batch(data, rows))
    confident = _loss(data, context)(_logits(len(rows)), _batch(data, rows))
    assert uniform.item() == pytest.approx(-torch.log(torch.tensor(2.0)).item())
    assert uniform < confident


def test_malignant_labels_never_change_a_mixed_batch_loss(data, context) -> None:
    rows = torch.arange(N_TRAIN)
    batch, logits = _batch(data, rows), _logits(N_TRAIN)
    flipped = batch.labels.clone()
    malignant = _rows(data, "malignant")
    flipped[malignant] = 0
    loss = _loss(data, context)(logits, batch)
    assert torch.equal(_loss(data, context)(logits, Batch(batch.images, flipped, rows)), loss)
    retain_flipped = batch.labels.clone()
    retain_flipped[_rows(data, "retain")[:4]] ^= 1  # the test can see a change that matters
    assert not torch.equal(
        _loss(data, context)(logits, Batch(batch.images, retain_flipped, rows)), loss
    )


def test_benign_forget_rows_get_uniform_random_labels(data, context, drawn) -> None:
    rows = _rows(data, "benign")
    batch, logits = _batch(data, rows), _logits(len(rows))
    loss_fn = _loss(data, context)
    for _ in range(50):
        loss = loss_fn(logits, batch)
        targets = drawn[-1]
        assert loss.item() == pytest.approx(F.cross_entropy(logits, targets).item(), abs=1e-6)
    labels = torch.cat(drawn)
    assert labels.numel() == 50 * len(rows)
    assert 0.4 < (labels != 0).float().mean().item() < 0.6  # C = 2: about half differ


def test_retain_loss_is_class_weighted(data, context) -> None:
    assert SalUnCRAParams().class_weighted is True
    rows = _rows(data, "retain")
    batch, logits = _batch(data, rows), _logits(len(rows))
    retain_labels = data.dataset.train.labels[data.retain_index]
    expected = _weighted_ce(logits, batch.labels, retain_labels)
    loss = _loss(data, context)(logits, batch)
    assert loss.item() == pytest.approx(expected.item(), abs=1e-6)
    assert loss.item() != pytest.approx(F.cross_entropy(logits, batch.labels).item(), abs=1e-3)


def test_batch_loss_weights_each_part_by_its_share(data, context, drawn) -> None:
    rows = torch.arange(N_TRAIN)
    batch, logits = _batch(data, rows), _logits(N_TRAIN)
    loss = _loss(data, context)(logits, batch)
    malignant, benign, retain = (_rows(data, k) for k in ("malignant", "benign", "retain"))
    relabelled = torch.cat([benign, retain]).sort().values  # the non-entropy rows, in order
    targets = drawn[-1][torch.isin(relabelled, benign)]
    retain_labels = data.dataset.train.labels[data.retain_index]
    parts = [
        len(malignant) * _minus_entropy(logits[malignant]),
        len(benign) * F.cross_entropy(logits[benign], targets),
        len(retain) * _weighted_ce(logits[retain], batch.labels[retain], retain_labels),
    ]
    assert loss.item() == pytest.approx((sum(parts) / N_TRAIN).item(), abs=1e-6)


def _model(dataset: Dataset) -> torch.nn.Module:
    """A seeded tiny CNN."""
    torch.manual_seed(0)
    return build_model(ModelConfig(arch="cnn", width=4), dataset.channels, dataset.n_classes)


def test_no_malignant_forget_row_is_ever_relabelled(data, context, relabelled_rows) -> None:
    unlearn(_model(data.dataset), data, MethodConfig("salun-cra", {"epochs": 3}), context)
    seen = torch.cat(relabelled_rows)
    assert not torch.isin(_rows(data, "malignant"), seen).any()
    assert torch.isin(_rows(data, "benign"), seen).all()
    assert torch.isin(_rows(data, "retain"), seen).all()


def test_masked_out_weights_stay_bitwise_fixed(data, context) -> None:
    model, params = _model(data.dataset), _params(lr=0.1, ratio=0.5)
    mask = top_ratio_mask(saliency(copy.deepcopy(model), data, params, context), params.ratio)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    method = MethodConfig(
        "salun-cra", {"epochs": 2, "batch_size": 16, "lr": 0.1, "augment": "none"}
    )
    after = dict(unlearn(model, data, method, context).model.named_parameters())
    moved = 0
    for name, start in before.items():
        assert torch.equal(after[name].detach()[~mask[name]], start[~mask[name]]), name
        moved += int((after[name].detach()[mask[name]] != start[mask[name]]).sum())
    assert moved > 0


def test_all_variant_relabels_no_forget_row(data, context, relabelled_rows) -> None:
    assert method_params("salun-entropy", {}).entropy_on == "all"
    unlearn(_model(data.dataset), data, MethodConfig("salun-entropy", {"epochs": 2}), context)
    seen = torch.cat(relabelled_rows)
    assert not torch.isin(seen, data.forget_index).any()
    assert torch.isin(data.retain_index, seen).all()


def test_all_variant_forget_loss_is_minus_entropy(data, context, drawn) -> None:
    rows = data.forget_index
    logits = _logits(len(rows))
    loss = _loss(data, context, _params(entropy_on="all"))(logits, _batch(data, rows))
    assert loss.item() == pytest.approx(_minus_entropy(logits).item(), abs=1e-6)
    assert drawn == []


@pytest.mark.parametrize(
    ("dataset", "reason"),
    [
        (_dataset(n_classes=3, positive_class=None), "3 classes"),
        (_dataset(positive_class=None), "positive class None"),
    ],
)
def test_data_that_is_not_a_positive_vs_negative_task_is_refused(dataset, reason, context) -> None:
    data = _data(dataset)
    with pytest.raises(ValueError, match=f"binary task.*{reason}"):
        unlearn(_model(dataset), data, MethodConfig("salun-cra"), context)


def test_unknown_entropy_target_is_rejected() -> None:
    with pytest.raises(ConfigError, match="entropy_on"):
        method_params("salun-cra", {"entropy_on": "benign"})


@pytest.mark.parametrize("entropy_on", ["positive", "all"])
def test_the_loss_reads_no_value_of_its_tensors(data, context, entropy_on, no_value_reads):
    """Every kind of batch: the parts' sizes never come from a tensor read into Python."""
    loss_fn = _loss(data, context, _params(entropy_on=entropy_on))
    kinds = ("malignant", "benign", "retain")
    for rows in [_rows(data, kind) for kind in kinds] + [torch.arange(N_TRAIN)]:
        logits = _logits(len(rows)).requires_grad_()
        with no_value_reads():
            loss = loss_fn(logits, _batch(data, rows))
            loss.backward()
        assert torch.isfinite(loss.detach()).all() and logits.grad is not None

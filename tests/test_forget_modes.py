"""Forget-set removal modes draw the shares asked for: random, balanced per class, skewed positives."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medunlearn.config import ConfigError, ForgetConfig
from medunlearn.data.dataset import Dataset, Split
from medunlearn.forget import ForgetError, check_forget, select_forget

FRACTIONS = (0.2, 0.5)


def _dataset(class_counts: list[int]) -> Dataset:
    """An in-memory dataset whose training split holds `class_counts[c]` samples of class c."""
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate(class_counts)])
    labels = labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))]
    images = torch.zeros(len(labels), 1, 2, 2, dtype=torch.uint8)
    split = Split(images, labels.long())
    small = Split(images[:4], labels[:4].long())
    binary = len(class_counts) == 2
    return Dataset(
        name="tiny",
        size=2,
        n_classes=len(class_counts),
        channels=1,
        label_names=[str(c) for c in range(len(class_counts))],
        train=split,
        val=small,
        test=small,
        task="binary" if binary else "multi-class",
        positive_class=1 if binary else None,
    )


BREAST = [399, 147]  # BreastMNIST-like: 399 benign (0), 147 malignant (1)
MULTI = [13, 40, 7, 101]


def _forget_labels(dataset: Dataset, config: ForgetConfig, seed: int = 0) -> np.ndarray:
    """The training labels of the forget set the config draws."""
    forget = select_forget(dataset, config, seed)
    assert np.array_equal(forget.forget_ids, np.unique(forget.forget_ids))  # sorted, no repeats
    return dataset.train.labels.numpy()[forget.forget_ids]


@pytest.mark.parametrize("fraction", FRACTIONS)
def test_random_takes_the_fraction_of_the_whole_set(fraction: float) -> None:
    dataset = _dataset(BREAST)
    labels = _forget_labels(dataset, ForgetConfig(mode="random", fraction=fraction))
    assert len(labels) == round(fraction * sum(BREAST))


@pytest.mark.parametrize("fraction", FRACTIONS)
@pytest.mark.parametrize("counts", [BREAST, MULTI], ids=["binary", "four-classes"])
def test_balanced_takes_the_fraction_of_every_class(fraction: float, counts: list[int]) -> None:
    dataset = _dataset(counts)
    labels = _forget_labels(dataset, ForgetConfig(mode="balanced", fraction=fraction))
    per_class = np.bincount(labels, minlength=len(counts))
    for taken, total in zip(per_class, counts, strict=True):
        assert abs(taken - fraction * total) <= 0.5  # within rounding
        assert taken >= 1


@pytest.mark.parametrize("fraction", FRACTIONS)
@pytest.mark.parametrize("share", [0.0, 0.1, 0.25, 0.5])
def test_skewed_takes_the_positive_share_asked_for(fraction: float, share: float) -> None:
    dataset = _dataset(BREAST)
    config = ForgetConfig(mode="skewed", fraction=fraction, positive_share=share)
    labels = _forget_labels(dataset, config)
    total = round(fraction * sum(BREAST))
    assert len(labels) == total
    assert int((labels == 1).sum()) == round(share * total)
    assert abs((labels == 1).mean() - share) <= 0.5 / total  # the share, to rounding


@pytest.mark.parametrize("fraction", FRACTIONS)
def test_skewed_can_take_every_available_positive(fraction: float) -> None:
    dataset = _dataset([900, 100])
    share = 100 / round(fraction * 1000)  # exactly all 100 positives
    labels = _forget_labels(dataset, ForgetConfig("skewed", fraction, positive_share=share))
    assert int((labels == 1).sum()) == 100


@pytest.mark.parametrize(
    ("counts", "fraction", "share"),
    [
        ([250, 150], 0.5, 1.0),  # 200 positives needed, 150 exist
        ([250, 150], 0.5, 0.9),  # 180 positives needed, 150 exist
        ([340, 60], 0.2, 1.0),  # 80 positives needed, 60 exist
        ([190, 210], 0.5, 0.0),  # 200 negatives needed, 190 exist
    ],
    ids=["50pct-all-positive", "50pct-90pct-positive", "20pct-all-positive", "50pct-no-positive"],
)
def test_skewed_refuses_a_share_the_data_cannot_give(
    counts: list[int], fraction: float, share: float
) -> None:
    config = ForgetConfig(mode="skewed", fraction=fraction, positive_share=share)
    with pytest.raises(ForgetError, match="cannot draw"):
        select_forget(_dataset(counts), config)


@pytest.mark.parametrize("share", [-0.1, 1.5])
def test_skewed_needs_a_share_in_the_unit_interval(share: float | None) -> None:
    with pytest.raises(ConfigError, match=r"positive_share must be in \[0, 1\]"):
        ForgetConfig("skewed", 0.2, positive_share=share)


def test_skewed_needs_a_share() -> None:
    with pytest.raises(ForgetError, match="positive_share"):
        select_forget(_dataset(BREAST), ForgetConfig("skewed", 0.2))


@pytest.mark.parametrize("mode", ["random", "balanced", "skewed"])
def test_draws_are_seeded(mode: str) -> None:
    dataset = _dataset(BREAST)
    config = ForgetConfig(mode=mode, fraction=0.2, positive_share=0.5)
    first, again = (select_forget(dataset, config, 3).forget_ids for _ in range(2))
    other = select_forget(dataset, config, 4).forget_ids
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


def test_labels_name_the_mode_fraction_and_share() -> None:
    assert ForgetConfig("balanced", 0.2).display_name == "balanced-20pct"
    assert ForgetConfig("skewed", 0.5, positive_share=0.25).display_name == "skewed-50pct-pos25"


def _difficulty(n: int, seed: int = 0) -> np.ndarray:
    """A made-up per-sample difficulty: distinct values in random order."""
    return np.random.default_rng(seed).permutation(n).astype(float)


@pytest.mark.parametrize(("fraction", "pool"), [(0.05, 0.1), (0.1, 0.1), (0.2, 0.5)])
def test_easy_and_hard_draw_from_the_ends_of_the_ranking(fraction: float, pool: float) -> None:
    dataset = _dataset(MULTI)
    n = sum(MULTI)
    difficulty = _difficulty(n)
    ranked = np.argsort(difficulty)
    drawn = {}
    for mode in ("easy", "hard", "random"):
        config = ForgetConfig(mode=mode, fraction=fraction, pool=pool)
        drawn[mode] = select_forget(dataset, config, 0, difficulty).forget_ids
        assert len(drawn[mode]) == round(fraction * n)
    pool_size = round(pool * n)
    assert set(drawn["easy"]) <= set(ranked[:pool_size])
    assert set(drawn["hard"]) <= set(ranked[-pool_size:])
    means = {mode: difficulty[ids].mean() for mode, ids in drawn.items()}
    assert means["easy"] < means["random"] < means["hard"]


def test_easy_and_hard_draws_are_seeded() -> None:
    dataset, difficulty = _dataset(MULTI), _difficulty(sum(MULTI))
    for mode in ("easy", "hard"):
        config = ForgetConfig(mode=mode, fraction=0.05, pool=0.2)
        first, again = (select_forget(dataset, config, 3, difficulty).forget_ids for _ in range(2))
        other = select_forget(dataset, config, 4, difficulty).forget_ids
        assert np.array_equal(first, again)
        assert not np.array_equal(first, other)


def test_a_fraction_larger_than_the_pool_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"fraction \(0.2\) must not exceed pool \(0.1\)"):
        ForgetConfig(mode="hard", fraction=0.2)
    with pytest.raises(ConfigError, match=r"pool must be in \(0, 1\]"):
        ForgetConfig(mode="easy", fraction=0.05, pool=0.0)
    assert ForgetConfig(mode="random", fraction=0.2).pool == 0.1  # the pool is for easy / hard


def test_easy_and_hard_need_a_difficulty_per_training_sample() -> None:
    dataset, n = _dataset(MULTI), sum(MULTI)
    config = ForgetConfig(mode="easy", fraction=0.05)
    with pytest.raises(ForgetError, match="per-sample difficulty"):
        select_forget(dataset, config, 0)
    with pytest.raises(ForgetError, match="one finite value per training sample"):
        select_forget(dataset, config, 0, np.zeros(n - 1))
    with pytest.raises(ForgetError, match="1 non-finite"):
        select_forget(dataset, config, 0, np.where(np.arange(n) == 5, np.nan, 1.0))


def test_check_forget_checks_specs_without_a_difficulty() -> None:
    dataset = _dataset(MULTI)
    check_forget(dataset, ForgetConfig(mode="hard", fraction=0.1), 0)  # no model needed
    check_forget(dataset, ForgetConfig(mode="random", fraction=0.1), 0)
    with pytest.raises(ForgetError, match="cannot draw"):
        check_forget(_dataset([250, 150]), ForgetConfig("skewed", 0.5, positive_share=1.0), 0)


def test_easy_and_hard_labels_name_a_pool_other_than_the_decile() -> None:
    assert ForgetConfig("easy", 0.05).display_name == "easy-5pct"
    assert ForgetConfig("hard", 0.05, pool=0.2).display_name == "hard-5pct-pool20"


def test_random_takes_a_count_of_images_when_given_one() -> None:
    dataset = _dataset(MULTI)
    for count in (1, 10):
        forget = select_forget(dataset, ForgetConfig(mode="random", count=count), seed=3)
        assert len(forget.forget_ids) == count
    with pytest.raises(ForgetError, match="cannot forget 161 of the 161 training images"):
        select_forget(dataset, ForgetConfig(mode="random", count=161))


def test_patients_forgets_every_image_of_the_patients_drawn() -> None:
    from medunlearn.data.patients import synthetic_patients

    dataset = _dataset(MULTI)
    dataset.patients = synthetic_patients(len(dataset.train), seed=2)
    forget = select_forget(dataset, ForgetConfig(mode="patients", count=3), seed=1)
    drawn = np.unique(dataset.patients[forget.forget_ids])
    assert drawn.size == 3
    assert forget.forget_ids.tolist() == np.flatnonzero(np.isin(dataset.patients, drawn)).tolist()
    again = select_forget(dataset, ForgetConfig(mode="patients", count=3), seed=1)
    assert np.array_equal(again.forget_ids, forget.forget_ids)


def test_patients_needs_a_mapping_and_a_count() -> None:
    with pytest.raises(ForgetError, match=r"set `data\.patients`"):
        select_forget(_dataset(MULTI), ForgetConfig(mode="patients", count=2))
    with pytest.raises(ConfigError, match="forget mode 'patients' needs count"):
        ForgetConfig(mode="patients")
    with pytest.raises(ConfigError, match=r"forget\.count is for the modes"):
        ForgetConfig(mode="balanced", count=3)
    assert ForgetConfig(mode="patients", count=10).display_name == "patients-10"
    assert ForgetConfig(mode="random", count=1).display_name == "random-1img"


def test_synthetic_patients_have_one_to_five_images_and_are_seeded() -> None:
    from medunlearn.data.patients import synthetic_patients

    patients = synthetic_patients(1000, seed=4)
    sizes = np.bincount(patients)
    assert sizes.min() >= 1 and sizes.max() <= 5 and set(sizes[:-1].tolist()) == {1, 2, 3, 4, 5}
    assert np.array_equal(patients, synthetic_patients(1000, seed=4))
    assert not np.array_equal(patients, synthetic_patients(1000, seed=5))
    assert patients.size == 1000 and patients.min() == 0

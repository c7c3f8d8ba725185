"""The forgetting score of the NeurIPS 2023 unlearning challenge (Triantafillou et al.): can
any threshold rule on phi tell N unlearning runs from N retrained models, example by example?

The epsilons are computed for all forget examples at once on a torch device
(`forgetting_epsilons`); `example_epsilon` is the same computation for one example in numpy,
kept as the readable reference the batched one is tested against.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from medunlearn.metrics.evidence import Evidence
from medunlearn.metrics.registry import Column, Needs, Output, register_metric

# the challenge's scoring (google-deepmind/unlearning_evaluation, metric.py)
DELTA = 1e-5
EPSILON_CAP = 50.0
THRESHOLDS_PER_UNIT = 100
INTERVAL_BUFFER = 2.0
BUCKET_WIDTH = 0.5
# a bank whose phi range is below 1% of the other's is "peaky": epsilon is set to the cap
PEAKY_RATIO = 0.01
# decision rules the batched score holds at once (about 30 bytes each): chunks that stay in a
# CPU's caches ran fastest there (2 cores), a GPU wants large ones
CPU_RULES_PER_CHUNK = 2**20
GPU_RULES_PER_CHUNK = 2**24


@dataclass(frozen=True)
class ForgettingScore:
    """The challenge's forgetting quality F, each forget example's epsilon, the number N of
    models in each bank, and the epsilon ceil(ln(N - 1)) from which an example earns 0 points."""

    f: float
    epsilons: np.ndarray
    n_models: int
    max_epsilon: float


def rule_epsilons(fpr: np.ndarray, fnr: np.ndarray, delta: float = DELTA) -> np.ndarray:
    """Epsilon of each decision rule from its FPR and FNR, as the challenge's scoring code:
    max(log(1 - delta - FPR) - log FNR, log(1 - delta - FNR) - log FPR) clipped below at 0 (a
    log of a negative number drops its term); inf where FPR = FNR = 0 (perfect separation);
    NaN (rule dropped) where exactly one of them is 0, or where both terms are undefined."""
    fpr, fnr = np.asarray(fpr, dtype=float), np.asarray(fnr, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        eps = np.fmax(np.log(1 - delta - fpr) - np.log(fnr), np.log(1 - delta - fnr) - np.log(fpr))
    eps = np.clip(eps, 0.0, None)  # FPR = FNR = 0: both terms are log(1 - delta) - log 0 = inf
    eps[(fpr == 0) ^ (fnr == 0)] = np.nan
    return eps


def _share_within(sorted_bank: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Fraction of the bank's values in each [left, right] (0 where left > right)."""
    inside = np.searchsorted(sorted_bank, right, side="right")
    inside -= np.searchsorted(sorted_bank, left, side="left")
    return np.maximum(inside, 0) / len(sorted_bank)


def _single_threshold_rates(
    positive: np.ndarray, negative: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """FPR and FNR of "positive iff phi >= t", t on a grid of 100 per unit of phi spanning both."""
    low = min(positive[0], negative[0])
    high = max(positive[-1], negative[-1])
    thresholds = np.linspace(low, high, int(np.ceil((high - low) * THRESHOLDS_PER_UNIT)))
    fpr = 1.0 - np.searchsorted(negative, thresholds, side="left") / len(negative)
    return fpr, np.searchsorted(positive, thresholds, side="left") / len(positive)


def _interval_rates(positive: np.ndarray, negative: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """FPR and FNR of "positive iff l <= phi <= r", the peakier bank (smaller range) positive:
    r on a grid of 100 per unit over [max - 2, max + 2] of that bank, and for each r, 400
    values of l over r - width +- 2, width = that bank's range (the challenge's double threshold)."""
    if np.ptp(positive) >= np.ptp(negative):
        positive, negative = negative, positive
    width = np.ptp(positive)
    low = positive[0] + width - INTERVAL_BUFFER
    high = positive[-1] + INTERVAL_BUFFER
    right = np.linspace(low, high, int(np.ceil((high - low) * THRESHOLDS_PER_UNIT)))
    offsets = np.linspace(
        -INTERVAL_BUFFER, INTERVAL_BUFFER, int(np.ceil(2 * INTERVAL_BUFFER * THRESHOLDS_PER_UNIT))
    )
    left = (right[:, None] - width + offsets[None, :]).ravel()
    right = np.repeat(right, len(offsets))
    fpr = _share_within(negative, left, right)
    return fpr, 1.0 - _share_within(positive, left, right)


def example_epsilon(unlearned: np.ndarray, retrained: np.ndarray, delta: float = DELTA) -> float:
    """One forget example's epsilon from its phi under N unlearned and N retrained models.

    As the challenge's scoring: the bank with the larger median is "positive" (the unlearned one
    on a tie); a peaky bank (range < 1% of the other's) gets the cap; otherwise the max over the
    single-threshold and interval rules of `rule_epsilons`, capped at 50. Where no rule is left
    (both banks one and the same point; the official code stops there) epsilon is 0.
    """
    unlearned, retrained = np.sort(unlearned), np.sort(retrained)
    if np.median(retrained) > np.median(unlearned):
        positive, negative = retrained, unlearned
    else:
        positive, negative = unlearned, retrained
    ranges = sorted([np.ptp(positive), np.ptp(negative)])
    if ranges[0] < PEAKY_RATIO * ranges[1]:
        return EPSILON_CAP
    single = _single_threshold_rates(positive, negative)
    interval = _interval_rates(positive, negative)
    eps = rule_epsilons(np.r_[single[0], interval[0]], np.r_[single[1], interval[1]], delta)
    kept = eps[~np.isnan(eps)]
    return float(min(kept.max(), EPSILON_CAP)) if len(kept) else 0.0


def max_epsilon(n_models: int) -> float:
    """ceil(ln(N - 1)): the challenge's largest epsilon N models per bank can resolve."""
    return float(np.ceil(np.log(n_models - 1)))


def bucket_points(epsilons: np.ndarray, n_models: int) -> np.ndarray:
    """Points of each example: buckets of width 0.5 from 0, bucket k worth 2^-k, up to
    ceil(ln(N - 1)); an epsilon at or beyond it earns 0."""
    epsilons = np.asarray(epsilons, dtype=float)
    points = 2.0 ** -np.floor(epsilons / BUCKET_WIDTH)
    return np.where(epsilons < max_epsilon(n_models), points, 0.0)


def forgetting_score(
    unlearned_phi: np.ndarray,
    retrained_phi: np.ndarray,
    delta: float = DELTA,
    device: torch.device | str | None = None,
) -> ForgettingScore:
    """The challenge's forgetting quality F from phi of each forget example under N unlearned
    and N retrained models (both N x n_forget, N >= 2): the mean points of the examples'
    epsilons (1 = unlearned indistinguishable from retrained everywhere, 0 = everywhere told
    apart). The epsilons are computed on `device` (default the CPU), all examples at once."""
    unlearned = np.asarray(unlearned_phi, dtype=float)
    retrained = np.asarray(retrained_phi, dtype=float)
    if unlearned.shape != retrained.shape or unlearned.ndim != 2 or len(unlearned) < 2:
        raise ValueError("both banks need the same shape (models, forget examples), >= 2 models")
    n_models = len(unlearned)
    epsilons = forgetting_epsilons(unlearned, retrained, delta, device)
    return ForgettingScore(
        f=float(bucket_points(epsilons, n_models).mean()),
        epsilons=epsilons,
        n_models=n_models,
        max_epsilon=max_epsilon(n_models),
    )


def final_score(
    f: float, ra_unlearned: float, ra_retrained: float, ta_unlearned: float, ta_retrained: float
) -> float:
    """The challenge's final score F * (RA_u / RA_r) * (TA_u / TA_r), accuracies averaged over
    each bank's models (any unit, the ratios cancel it)."""
    return f * (ra_unlearned / ra_retrained) * (ta_unlearned / ta_retrained)


# --- the same epsilons, every example at once on a torch device ---------------------------------


def forgetting_epsilons(
    unlearned: np.ndarray,
    retrained: np.ndarray,
    delta: float = DELTA,
    device: torch.device | str | None = None,
) -> np.ndarray:
    """`example_epsilon` of every column of two N x n banks, batched on `device` in float64.

    Every example's thresholds are those of the numpy code, value for value. A rule's FPR and
    FNR are counts over N, so its epsilon is read from a table that `rule_epsilons` computed
    for every pair of counts: the epsilons equal the reference's. Examples run in chunks of
    at most CPU_ or GPU_RULES_PER_CHUNK rules, grouped by size so little of a chunk is padding.
    """
    device = torch.device(device or "cpu")
    unlearned_rows, retrained_rows = (
        torch.tensor(bank.T, dtype=torch.float64, device=device).sort(1).values
        for bank in (unlearned, retrained)
    )
    swap = _median(retrained_rows) > _median(unlearned_rows)
    banks = _Banks.of(unlearned_rows, retrained_rows).swapped(swap)
    single, interval = _Single(banks, delta), _Interval(banks, delta)
    epsilons = np.full(len(swap), EPSILON_CAP)
    not_peaky = ~_peaky(banks.positive, banks.negative).cpu().numpy()
    budget = CPU_RULES_PER_CHUNK if device.type == "cpu" else GPU_RULES_PER_CHUNK
    for chunk in _chunks(single.n_rules + interval.n_rules, not_peaky, budget):
        rows = torch.as_tensor(chunk, device=device)
        best = torch.maximum(single.best(rows), interval.best(rows)).clamp(max=EPSILON_CAP)
        epsilons[chunk] = torch.where(best == -torch.inf, 0.0, best).cpu().numpy()
    return epsilons


def _median(sorted_rows: torch.Tensor) -> torch.Tensor:
    """np.median of each row of a row-sorted matrix (for an even length the middle two
    values' sum over 2, as numpy computes it)."""
    n = sorted_rows.shape[1]
    if n % 2:
        return sorted_rows[:, n // 2]
    return (sorted_rows[:, n // 2 - 1] + sorted_rows[:, n // 2]) / 2


def _ptp(sorted_rows: torch.Tensor) -> torch.Tensor:
    """The range of each row of a row-sorted matrix."""
    return sorted_rows[:, -1] - sorted_rows[:, 0]


def _peaky(positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
    """Per example: is one bank's range below PEAKY_RATIO of the other's?"""
    ranges = torch.stack([_ptp(positive), _ptp(negative)])
    return ranges.amin(0) < PEAKY_RATIO * ranges.amax(0)


@dataclass(frozen=True)
class _Banks:
    """Per example (row): the sorted positive and negative banks, all 2N values merged in order,
    and how many positive and negative values are among the merged's first k, k = 0..2N. Where
    a threshold t falls in the merged values (searchsorted) then gives both banks' counts below
    t (or at most t) at once: the first k merged values are exactly those below t, ties too."""

    positive: torch.Tensor
    negative: torch.Tensor
    merged: torch.Tensor
    positive_first: torch.Tensor
    negative_first: torch.Tensor

    @classmethod
    def of(cls, positive: torch.Tensor, negative: torch.Tensor) -> _Banks:
        """The merged values and counts of two row-sorted banks."""
        merged, order = torch.cat([positive, negative], 1).sort(1)
        positive_first = F.pad((order < positive.shape[1]).cumsum(1), (1, 0))
        ranks = torch.arange(merged.shape[1] + 1, device=merged.device)
        return cls(positive, negative, merged, positive_first, ranks - positive_first)

    def swapped(self, swap: torch.Tensor) -> _Banks:
        """The banks with positive and negative exchanged in the examples where `swap` is True."""
        flip = swap[:, None]
        return _Banks(
            torch.where(flip, self.negative, self.positive),
            torch.where(flip, self.positive, self.negative),
            self.merged,
            torch.where(flip, self.negative_first, self.positive_first),
            torch.where(flip, self.positive_first, self.negative_first),
        )


def _grid_size(low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """The challenge's number of thresholds on each [low, high]: 100 per unit, rounded up."""
    return torch.ceil((high - low) * THRESHOLDS_PER_UNIT).long()


def _linspace(low: torch.Tensor, high: torch.Tensor, size: torch.Tensor) -> torch.Tensor:
    """np.linspace(low, high, size) of each row (i * step + low, the last set to high, as numpy
    computes them), padded to the longest row (at least 1) with its last value. A repeated
    threshold repeats a rule, so padding leaves the max over rules as it is; a row of size 0
    (the single threshold's grid where every phi is one value) gets `low`, a rule that is
    dropped there like all others."""
    last = (size - 1).clamp(min=0)[:, None].double()
    steps = torch.arange(int(last.max()) + 1, dtype=torch.float64, device=low.device)
    steps = torch.minimum(steps, last)
    values = steps * ((high - low) / (size - 1).clamp(min=1))[:, None] + low[:, None]
    return torch.where((steps == last) & (last > 0), high[:, None], values)


def _epsilon_table(fpr: np.ndarray, fnr: np.ndarray, delta: float, device) -> torch.Tensor:
    """`rule_epsilons` of every pair (fpr[a], fnr[b]) at a * len(fnr) + b, dropped rules -inf."""
    table = rule_epsilons(fpr[:, None], fnr[None, :], delta).ravel()
    return torch.as_tensor(np.nan_to_num(table, nan=-np.inf, posinf=np.inf), device=device)


def _pair_at(
    merged: torch.Tensor, pair: torch.Tensor, thresholds: torch.Tensor, side: str
) -> torch.Tensor:
    """Per threshold (examples x thresholds), the table place of its pair of counts: `pair` at
    its place among the merged values, those below it (side "left") or at most it ("right")."""
    return torch.gather(pair, 1, torch.searchsorted(merged, thresholds, side=side))


class _Single:
    """The rules "positive iff phi >= t", t on each example's grid (`_single_threshold_rates`),
    with the table of FPR 1 - a / N and FNR b / N (a negatives below t, b positives)."""

    def __init__(self, banks: _Banks, delta: float) -> None:
        """Each example's grid bounds and size, the place of each pair of counts below a
        threshold in the epsilon table, and the table."""
        positive, negative = banks.positive, banks.negative
        self.low = torch.minimum(positive[:, 0], negative[:, 0])
        self.high = torch.maximum(positive[:, -1], negative[:, -1])
        self.size = _grid_size(self.low, self.high)
        self.n_rules = self.size.cpu().numpy()
        n = positive.shape[1]
        self.pair = (banks.negative_first * (n + 1) + banks.positive_first).int()
        self.merged = banks.merged
        share = np.arange(n + 1) / n
        self.table = _epsilon_table(1.0 - share, share, delta, positive.device)

    def best(self, rows: torch.Tensor) -> torch.Tensor:
        """The largest epsilon of each example's rules (-inf where every rule is dropped)."""
        thresholds = _linspace(self.low[rows], self.high[rows], self.size[rows])
        return _table_max(
            self.table, _pair_at(self.merged[rows], self.pair[rows], thresholds, "left")
        )


class _Interval:
    """The rules "positive iff l <= phi <= r", the narrower bank positive (`_interval_rates`),
    with the table of FPR a / N and FNR 1 - b / N for a negatives and b positives inside, each
    counted as (at most r) - (below l), from -N (l > r: 0 inside) to N."""

    def __init__(self, banks: _Banks, delta: float) -> None:
        """Each example's width and grid of r; the offsets of l; the place of each pair of
        counts (below l, or shifted by N for at most r) in the epsilon table; the table."""
        banks = banks.swapped(_ptp(banks.positive) >= _ptp(banks.negative))
        self.width = _ptp(banks.positive)
        self.low = banks.positive[:, 0] + self.width - INTERVAL_BUFFER
        self.high = banks.positive[:, -1] + INTERVAL_BUFFER
        self.size = _grid_size(self.low, self.high)
        n_offsets = int(np.ceil(2 * INTERVAL_BUFFER * THRESHOLDS_PER_UNIT))
        offsets = np.linspace(-INTERVAL_BUFFER, INTERVAL_BUFFER, n_offsets)
        self.offsets = torch.as_tensor(offsets, device=self.width.device)
        self.n_rules = self.size.cpu().numpy() * n_offsets
        n = banks.positive.shape[1]
        self.pair = (banks.negative_first * (2 * n + 1) + banks.positive_first).int()
        self.shift = n * (2 * n + 1) + n  # (a + N, b + N) for the counts at most r
        self.merged = banks.merged
        share = np.maximum(np.arange(-n, n + 1), 0) / n
        self.table = _epsilon_table(share, 1.0 - share, delta, self.width.device)

    def best(self, rows: torch.Tensor) -> torch.Tensor:
        """The largest epsilon of each example's rules (-inf where every rule is dropped)."""
        right = _linspace(self.low[rows], self.high[rows], self.size[rows])
        left = ((right - self.width[rows, None])[:, :, None] + self.offsets).flatten(1)
        merged, pair = self.merged[rows], self.pair[rows]
        upper = _pair_at(merged, pair, right, "right").add_(self.shift)
        lower = _pair_at(merged, pair, left, "left").view(len(rows), right.shape[1], -1)
        return _table_max(self.table, upper[:, :, None] - lower)


def _table_max(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Per example (first dimension of `index`), the largest table entry its rules point to
    (index_select: several times faster than advanced indexing on the CPU)."""
    return table.index_select(0, index.flatten()).view(len(index), -1).amax(1)


def _chunks(n_rules: np.ndarray, keep: np.ndarray, budget: int) -> Iterator[np.ndarray]:
    """The kept examples in chunks of similar rule counts (smallest first), each padded to at
    most `budget` rules (one example alone where it has more)."""
    order = np.flatnonzero(keep)
    order = order[np.argsort(n_rules[order], kind="stable")]
    start = 0
    while start < len(order):
        padded = np.arange(1, len(order) - start + 1) * n_rules[order[start:]]
        stop = start + max(1, int(np.searchsorted(padded, budget, side="right")))
        yield order[start:stop]
        start = stop


@register_metric(
    "forget_quality",
    "the NeurIPS 2023 forgetting score",
    Needs(splits=frozenset(), repeats=True),
    columns=("forget_quality", "forget_score", "forget_score_n"),
    tables={
        "privacy": (
            Column("forget_quality", "F", digits=3, gap=False),
            Column("forget_score", "F x utility", digits=3, gap=False),
        )
    },
    separation=lambda columns: 1.0 - columns["forget_quality"] / 2.0,
)
def forget_quality(evidence: Evidence) -> Output:
    """F between the method's repeated runs and as many bank Retrains, and the challenge's
    final score F x (RA_u / RA_r) x (TA_u / TA_r); None where fewer than 2 runs did not diverge."""
    repeats = evidence.repeated()
    unlearned, retrained = repeats.finite_banks()
    if len(unlearned) < 2:
        return Output(dict.fromkeys(("forget_quality", "forget_score", "forget_score_n")))
    score = forgetting_score(unlearned, retrained, device=evidence.device)
    final = final_score(score.f, repeats.ra_unlearned, repeats.ra_retrained,
                        repeats.ta_unlearned, repeats.ta_retrained)  # fmt: skip
    return Output(
        {"forget_quality": score.f, "forget_score": final, "forget_score_n": score.n_models}
    )

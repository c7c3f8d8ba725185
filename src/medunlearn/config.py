"""Typed configuration of every experiment: dataclasses, YAML in and out, and --set overrides."""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml


class UserError(ValueError):
    """An error in what the user asked for or gave (config, data, ids, checkpoint): its message
    says what to fix, and the CLI prints it as one line. Any other exception is a bug."""


class MissingExtra(UserError):
    """A feature whose optional dependency (an extra of the package) is not installed."""


class ConfigError(UserError):
    """A configuration file or override that cannot be turned into a valid config."""


class FieldError(ConfigError):
    """A field whose value breaks the constraint declared beside it."""

    def __init__(self, name: str, rule: str, value: Any) -> None:
        self.name, self.rule, self.value = name, rule, value
        super().__init__(f"{name} {rule}; got {value!r}")

    def at(self, where: str) -> ConfigError:
        """The same error, located in the config tree (`methods.salun.params.ratio ...`)."""
        return ConfigError(f"{_at(where, self.name)} {self.rule}; got {self.value!r}")


@dataclass(frozen=True)
class Interval:
    """A range constraint, as scikit-learn's `Interval`: `closed` is both, left, right or neither."""

    low: float | None = None
    high: float | None = None
    closed: Literal["both", "left", "right", "neither"] = "both"

    @property
    def _ends(self) -> tuple[bool, bool]:
        """Whether the low and the high end belong to the interval."""
        return self.closed in ("both", "left"), self.closed in ("both", "right")

    def holds(self, value: Any) -> bool:
        """Whether a number lies in the interval."""
        left, right = self._ends
        if self.low is not None and (value < self.low or (value == self.low and not left)):
            return False
        return self.high is None or not (value > self.high or (value == self.high and not right))

    def describe(self) -> str:
        """`must be in (0, 1]`, `must be > 0`, `must be >= 1` ..."""
        left, right = self._ends
        if self.high is None:
            return f"must be {'>=' if left else '>'} {self.low:g}"
        if self.low is None:
            return f"must be {'<=' if right else '<'} {self.high:g}"
        return (
            f"must be in {'[' if left else '('}{self.low:g}, {self.high:g}{']' if right else ')'}"
        )


def constrained(default: Any, *rules: Interval) -> Any:
    """A dataclass field with its default and the constraints its values must meet."""
    return field(default=default, metadata={"rules": rules})


POSITIVE = Interval(0, None, "neither")
NON_NEGATIVE = Interval(0, None)
AT_LEAST_ONE = Interval(1, None)
UNIT = Interval(0, 1)

AugMode = Literal[
    "none",
    "crop-flip",
    "crop-flip+randaugment",
    "crop-flip+trivialaugment",
    "crop-flip+autoaugment",
    "crop-flip+randomerasing",
    "crop-flip+augmix",
]
Schedule = Literal["cosine", "multistep", "constant"]
Architecture = Literal["resnet18", "resnet18-small", "cnn"]
ForgetMode = Literal["random", "balanced", "skewed", "class", "ids", "easy", "hard", "patients"]
# the forget modes drawn by the original model's per-sample difficulty (its mean training loss)
DIFFICULTY_MODES = ("easy", "hard")
DEFAULT_POOL = 0.1
# the forget modes that may draw a `count` of images or patients instead of a fraction
COUNTED_MODES = ("random", "patients")
Executor = Literal["sequential", "ray"]
InferencePath = Literal["auto", "eager", "folded", "onednn"]
Sampler = Literal["tpe", "grid"]
Objective = Literal["ag", "risk_2"]
Aggregate = Literal["mean", "vote"]
Patients = Literal["synthetic"]


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    """The resolved type hints of a dataclass (resolved once per class)."""
    return typing.get_type_hints(cls)


def check_fields(config: Any) -> None:
    """Check every field against its declared constraints: `Literal` choices and `constrained`
    rules. Raises FieldError naming the field, the rule and the value."""
    hints = _hints(type(config))
    for spec in dataclasses.fields(config):
        value = getattr(config, spec.name)
        optional, hint = _is_optional(hints[spec.name])
        if value is None and optional:
            continue
        choices = _choices(hint)
        items = value if typing.get_origin(hint) is list else [value]
        if choices and (bad := [item for item in items if item not in choices]):
            raise FieldError(spec.name, f"must be one of {list(choices)}", bad[0])
        for rule in spec.metadata.get("rules", ()):
            if not isinstance(value, int | float) or not rule.holds(value):
                raise FieldError(spec.name, rule.describe(), value)


def _choices(hint: Any) -> tuple:
    """The values a `Literal[...]` hint (or a list of one) admits; () for other hints."""
    if typing.get_origin(hint) is list:
        hint = (typing.get_args(hint) or (Any,))[0]
    return typing.get_args(hint) if typing.get_origin(hint) is Literal else ()


class Checked:
    """Base of every config and params dataclass: fields are checked once, when it is built."""

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass
class DataConfig(Checked):
    """Which dataset to load, at which size, and where from.

    `patients` gives each training image its patient: `synthetic` draws a seeded mapping of 1
    to 5 images per patient (MedMNIST has no patient ids), which sharded training keeps
    together (one patient's images in one shard and slice) and forget mode `patients` draws
    from; None: each image is its own patient."""

    dataset: str = "bloodmnist"
    size: int = constrained(28, AT_LEAST_ONE)
    file_size: int | None = constrained(None, AT_LEAST_ONE)
    root: str | None = None
    binary: bool = False
    positive: list[int] | None = None
    patients: Patients | None = None


@dataclass
class ModelConfig(Checked):
    """The classifier: `resnet18` (standard stem), `resnet18-small` (3x3 stem) or `cnn`."""

    arch: Architecture = "resnet18-small"
    width: int = constrained(32, AT_LEAST_ONE)


@dataclass
class Recipe(Checked):
    """An SGD recipe (momentum, weight decay, per-epoch schedule): the one type that the
    original model's training, Retrain and every gradient method's params share.

    `augment` None means the training recipe's own augmentation (for methods)."""

    epochs: int = constrained(10, NON_NEGATIVE)
    lr: float = constrained(0.01, POSITIVE)
    batch_size: int = constrained(256, AT_LEAST_ONE)
    momentum: float = constrained(0.9, UNIT)
    weight_decay: float = constrained(5e-4, NON_NEGATIVE)
    schedule: Schedule = "constant"
    augment: AugMode | None = None
    class_weighted: bool = False


@dataclass
class TrainConfig(Recipe):
    """The recipe of the original model and of Retrain (at least one epoch: a model is kept
    by its validation score).

    `shards` S and `slices` R train the model as SISA does (Bourtoule et al. 2021): S models on
    disjoint shards of the training split, each over R slices with a checkpoint after each,
    answering together as their `aggregate` (the mean of their softmax, or their majority
    vote); an exact deletion then retrains only the shards that held a forgotten image, from
    the slice that held it (method `sisa`). S = R = 1 is the usual single model."""

    epochs: int = constrained(200, AT_LEAST_ONE)
    lr: float = constrained(0.1, POSITIVE)
    schedule: Schedule = "cosine"
    augment: AugMode = "crop-flip"
    shards: int = constrained(1, AT_LEAST_ONE)
    slices: int = constrained(1, AT_LEAST_ONE)
    aggregate: Aggregate = "mean"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.slices > self.epochs:
            raise ConfigError(
                f"train.slices ({self.slices}) must not exceed train.epochs ({self.epochs}): "
                "slice r trains about epochs / r epochs, so the last one needs epochs >= slices"
            )

    @property
    def sharded(self) -> bool:
        """Whether the model is trained as shards and slices (SISA) rather than whole."""
        return self.shards > 1 or self.slices > 1


@dataclass
class ForgetConfig(Checked):
    """Which training samples to forget: random, balanced, skewed, whole classes, explicit ids,
    the easiest / hardest samples, or whole patients.

    `count` draws that many images (mode `random`) or patients (mode `patients`, from the
    data's patient mapping, `data.patients`) instead of a `fraction` of the training set.

    `easy` and `hard` draw `fraction` of the training set at random from its `pool` share of
    lowest / highest difficulty (the original model's mean training loss per sample), so
    `fraction` may not exceed `pool`. `label` names the forget set in tables and folders
    (default: derived from the spec)."""

    mode: ForgetMode = "random"
    fraction: float = constrained(0.1, Interval(0, 1, "neither"))
    count: int | None = constrained(None, AT_LEAST_ONE)
    classes: list[int] = field(default_factory=list)
    ids_file: str | None = None
    positive_share: float | None = constrained(None, UNIT)
    pool: float = constrained(DEFAULT_POOL, Interval(0, 1, "right"))
    label: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.mode == "patients" and self.count is None:
            raise ConfigError("forget mode 'patients' needs count: how many patients to forget")
        if self.count is not None and self.mode not in COUNTED_MODES:
            raise ConfigError(
                f"forget.count is for the modes {list(COUNTED_MODES)}; mode '{self.mode}' "
                "takes a fraction"
            )
        if self.uses_difficulty and self.fraction > self.pool:
            raise ConfigError(
                f"fraction ({self.fraction:g}) must not exceed pool ({self.pool:g}) in mode "
                f"'{self.mode}': the forget set is drawn from the pool, the {self.mode} end of "
                "the training set by difficulty; raise pool or lower fraction"
            )

    @property
    def uses_difficulty(self) -> bool:
        """Whether drawing this forget set needs the original model's per-sample difficulty."""
        return self.mode in DIFFICULTY_MODES

    @property
    def display_name(self) -> str:
        """A short name for tables and folders, e.g. `random-10pct`, `class-2` or `hard-5pct`
        (`hard-5pct-pool20` for a pool other than the default 10%)."""
        if self.label:
            return self.label
        if self.mode == "class":
            return "class-" + "-".join(str(c) for c in self.classes)
        if self.mode == "ids":
            return "ids-" + Path(self.ids_file or "").stem
        if self.mode == "patients" or (self.mode == "random" and self.count):
            return f"{self.mode}-{self.count}" + ("img" if self.mode == "random" else "")
        pct = f"{self.fraction * 100:g}pct"
        if self.mode == "skewed":
            return f"skewed-{pct}-pos{(self.positive_share or 0) * 100:g}"
        if self.uses_difficulty and self.pool != DEFAULT_POOL:
            return f"{self.mode}-{pct}-pool{self.pool * 100:g}"
        return f"{self.mode}-{pct}"


@dataclass
class MethodConfig:
    """One unlearning method to run, by registry name, with its hyper-parameters."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)
    label: str | None = None

    @property
    def display_name(self) -> str:
        """The name shown in tables: the label if given, else the registry name."""
        return self.label or self.name


@dataclass
class RuntimeConfig(Checked):
    """Where and how to compute: device, threads, precision, cache folder, executor.

    `executor` runs a study's independent jobs (originals, Retrains, bank models, rows, tuning
    trials) one after another in this process (`sequential`) or as Ray tasks (`ray`, the
    `ray` extra), each with `job_cpus` cores (its torch threads) and `job_gpus` GPUs (a
    fraction shares one). `address` names a running Ray cluster (`ray://host:10001`, `auto`);
    None takes $RAY_ADDRESS, else starts a local cluster sized to this machine. A training's
    float sums depend on its thread count, so a study gives the same numbers to the last bit
    on either executor when its jobs have the same threads (`threads` = `job_cpus`).

    `inference_path` is how a trained model runs for evaluation: as it is (`eager`), with
    batch norm folded into its convs (`folded`), or folded with its conv regions on oneDNN
    tensors (`onednn`, float32 CPUs). The paths round differently, so a study runs one path
    throughout, recorded in its results; `auto` takes it from the device and precision alone
    (never from a timing, which could differ between two runs): onednn for float32 on a CPU
    with oneDNN, folded otherwise. `benchmarks/throughput.py` times the paths on a machine."""

    device: str = "auto"
    threads: int | None = constrained(None, AT_LEAST_ONE)
    bf16: bool = False
    channels_last: bool = False
    compile: bool = False
    eval_batch_size: int = constrained(1024, AT_LEAST_ONE)
    cache_dir: str | None = None
    executor: Executor = "sequential"
    address: str | None = None
    job_cpus: int = constrained(1, AT_LEAST_ONE)
    job_gpus: float = constrained(0.0, NON_NEGATIVE)
    inference_path: InferencePath = "auto"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.executor == "ray" and self.threads not in (None, self.job_cpus):
            raise ConfigError(
                f"runtime.threads ({self.threads}) differs from runtime.job_cpus "
                f"({self.job_cpus}): a Ray job runs job_cpus threads; set one of them"
            )


@dataclass
class EvaluationConfig(Checked):
    """The attacks beyond the population ones, and what they cost in trainings.

    `bank`: K reference Retrains per forget set and seed, each with its own seed (never the
    Retrain under test), for offline LiRA and RMIA; 0 turns them off. `repeats`: N unlearning
    runs of each method with other seeds for the NeurIPS 2023 forgetting score, against the
    first N bank models (so N <= K); with `shadow_originals` each run starts from an original
    of its own (U-LiRA's shadow pipelines) instead of the one original (the challenge's
    protocol). `rmia_a`: offline RMIA's a (its Pr(x) approximation); None tunes it on the
    original model against the bank, once per forget set and seed (a job of its own).

    `relearn` (opt-in, it trains): each row's relearn time, the epochs of fine-tuning on the
    forget set (the training recipe's lr, momentum and batch) until its accuracy there is back
    within `relearn_tolerance` of the original model's, at most `relearn_epochs`, and its
    anamnesis index against Retrain's (ERASURE). `matched`: the phi threshold attack against
    test images of the forget set's classes too (the deletion service's per-request evidence);
    `calibration`: the expected calibration error on test.
    A metric named in an evaluation request runs whatever these options say."""

    bank: int = constrained(0, NON_NEGATIVE)
    repeats: int = constrained(0, NON_NEGATIVE)
    shadow_originals: bool = False
    rmia_a: float | None = constrained(None, UNIT)
    relearn: bool = False
    matched: bool = False
    calibration: bool = False
    relearn_epochs: int = constrained(10, AT_LEAST_ONE)
    relearn_tolerance: float = constrained(0.05, Interval(0, 1, "left"))

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.bank == 1:
            raise ConfigError("evaluation.bank must be 0 (off) or at least 2; got 1")
        if self.repeats and not 3 <= self.repeats <= self.bank:
            raise ConfigError(
                "evaluation.repeats must be 0 (off) or between 3 and evaluation.bank (the "
                f"forgetting score compares N unlearned with N bank models); got {self.repeats} "
                f"with bank {self.bank}"
            )


@dataclass
class SearchRange(Checked):
    """The values one tuned param may take: a float range from `low` to `high` (sampled on a
    log scale when `log`; `grid` points of it on the grid sampler), or a list of `choices`."""

    low: float | None = None
    high: float | None = None
    log: bool = True
    choices: list[Any] | None = None
    grid: int = constrained(4, AT_LEAST_ONE)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.choices is not None:
            if not self.choices:
                raise ConfigError("choices is empty: give at least one value")
            return
        if self.low is None or self.high is None or not self.low < self.high:
            raise ConfigError(f"give choices, or low < high; got low {self.low}, high {self.high}")
        if self.log and self.low <= 0:
            raise ConfigError(f"a log-scaled range needs low > 0; got {self.low}")

    def grid_values(self) -> list[Any]:
        """The values the grid sampler tries: the choices, or `grid` points from low to high
        (log-spaced when `log`: 4 points of [1e-4, 1e-1] are the published 1e-4 ... 1e-1)."""
        if self.choices is not None:
            return list(self.choices)
        if self.grid == 1:
            return [self.low]
        if self.log:
            ratio = (self.high / self.low) ** (1 / (self.grid - 1))
            return [float(f"{self.low * ratio**i:.6g}") for i in range(self.grid)]
        step = (self.high - self.low) / (self.grid - 1)
        return [float(f"{self.low + step * i:.6g}") for i in range(self.grid)]


def _lr_space() -> dict[str, SearchRange]:
    """The search of the published studies: the unlearning lr in [1e-4, 1e-1], log scale."""
    return {"lr": SearchRange(1e-4, 0.1)}


@dataclass
class TuneConfig(Checked):
    """A hyper-parameter search of one method against Retrain (`medunlearn tune`).

    Trials run on the forget sets and originals of the seeds `seed` (one or more: a trial's
    objective is the mean over them, so no one forget set's noise is fitted); the objective (AG
    to Retrain, or the model's Global Risk II on binary tasks) is minimised by Optuna's
    `sampler`, with median pruning on the per-epoch objective (the seeds' epochs one after the
    other) once `startup_trials` trials finished, after `warmup_epochs`. `parallel` trials are asked at a time (they run side by side on Ray, and
    each is pruned against the trials before its batch only, so any executor gives the same
    study). The best params are then evaluated on the `held_out` seeds: other originals,
    forget sets and Retrains, so the reported AG is not the one tuned on."""

    method: str | None = None
    trials: int = constrained(16, AT_LEAST_ONE)
    sampler: Sampler = "tpe"
    objective: Objective = "ag"
    space: dict[str, SearchRange] = field(default_factory=_lr_space)
    prune: bool = True
    startup_trials: int = constrained(4, NON_NEGATIVE)
    warmup_epochs: int = constrained(1, NON_NEGATIVE)
    parallel: int = constrained(1, AT_LEAST_ONE)
    seed: list[int] = field(default_factory=lambda: [0])
    held_out: list[int] = field(default_factory=lambda: [1, 2])

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.space:
            raise ConfigError("tune.space is empty: name at least one param to search")
        if not self.seed or len(set(self.seed)) < len(self.seed):
            raise ConfigError(f"tune.seed must name one or more distinct seeds; got {self.seed}")
        if shared := sorted(set(self.seed) & set(self.held_out)):
            raise ConfigError(
                f"tune.held_out {self.held_out} holds the tuning seed(s) {shared}: the held-out "
                "seeds must be other seeds, or the reported AG is the tuned one"
            )


@dataclass
class GateConfig(Checked):
    """The clinical release gate, fixed in advance: non-inferiority margins of the model after
    a deletion against the last exactly retrained model, in percentage points (Global Risk II in
    its own units), each judged on the bootstrap interval (`resamples`, `confidence`) of the
    paired difference over the test split: a request is released only where the interval's
    worse end stays within every margin. Sensitivity and Global Risk II apply to binary tasks.
    A request that fails is retrained exactly (`fallback: retrain`, the patient is forgotten
    either way) or held (`hold`: nothing deployed, the request stays open)."""

    accuracy: float = constrained(2.0, NON_NEGATIVE)
    balanced_accuracy: float = constrained(2.0, NON_NEGATIVE)
    sensitivity: float = constrained(3.0, NON_NEGATIVE)
    risk_2: float = constrained(0.2, NON_NEGATIVE)
    ece: float = constrained(3.0, NON_NEGATIVE)
    class_drop: float = constrained(5.0, NON_NEGATIVE)
    confidence: float = constrained(0.95, Interval(0, 1, "neither"))
    resamples: int = constrained(1000, AT_LEAST_ONE)
    fallback: Literal["retrain", "hold"] = "retrain"


@dataclass
class DebtConfig(Checked):
    """When the drift of sequential approximate deletions calls for an exact retrain: more than
    `images` images forgotten approximately since the last one, a test accuracy `drift` (points)
    below it, or an earlier request's forgotten images recognisable again (`reversal`: their
    phi attack AUC above the protocol's bound, or above 0.5 + reversal without a protocol)."""

    images: int = constrained(500, AT_LEAST_ONE)
    drift: float = constrained(1.0, NON_NEGATIVE)
    reversal: float = constrained(0.1, NON_NEGATIVE)


@dataclass
class ProtocolConfig(Checked):
    """How `medunlearn protocol` validates a method once on a deployment: `requests` simulated
    requests, drawn like real ones (`size` images, or patients where a mapping is given), each
    against a bank of `bank` Retrains with `repeats` repeated runs and relearning, at
    `confidence`; the acceptance criteria it derives are what each real request is held to.
    The method is validated where, on every simulated request, its LiRA and RMIA AUCs lie
    within `attack_gap` of Retrain's, U-LiRA tells its runs from Retrains with a balanced
    accuracy of at most `ulira`, and its anamnesis index is at least `ain`."""

    requests: int = constrained(3, AT_LEAST_ONE)
    size: int = constrained(20, AT_LEAST_ONE)
    bank: int = constrained(4, Interval(2, None))
    repeats: int = constrained(3, Interval(3, None))
    confidence: float = constrained(0.95, Interval(0, 1, "neither"))
    attack_gap: float = constrained(0.05, NON_NEGATIVE)
    ulira: float = constrained(0.6, Interval(0.5, 1))
    ain: float = constrained(0.5, NON_NEGATIVE)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.repeats > self.bank:
            raise ConfigError(
                f"deletion.protocol.repeats ({self.repeats}) must not exceed its bank "
                f"({self.bank}): each repeated run is compared with one bank Retrain"
            )


@dataclass
class DeletionConfig(Checked):
    """The deletion service of a deployment. A request is closed over exact duplicates of its
    images in the training split (always) and, with `phash_distance`, reports the images within
    that perceptual-hash distance (64-bit DCT hash; forgotten too with `forget_neighbours`).
    `auto_retrain` retrains exactly when the debt passes its bound (else it is recommended)."""

    phash_distance: int | None = constrained(None, NON_NEGATIVE)
    forget_neighbours: bool = False
    auto_retrain: bool = False
    gate: GateConfig = field(default_factory=GateConfig)
    debt: DebtConfig = field(default_factory=DebtConfig)
    protocol: ProtocolConfig = field(default_factory=ProtocolConfig)


@dataclass
class SequentialConfig(Checked):
    """The sequential-requests study (`medunlearn sequential`): `requests` deletion requests
    served one after another, each of `patients` random patients not requested before, from a
    patient map (`patient_map`, a CSV of train_id, patient_id; None: a synthetic map, seeded by
    `seed`, of `min_images` to `max_images` training images per patient), each closed over exact
    duplicates. Every method serves each request on its own output of the request before; an
    exact Retrain (the training set minus everything forgotten so far) is trained at every
    `exact_every`-th request as the reference. `seed` also draws the requests. The TA drift and
    forgetting-reversal bounds are `deletion.debt`'s."""

    requests: int = constrained(10, AT_LEAST_ONE)
    patients: int = constrained(20, AT_LEAST_ONE)
    exact_every: int = constrained(2, AT_LEAST_ONE)
    seed: int = 0
    patient_map: str | None = None
    min_images: int = constrained(1, AT_LEAST_ONE)
    max_images: int = constrained(5, AT_LEAST_ONE)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.min_images > self.max_images:
            raise ConfigError(
                f"sequential.min_images ({self.min_images}) must not exceed max_images "
                f"({self.max_images})"
            )
        if self.exact_every > self.requests:
            raise ConfigError(
                f"sequential.exact_every ({self.exact_every}) exceeds requests "
                f"({self.requests}): no exact Retrain would be trained to compare with"
            )


@dataclass
class ExperimentConfig(Checked):
    """A whole experiment: data, model, recipe, forget sets, methods and seeds.

    `augmentations` turns it into an augmentation study: the whole experiment runs once per
    listed mode, that mode used in every phase (original, mask, unlearning, Retrain).
    """

    name: str = "experiment"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    forget: list[ForgetConfig] = field(default_factory=lambda: [ForgetConfig()])
    methods: list[MethodConfig] = field(default_factory=list)
    seeds: list[int] = field(default_factory=lambda: [0])
    augmentations: list[AugMode] = field(default_factory=list)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    tune: TuneConfig = field(default_factory=TuneConfig)
    deletion: DeletionConfig = field(default_factory=DeletionConfig)
    sequential: SequentialConfig = field(default_factory=SequentialConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)


def to_dict(config: Any) -> Any:
    """A plain dict / list tree of a config, ready for YAML or JSON."""
    return dataclasses.asdict(config) if dataclasses.is_dataclass(config) else config


def _is_optional(hint: Any) -> tuple[bool, Any]:
    """Whether a type hint admits None, and the hint without None."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return True, rest[0] if len(rest) == 1 else typing.Union[tuple(rest)]  # noqa: UP007
    return False, hint


def _at(where: str, key: str) -> str:
    """The location of a key below `where` in the config tree (`train.lr`, `methods.ft.params`)."""
    return f"{where}.{key}" if where else key


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Check and convert a YAML value to the type a field declares."""
    optional, hint = _is_optional(hint)
    if value is None:
        if optional or hint is Any:
            return None
        raise ConfigError(f"{where}: a value is required")
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where)
    if origin is list:
        (item,) = typing.get_args(hint) or (Any,)
        if not isinstance(value, list):
            value = [value]
        return [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        item = (typing.get_args(hint) or (str, Any))[1]
        return {k: _coerce(v, item, _at(where, str(k))) for k, v in value.items()}
    if hint is Any:
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if hint in (int, float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        if hint is int and float(value) != int(value):
            raise ConfigError(f"{where}: expected a whole number, got {value!r}")
        return hint(value)
    if hint is str:
        if not isinstance(value, str | int | float):
            raise ConfigError(f"{where}: expected text, got {value!r}")
        return str(value)
    return value


def from_dict(cls: type, data: Any, where: str = "") -> Any:
    """Build dataclass `cls` from a mapping, rejecting unknown keys with their location."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {data!r}")
    hints = _hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(
            f"{where or 'config'}: unknown key(s) {unknown}; valid keys: {sorted(names)}"
        )
    kwargs = {k: _coerce(v, hints[k], _at(where, k)) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except FieldError as error:
        raise error.at(where) from None
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{where or 'config'}: {error}") from error


def _set_path(tree: dict, path: str, value: Any) -> None:
    """Set `a.b.c` in a nested dict/list tree; list items are addressed by index or by name."""
    keys = path.split(".")
    node: Any = tree
    for i, key in enumerate(keys):
        last = i == len(keys) - 1
        if isinstance(node, list):
            node = _list_item(node, key, path)
            if last:
                raise ConfigError(f"--set {path}: give a field of the list item, not the item")
            continue
        if not isinstance(node, dict):
            raise ConfigError(f"--set {path}: '{key}' is inside a value that has no fields")
        if last:
            node[key] = value
        else:
            node = node.setdefault(key, {}) if key == "params" else _child(node, key, path)


def _child(node: dict, key: str, path: str) -> Any:
    """The child `key` of a mapping, with an error listing the valid keys."""
    if key not in node:
        raise ConfigError(f"--set {path}: unknown key '{key}'; valid keys: {sorted(node)}")
    return node[key]


def _list_item(items: list, key: str, path: str) -> Any:
    """A list item by index, or the method whose label or name equals `key`."""
    if key.isdigit() and int(key) < len(items):
        return items[int(key)]
    named = [item for item in items if isinstance(item, dict)]
    for field_name in ("label", "name"):
        for item in named:
            if item.get(field_name) == key:
                return item
    raise ConfigError(f"--set {path}: no list item '{key}' (use an index or a method name)")


def parse_assignments(pairs: list[str], option: str = "--set") -> dict[str, Any]:
    """`key=value` pairs as a dict, values parsed as YAML (`epochs=5` gives the number 5)."""
    parsed = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{option} {pair!r}: expected key=value, e.g. epochs=5")
        parsed[key.strip()] = yaml.safe_load(text) if text.strip() else None
    return parsed


def apply_overrides(config: ExperimentConfig, overrides: list[str]) -> ExperimentConfig:
    """Apply `key=value` overrides (values parsed as YAML) and re-validate the whole config."""
    tree = to_dict(config)
    for key, value in parse_assignments(overrides).items():
        _set_path(tree, key, value)
    return from_dict(ExperimentConfig, tree)


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> ExperimentConfig:
    """Read an experiment config from YAML (None: the default experiment), then apply overrides."""
    if path is None:
        config = default_experiment()
    else:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as error:
            raise ConfigError(f"{path}: not valid YAML: {error}") from error
        try:
            config = from_dict(ExperimentConfig, data)
        except ConfigError as error:
            raise ConfigError(f"{path}: {error}") from None
    return apply_overrides(config, overrides or [])


def dump_config(config: ExperimentConfig) -> str:
    """The config as YAML text, which `load_config` reads back to an equal config."""
    return yaml.safe_dump(to_dict(config), sort_keys=False)


def default_experiment() -> ExperimentConfig:
    """BloodMNIST 28 px, 10% random forgetting, six methods: about 6 minutes on 2 idle CPU cores."""
    quick = {"epochs": 5}
    return ExperimentConfig(
        name="default-bloodmnist-10pct",
        data=DataConfig(dataset="bloodmnist", size=28),
        model=ModelConfig(arch="cnn", width=32),
        train=TrainConfig(epochs=12, lr=0.05, schedule="cosine", augment="crop-flip"),
        forget=[ForgetConfig(mode="random", fraction=0.1)],
        methods=[
            MethodConfig("retrain"),
            MethodConfig("ft", {**quick, "lr": 0.01}),
            MethodConfig("ga", {**quick, "lr": 1e-3}),
            MethodConfig("rl", {**quick, "lr": 0.01}),
            MethodConfig("l1-sparse", {**quick, "lr": 0.01, "alpha": 5e-4}),
            MethodConfig("salun", {**quick, "lr": 0.013, "ratio": 0.5}),
        ],
        seeds=[0],
    )

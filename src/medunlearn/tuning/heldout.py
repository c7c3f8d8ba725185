"""The held-out evaluation of a search: the method untuned and tuned beside Retrain on other
seeds (other originals, forget sets and Retrains), so the AG reported is not the one tuned on,
and `best.yaml`, that experiment as a config `medunlearn run` takes."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from medunlearn.config import ExperimentConfig, MethodConfig, dump_config
from medunlearn.roles import retrain_of


@dataclass
class Tuning:
    """A finished search: its trials, the best params and the search's cost."""

    method: MethodConfig
    trials: list[dict]
    best: dict
    reference_seconds: float
    references: int = 1

    @property
    def trial_seconds(self) -> float:
        """Wall time of every trial, pruned ones included."""
        return sum(trial["seconds"] for trial in self.trials)

    @property
    def cost(self) -> dict:
        """What the search cost: its Retrain references and trials, in minutes and trainings."""
        return {
            "reference_min": self.reference_seconds / 60,
            "trials_min": self.trial_seconds / 60,
            "tune_min": (self.reference_seconds + self.trial_seconds) / 60,
            "trials": len(self.trials),
            "pruned": sum(trial["state"] == "pruned" for trial in self.trials),
            "trial_epochs": sum(trial["epochs"] for trial in self.trials),
            # the Retrain reference of each tuning seed, then each trial's run on each seed
            "trainings": self.references + sum(t.get("runs", 1) for t in self.trials),
        }


def held_out_config(config: ExperimentConfig, tuning: Tuning) -> ExperimentConfig:
    """The experiment that evaluates the tuned params: Retrain, the method at its untuned
    params and at the tuned ones, on the held-out seeds (other forget sets and originals)."""
    method = tuning.method
    base = method.label or method.name
    default = dataclasses.replace(method, label=f"{base}-untuned")
    tuned = MethodConfig(method.name, {**method.params, **tuning.best["params"]}, f"{base}-tuned")
    name = f"{config.name}-{base}-tuned"
    methods = [retrain_of(config), default, tuned]
    return dataclasses.replace(config, name=name, methods=methods, seeds=list(config.tune.held_out))


def best_yaml(config: ExperimentConfig, tuning: Tuning) -> str:
    """The held-out experiment as a config `medunlearn run` takes, with the search that found
    its params as a comment."""
    tune, cost = config.tune, tuning.cost
    lines = [
        f"# {tuning.method.display_name}: params found by `medunlearn tune` ({tune.sampler}, "
        f"{cost['trials']} trials, {cost['pruned']} pruned, objective {tune.objective} to "
        f"Retrain on seeds {tune.seed}, best {tuning.best['value']:.3f})",
        f"# search space: { {k: dataclasses.asdict(v) for k, v in tune.space.items()} }",
        f"# best params: {tuning.best['params']}; cost {cost['tune_min']:.1f} min, "
        f"{cost['trainings']} trainings",
    ]
    return "\n".join(lines) + "\n" + dump_config(held_out_config(config, tuning))

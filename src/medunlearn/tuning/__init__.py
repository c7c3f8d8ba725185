"""Hyper-parameter search of an unlearning method against Retrain (Optuna), with its cost.

Trials run on the forget sets of the tuning seeds and are scored by their distance to Retrain
there (`trial`); the study is asked and told by `search`; the best params are then evaluated on
held-out seeds (`heldout`), so the AG reported is not the one tuned on; tuning needs a Retrain
and each trial is an unlearning run: that cost, the one the RTE column hides (Nasirigerdeh et
al. 2024), is counted and reported beside the method's run time (`report`, and the tuning
overhead analysis). `run` is the command's entry point.
"""

from medunlearn.tuning.run import tune, tune_methods

__all__ = ["tune", "tune_methods"]

"""The plan of a study: an augmentation study's scenarios, one mode in every phase."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from medunlearn.config import EvaluationConfig, MethodConfig, default_experiment
from medunlearn.executor import Job
from medunlearn.study.plan import plan, with_augment


def test_with_augment_sets_every_phase():
    config = default_experiment()
    scenario = with_augment(config, "crop-flip+trivialaugment")
    assert scenario.train.augment == "crop-flip+trivialaugment"
    assert all(m.params["augment"] == "crop-flip+trivialaugment" for m in scenario.methods)
    assert scenario.augmentations == []
    assert config.train.augment == "crop-flip"  # the original config is left as it was
    assert all("augment" not in m.params for m in config.methods)


def _jobs(config) -> dict[str, Job]:
    """A study's plan by job name."""
    return {job.name: job for job in plan(config, Path("out"))}


def test_each_repeated_run_and_rmias_a_are_jobs_of_their_own(make_config):
    """The N repeated runs of a method are N jobs (Ray spreads them), each needing only the
    original; RMIA's a is one job that needs the bank; each row needs the bank, RMIA's a and
    its own repeats. An earlier version ran the repeats inside the row's job, one after another,
    and passed a on through the original model's row."""
    methods = [MethodConfig("ft", {"epochs": 1}), MethodConfig("ga", {"epochs": 1})]
    config = replace(make_config(methods), evaluation=EvaluationConfig(bank=3, repeats=3))
    jobs = _jobs(config)
    where = "random-25pct s0"
    banks = [f"{where} bank {i}" for i in (1, 2, 3)]
    assert jobs[f"{where} RMIA a"].needs == tuple(banks)
    for method in ("ft", "ga"):
        repeats = [f"{where} {method} repeat {i}" for i in (1, 2, 3)]
        assert all(jobs[r].kind == "repeat" and jobs[r].needs == ("original s0",) for r in repeats)
        assert set(jobs[f"{where} {method}"].needs) == {"original s0", *banks, f"{where} RMIA a",
                                                       *repeats}  # fmt: skip
    for reference in ("original", "retrain"):  # the reference rows have no repeats
        assert not [name for name in jobs if name.startswith(f"{where} {reference} repeat")]
        assert set(jobs[f"{where} {reference}"].needs) == {"original s0", *banks, f"{where} RMIA a"}
    assert [j.kind for j in jobs.values()].count("repeat") == 6


def test_a_given_rmia_a_needs_no_job_and_shadow_originals_are_jobs(make_config):
    config = replace(make_config([MethodConfig("ft", {"epochs": 1})]),
                     evaluation=EvaluationConfig(bank=3, repeats=3, rmia_a=0.5,
                                                 shadow_originals=True))  # fmt: skip
    jobs = _jobs(config)
    assert not [name for name in jobs if name.endswith("RMIA a")]
    shadows = [f"shadow original {i} s0" for i in (1, 2, 3)]
    assert all(jobs[name].kind == "shadow" for name in shadows)
    assert jobs["random-25pct s0 ft repeat 2"].needs == ("original s0", shadows[1])


def test_each_shard_is_a_job_and_the_original_of_a_sharded_recipe_aggregates_them(make_config):
    """A sharded study's original needs a job per shard (Ray spreads them); a method with a
    recipe of its own (sisa's shards) gets its own shard jobs and original, once however many
    rows need it, and its rows need that original besides the study's."""
    methods = [MethodConfig("sisa", {"shards": 3}, label="sisa S=3"),
               MethodConfig("ft", {"epochs": 1})]  # fmt: skip
    config = make_config(methods, epochs=2, shards=2, slices=2)
    config = replace(config, forget=[*config.forget, replace(config.forget[0], fraction=0.5)])
    jobs = _jobs(config)
    own = [f"shard {k}/2 s0" for k in (1, 2)]
    assert all(jobs[name].kind == "shard" and jobs[name].needs == () for name in own)
    assert jobs["original s0"].needs == tuple(own)
    theirs = [f"shard {k}/3 (3 shards x 2 slices) s0" for k in (1, 2, 3)]
    assert jobs["original (3 shards x 2 slices) s0"].needs == tuple(theirs)
    assert [j.kind for j in jobs.values()].count("shard") == 5
    for where in ("random-25pct s0", "random-50pct s0"):
        assert jobs[f"{where} sisa S=3"].needs == (
            "original s0",
            "original (3 shards x 2 slices) s0",
        )
        assert jobs[f"{where} ft"].needs == ("original s0",)


def test_a_study_trained_whole_has_no_shard_job(make_config):
    assert "shard" not in [job.kind for job in plan(make_config(), Path("out"))]

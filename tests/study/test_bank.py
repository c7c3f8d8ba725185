"""The reference bank and the repeated runs: their own seeds, trained once, shared, attacked."""

import json
from dataclasses import replace

import pytest
import torch

import medunlearn.methods.retrain as retrain_module
import medunlearn.study.bank as bank_module
import medunlearn.study.pipeline as pipeline
from medunlearn.config import ConfigError, EvaluationConfig, MethodConfig
from medunlearn.data import load_dataset
from medunlearn.experiment import run
from medunlearn.forget import load_forget_set
from medunlearn.seeds import Seeds
from medunlearn.store import Store, cache_root, load_checkpoint
from medunlearn.study.pipeline import retrain_key

# the bank attacks' columns: offline LiRA's and offline RMIA's AUC and TPRs
BANK_COLUMNS = tuple(f"{a}_{m}" for a in ("lira", "rmia") for m in ("auc", "tpr1", "tpr01"))


def _with_evaluation(config, **values):
    """The config with the given evaluation settings."""
    return replace(config, evaluation=EvaluationConfig(**values))


def _trained_seeds(monkeypatch) -> list[int]:
    """The seed of every Retrain-style training (Retrain and bank models) from now on."""
    seen = []
    real = retrain_module.train_model

    def record(model, dataset, indices, recipe, engine, seed, *args, **kwargs):
        seen.append(seed)
        return real(model, dataset, indices, recipe, engine, seed, *args, **kwargs)

    monkeypatch.setattr(retrain_module, "train_model", record)
    return seen


def test_the_bank_has_its_own_seeds_and_never_the_retrain_under_test(
    make_config, tmp_path, monkeypatch
):
    seen = _trained_seeds(monkeypatch)
    config = _with_evaluation(make_config(), bank=3)
    rows = run(config, tmp_path / "out")
    seeds = Seeds(0)
    bank = [seeds.bank(i) for i in range(3)]
    assert sorted(seen) == sorted([*bank, seeds.retrain])
    assert seeds.retrain not in bank
    for row in rows:
        assert row["bank_n"] == 3 and row["bank_min"] > 0 and row["bank_seeds"] == bank
        assert all(0.0 <= row[key] <= 1.0 for key in BANK_COLUMNS)
    dataset = load_dataset(config.data)
    forget_set = load_forget_set(_folder(tmp_path / "out") / "forget_set.json", dataset)
    store = Store(cache_root(config.runtime.cache_dir))
    for seed in bank:  # each bank model is the Retrain any run with its seed would reuse
        key = retrain_key(config, dataset, seed, forget_set, MethodConfig("retrain"))
        assert store.path("retrain", key).is_file()
    assert len({row["rmia_a"] for row in rows}) == 1  # tuned once, on the original model
    assert 0.0 <= rows[0]["rmia_a"] <= 1.0


def test_a_given_rmia_a_is_used_as_it_is(make_config, tmp_path):
    rows = run(_with_evaluation(make_config(), bank=2, rmia_a=0.7), tmp_path / "out")
    assert {row["rmia_a"] for row in rows} == {0.7}


def test_the_bank_is_trained_once_and_reused_by_later_runs_with_other_methods(
    make_config, tmp_path, monkeypatch
):
    config = _with_evaluation(make_config([MethodConfig("ft", {"epochs": 1})]), bank=2)
    first = {r["method"]: r for r in run(config, tmp_path / "first")}
    monkeypatch.setattr(retrain_module, "train_model", _forbidden)
    later = replace(config, methods=[MethodConfig("ga", {"epochs": 1})])
    second = {r["method"]: r for r in run(later, tmp_path / "second")}
    for method in ("original", "retrain"):
        for key in BANK_COLUMNS:
            assert second[method][key] == first[method][key]
    assert "ga" in second


def _folder(out):
    """The run folder of the fixture's one forget set and seed."""
    return out / "runs" / "none" / "random-25pct" / "seed0"


def _forbidden(*_args, **_kwargs):
    raise AssertionError("trained again")


def test_bank_attacks_and_curves_are_written_and_the_curves_stay_out_of_the_csv(
    make_config, tmp_path
):
    out = tmp_path / "out"
    run(_with_evaluation(make_config(), bank=2), out)
    saved = json.loads((out / "results.json").read_text())
    header = (out / "results.csv").read_text().splitlines()[0].split(",")
    assert set(BANK_COLUMNS) <= set(header)
    assert "curves" not in header and "histograms" not in header
    for row in saved:
        assert set(row["curves"]) == {"pop_phi", "lira", "rmia"}
        curve = row["curves"]["lira"]
        assert curve["fpr"][0] == 0.0 and curve["fpr"][-1] == 1.0
        assert curve["tpr"][-1] == 1.0
        assert curve["tpr"] == sorted(curve["tpr"])
        histogram = row["histograms"]["lira"]
        assert len(histogram["edges"]) == len(histogram["forget"]) + 1
    n_forget = round(0.25 * 64)
    assert all(sum(row["histograms"]["lira"]["forget"]) == n_forget for row in saved)
    for figure in ("roc.png", "scores.png"):
        assert (out / figure).read_bytes().startswith(b"\x89PNG")


def test_without_a_bank_only_the_population_attacks_run(make_config, tmp_path, monkeypatch):
    seen = _trained_seeds(monkeypatch)
    rows = run(make_config(), tmp_path / "out")
    assert seen == [Seeds(0).retrain]
    assert all("lira_auc" not in row and 0 <= row["pop_phi_auc"] <= 1 for row in rows)


def test_repeated_runs_give_the_forgetting_score_and_resume_from_the_cache(
    make_config, tmp_path, monkeypatch
):
    config = make_config([MethodConfig("ft", {"epochs": 1})])
    config = _with_evaluation(config, bank=3, repeats=3)
    rows = {r["method"]: r for r in run(config, tmp_path / "out")}
    assert 0.0 <= rows["ft"]["forget_quality"] <= 1.0
    assert rows["ft"]["forget_score_n"] == 3 and rows["ft"]["repeats_min"] > 0
    assert 0.0 <= rows["ft"]["ulira_acc"] <= 1.0 and 0.0 <= rows["ft"]["ulira_auc"] <= 1.0
    report = (tmp_path / "out" / "report.md").read_text()
    assert "N = 3 unlearning runs" in report and "U-LiRA acc" in report
    assert "forget_quality" not in rows["original"] and "forget_quality" not in rows["retrain"]
    calls = []
    real = pipeline.unlearn
    monkeypatch.setattr(pipeline, "unlearn", lambda *args: calls.append(1) or real(*args))
    monkeypatch.setattr(retrain_module, "train_model", _forbidden)
    again = {r["method"]: r for r in run(config, tmp_path / "other")}
    assert len(calls) == 1  # the new folder's own ft row; its three repeats come from the cache
    assert again["ft"]["forget_quality"] == rows["ft"]["forget_quality"]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"bank": 1}, "evaluation.bank must be 0 (off) or at least 2"),
        ({"bank": 3, "repeats": 4}, "evaluation.repeats must be 0 (off) or between 3"),
        ({"bank": 0, "repeats": 3}, "evaluation.repeats must be 0 (off) or between 3"),
        ({"bank": 5, "repeats": 2}, "evaluation.repeats must be 0 (off) or between 3"),
    ],
)
def test_a_bank_that_cannot_serve_its_attacks_is_refused_before_anything_is_written(
    make_config, tmp_path, values, message
):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        run(_with_evaluation(make_config(), **values), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def _originals(cache):
    """The cached original models' checkpoints (their difficulty files beside them aside)."""
    files = (cache / "original").glob("*.safetensors")
    return [path for path in files if not path.name.endswith(".difficulty.safetensors")]


def test_shadow_pipelines_start_each_repeat_from_an_original_of_its_own(make_config, tmp_path):
    """U-LiRA's pipelines (train with the forget set, then unlearn it): one original per repeat
    seed, trained once and shared by every method."""
    methods = [MethodConfig("ft", {"epochs": 1}), MethodConfig("ga", {"epochs": 1})]
    config = make_config(methods)
    config = _with_evaluation(config, bank=3, repeats=3, shadow_originals=True)
    rows = {r["method"]: r for r in run(config, tmp_path / "out")}
    originals = _originals(tmp_path / "cache")
    assert len(originals) == 1 + 3
    assert 0.0 <= rows["ga"]["ulira_acc"] <= 1.0
    plain = {r["method"]: r for r in run(replace(config, evaluation=EvaluationConfig(
        bank=3, repeats=3)), tmp_path / "plain")}  # fmt: skip
    assert plain["ft"]["forget_quality"] is not None
    assert len(_originals(tmp_path / "cache")) == 4


def test_a_diverged_repeat_is_reported_and_left_out_not_raised(make_config, tmp_path, monkeypatch):
    """A repeated run whose model diverged (NaN outputs) is a result: counted in the row and
    the report, and F and U-LiRA come from the runs that did not diverge (an earlier version
    raised "attack scores contain NaN" and lost the whole row)."""
    diverging = Seeds(0).repeat(1)
    real = bank_module.run_method

    def run_method(method, data, original, context, key):
        model, seconds = real(method, data, original, context, key)
        if context.seed == diverging:
            with torch.no_grad():
                for parameter in model.parameters():
                    parameter.fill_(float("nan"))
        return model, seconds

    monkeypatch.setattr(bank_module, "run_method", run_method)
    config = _with_evaluation(make_config([MethodConfig("ft", {"epochs": 1})]), bank=4, repeats=4)
    rows = {r["method"]: r for r in run(config, tmp_path / "out")}
    assert rows["ft"]["repeats_diverged"] == 1
    assert rows["ft"]["forget_score_n"] == 3 and 0.0 <= rows["ft"]["ulira_acc"] <= 1.0
    assert (
        "Repeated runs diverged (NaN outputs) for ft (seed 0: 1)"
        in (tmp_path / "out" / "report.md").read_text()
    )


def test_sisas_repeats_start_from_shadow_originals_trained_in_its_shards(make_config, tmp_path):
    """A method of its own recipe (sisa's shards) gets shadow originals of that recipe: each
    repeat deletes exactly from a sharded model, rather than being handed one trained whole."""
    methods = [MethodConfig("sisa", {"shards": 2}, label="sisa S=2")]
    config = make_config(methods, epochs=2)
    config = _with_evaluation(config, bank=3, repeats=3, shadow_originals=True)
    rows = {r["method"]: r for r in run(config, tmp_path / "out")}
    assert rows["sisa S=2"]["repeats_diverged"] == 0
    assert 0.0 <= rows["sisa S=2"]["ulira_acc"] <= 1.0
    shapes = [
        load_checkpoint(path)[1]["train"]["shards"] for path in _originals(tmp_path / "cache")
    ]
    assert sorted(shapes) == [1, 1, 1, 1, 2, 2, 2, 2]  # the study's and sisa's, each 1 + 3

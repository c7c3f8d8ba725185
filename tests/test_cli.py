"""The command line: every command on the tiny fixture, and clean one-line errors."""

import csv
import functools
import json

import pytest
import yaml
from typer.testing import CliRunner

import medunlearn.cli as cli
from medunlearn.cli import app
from medunlearn.config import RuntimeConfig, default_experiment, dump_config, load_config
from medunlearn.methods import METHODS

runner = CliRunner()


@pytest.fixture(autouse=True)
def _one_thread_runtime(monkeypatch):
    """`unlearn` and `evaluate` build their own runtime: keep it on one CPU thread."""
    monkeypatch.setattr(cli, "RuntimeConfig", functools.partial(RuntimeConfig, threads=1))


@pytest.fixture
def config_file(tmp_path, make_config):
    """The tiny experiment as a YAML file, with Retrain and one FT epoch."""
    data = yaml.safe_load(dump_config(make_config()))
    data["methods"] = [
        {"name": "retrain"},
        {"name": "ft", "params": {"epochs": 1, "batch_size": 16}},
    ]
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def _ok(result):
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result


def test_run(config_file, tmp_path):
    out = tmp_path / "out"
    result = _ok(_invoke("run", config_file, "--out", out))
    assert "results:" in result.stdout
    assert "retrain" in result.stdout and "ft" in result.stdout
    with open(out / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["method"] for r in rows] == ["original", "retrain", "ft"]
    assert (out / "report.md").is_file()


def test_run_with_set(config_file, tmp_path):
    out = tmp_path / "out"
    _ok(_invoke("run", config_file, "--out", out, "--set", "methods.ft.params.lr=0.02",
                "--set", "name=overridden"))  # fmt: skip
    saved = load_config(out / "config.yaml")
    assert saved.name == "overridden"
    assert saved.methods[1].params["lr"] == 0.02
    assert (out / "report.md").read_text().startswith("# overridden")


def test_show_config():
    result = _ok(_invoke("show-config"))
    assert yaml.safe_load(result.stdout) == yaml.safe_load(dump_config(default_experiment()))
    result = _ok(_invoke("show-config", "--set", "train.epochs=1", "-s", "model.arch=cnn"))
    shown = yaml.safe_load(result.stdout)
    assert shown["train"]["epochs"] == 1 and shown["model"]["arch"] == "cnn"


def test_show_config_of_a_file(config_file, tmp_path):
    result = _ok(_invoke("show-config", config_file))
    shown = tmp_path / "shown.yaml"
    shown.write_text(result.stdout)
    assert load_config(shown) == load_config(config_file)


def test_methods():
    result = _ok(_invoke("methods"))
    for name in METHODS:
        assert f"{name}:" in result.stdout
    assert "ratio" in result.stdout


def _printed_metrics(result) -> dict[str, float]:
    """The `name: value` lines `evaluate` prints."""
    pairs = (line.split(":", 1) for line in result.stdout.splitlines() if ":" in line)
    skipped = ("n/a", "True", "False")
    return {key.strip(): float(value) for key, value in pairs if value.strip() not in skipped}


def test_train_unlearn_evaluate_report(config_file, tmp_path):
    model_dir = tmp_path / "model"
    result = _ok(_invoke("train", config_file, "--out", model_dir))
    assert "best epoch 1" in result.stdout
    assert (model_dir / "model.safetensors").is_file() and (model_dir / "config.yaml").is_file()

    ids = tmp_path / "ids.txt"
    ids.write_text("1 2 3 10 20\n")
    deletion = tmp_path / "deletion"
    result = _ok(_invoke("unlearn", "--checkpoint", model_dir / "model.safetensors", "--forget-ids", ids,
                         "--method", "ft", "-p", "epochs=1", "--param", "batch_size=16",
                         "--out", deletion, "--device", "cpu"))  # fmt: skip
    assert "Deletion audit report" in result.stdout
    assert (deletion / "unlearned.safetensors").is_file() and (deletion / "audit.md").is_file()

    result = _ok(_invoke("evaluate", "--checkpoint", deletion / "unlearned.safetensors",
                         "--forget-ids", deletion / "forget_set.json", "--device", "cpu"))  # fmt: skip
    values = _printed_metrics(result)
    assert set(values) >= {"ua", "ra", "ta", "mia"}
    assert all(0 <= values[k] <= 100 for k in ("ua", "ra", "ta", "mia"))

    out = tmp_path / "out"
    _ok(_invoke("run", config_file, "--out", out))
    (out / "report.md").unlink()
    result = _ok(_invoke("report", out))
    assert "retrain" in result.stdout
    assert (out / "report.md").is_file()


def _error_lines(result) -> list[str]:
    """The non-blank lines the command wrote to stderr."""
    return [line for line in result.stderr.splitlines() if line.strip()]


def _assert_clean_failure(result):
    assert result.exit_code == 2, result.output
    assert _error_lines(result)[0].startswith("error:")
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["--set", "data.dataset=nosuchmnist"], id="unknown-dataset"),
        pytest.param(["--set", "forget.0.fraction=1.0"], id="fraction-1"),
        pytest.param(["--set", "methods.ft.params.ratoi=1"], id="unknown-hyper-parameter"),
        pytest.param(["--set", "train.epochs=abc"], id="wrong-type"),
        pytest.param(["--set", "methods=[{name: scrubb}]"], id="unknown-method"),
        pytest.param(
            ["--set", "data.dataset=breastmnist", "--set", "data.binary=true",
             "--set", "methods=[{name: salun-cra, params: {loader: typo}}]"],
            id="salun-cra-loader-typo",
        ),
        pytest.param(["--set", "methods.ft.params.schedule=linear"], id="unknown-schedule"),
    ],
)  # fmt: skip
def test_run_bad_input(config_file, tmp_path, args):
    out = tmp_path / "out"
    result = _invoke("run", config_file, "--out", out, *args)
    _assert_clean_failure(result)
    if "typo" in " ".join(args):
        assert "methods.salun-cra.params.loader must be one of" in result.stderr
    assert not out.exists()


def test_bad_input_of_other_commands(tmp_path, config_file):
    ids = tmp_path / "ids.txt"
    ids.write_text("1 2\n")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    cases = [
        ["show-config", tmp_path / "missing.yaml"],
        ["train", config_file, "--out", tmp_path / "m", "--set", "model.arch=vgg"],
        ["unlearn", "--checkpoint", tmp_path / "missing.pt", "--forget-ids", ids,
         "--out", tmp_path / "d"],
        ["unlearn", "--checkpoint", junk, "--forget-ids", ids, "-p", "noequals",
         "--out", tmp_path / "d"],
        ["evaluate", "--checkpoint", junk, "--forget-ids", ids],
        ["report", tmp_path / "no-run-here"],
    ]  # fmt: skip
    for args in cases:
        _assert_clean_failure(_invoke(*args))
    assert not (tmp_path / "d").exists() and not (tmp_path / "m").exists()


def test_short_error_is_one_line():
    result = _invoke("show-config", "--set", "train.epochs=abc")
    _assert_clean_failure(result)
    assert len(_error_lines(result)) == 1


def test_long_error_is_one_line(config_file, tmp_path):
    result = _invoke("run", config_file, "--out", tmp_path / "out",
                     "--set", "data.dataset=nosuchmnist")  # fmt: skip
    _assert_clean_failure(result)
    assert len(_error_lines(result)) == 1


@pytest.mark.parametrize("name", ["runs-[red]", "runs-x[/]"])
def test_error_text_is_printed_verbatim(tmp_path, name):
    folder = tmp_path / name
    result = _invoke("report", folder)
    _assert_clean_failure(result)
    assert name in "".join(_error_lines(result))


def test_evaluate_agrees_with_the_audit(config_file, tmp_path):
    ids = tmp_path / "ids.txt"
    ids.write_text(" ".join(str(i) for i in range(0, 64, 3)))
    for seed in (1, 2, 3):
        model_dir, deletion = tmp_path / f"model{seed}", tmp_path / f"deletion{seed}"
        _ok(_invoke("train", config_file, "--out", model_dir, "--seed", seed))
        _ok(_invoke("unlearn", "--checkpoint", model_dir / "model.safetensors", "--forget-ids", ids,
                    "--method", "ft", "-p", "epochs=1", "--out", deletion, "--device", "cpu"))  # fmt: skip
        audit = json.loads((deletion / "audit.json").read_text())["after"]
        result = _ok(_invoke("evaluate", "--checkpoint", deletion / "unlearned.safetensors",
                             "--forget-ids", ids, "--device", "cpu"))  # fmt: skip
        shown = _printed_metrics(result)
        for key in ("ua", "ra", "ta", "mia"):
            assert shown[key] == pytest.approx(audit[key], abs=0.01), (seed, key)

"""Configuration errors fail at start-up with a message that names the key."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import yaml

from amsgrad_repro.config import ConfigError, error_source, resolve


@pytest.fixture
def raw(repo_root):
    with open(repo_root / "config.yaml") as handle:
        return yaml.safe_load(handle)


def test_shipped_config_resolves_for_every_preset(raw):
    for scale in raw["presets"]:
        config = copy.deepcopy(raw)
        config["scale"] = scale
        resolved = resolve(config)
        assert resolved["seeds"] and "presets" not in resolved


def test_preset_overrides_base_and_command_line_overrides_preset(raw):
    raw["scale"] = "smoke"
    assert resolve(raw)["tasks"]["synthetic_online"]["steps"] == 20000
    assert resolve(raw, overrides={"seeds": 3})["seeds"] == [0, 1, 2]


def test_nested_command_line_values_are_read_as_yaml_scalars(raw):
    # What Snakemake hands over for --config 'tasks={logreg: {epochs: 40, ...}}'.
    nested = {"logreg": {"epochs": "40", "enabled": "false", "hparams": {"lr": "0.003"}}}
    nested["logreg"]["dataset"] = "fashion_mnist"
    raw["scale"] = "smoke"
    logreg = resolve(raw, overrides={"tasks": nested})["tasks"]["logreg"]
    assert (logreg["epochs"], logreg["enabled"], logreg["hparams"]["lr"]) == (40, False, 0.003)
    assert logreg["dataset"] == "fashion_mnist"
    assert (logreg["hparams"]["beta1"], logreg["hparams"]["beta2"]) == (0.9, 0.999)


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda c: c.update(scale="huge"), "scale: unknown preset 'huge'"),
        (lambda c: c["presets"][c["scale"]].update(seeds="abc"), "seeds: expected a count"),
        (lambda c: c["presets"][c["scale"]].update(seeds=[1, 1]), "seeds: duplicate"),
        (lambda c: c.update(colour="red"), "'colour' was unexpected"),
        (lambda c: c.update(device="tpu"), "device: 'tpu' does not match"),
        (
            lambda c: c["tasks"]["synthetic_online"].update(steps="many"),
            "tasks.synthetic_online.steps: 'many' is not of type 'integer'",
        ),
        (
            lambda c: c["tasks"]["synthetic_online"]["hparams"].update(lr=-1),
            "tasks.synthetic_online.hparams.lr",
        ),
        (
            lambda c: c["tasks"]["synthetic_online"]["hparams"].update(learning_rate=0.1),
            "tasks.synthetic_online.hparams.learning_rate: none of this task's optimizers",
        ),
        (
            lambda c: c["tasks"]["synthetic_online"].update(optimizers=["adam", "adamw2"]),
            "tasks.synthetic_online.optimizers[1]: unknown optimizer 'adamw2'",
        ),
        (
            lambda c: c["tasks"]["cifarnet"].update(stack="seeds"),
            "tasks.cifarnet.stack: model 'cifarnet' cannot be stacked (stackable: logreg, mlp)",
        ),
        (
            lambda c: c["tasks"]["synthetic_online"].update(kind="quantum"),
            "tasks.synthetic_online.kind: unknown task kind 'quantum'",
        ),
    ],
)
def test_bad_values_name_the_key(raw, mutate, expected):
    mutate(raw)
    with pytest.raises(ConfigError) as error:
        resolve(raw)
    assert expected in str(error.value)


def test_top_level_command_line_lists_and_booleans_are_typed(raw):
    # What Snakemake hands over for --config 'seeds=[0, 1]' tune=true.
    resolved = resolve(raw, overrides={"seeds": ["0", "1"], "tune": "true"})
    assert resolved["seeds"] == [0, 1] and resolved["tune"] is True
    assert resolve(raw, overrides={"scale": "smoke"})["scale"] == "smoke"


def test_unknown_task_and_dataset_names_say_what_is_known(raw):
    with pytest.raises(ConfigError, match=r"tasks.mpl: unknown task 'mpl' \(known: cifarnet, "):
        resolve(raw, overrides={"tasks": {"mpl": {"epochs": "2"}}})
    typo = {"tasks": {"logreg": {"dataset": "fashion_mnis"}}}
    with pytest.raises(ConfigError) as error:
        resolve(raw, overrides=typo)
    assert "tasks.logreg.dataset: unknown dataset 'fashion_mnis' (configured under " in str(
        error.value
    )


SCHEMA_ERROR = "invalid configuration:\n  tasks.mlp.epochs: 'x' is not of type 'integer'"
TOP_LEVEL_ERROR = "invalid configuration:\n  <top level>: ('colour' was unexpected)"


@pytest.mark.parametrize(
    "message, overrides, source",
    [
        ("seeds: need at least one seed, got 0", {"seeds": 0}, "--config"),
        ("seeds: need at least one seed, got 0", {"tune": True}, "config.yaml"),
        (SCHEMA_ERROR, {"tasks": {"mlp": {"epochs": "x"}}}, "--config"),
        (SCHEMA_ERROR, {"tasks": {"mlp": {}}}, "config.yaml"),
        (SCHEMA_ERROR, {"tasks": {"a": {}}}, "config.yaml"),
        ("tasks.s.optimizers[1]: unknown", {"tasks": {"s": {"optimizers": []}}}, "--config"),
        (TOP_LEVEL_ERROR, {"colour": "red"}, "--config"),
        (TOP_LEVEL_ERROR, {}, "config.yaml"),
    ],
)  # fmt: skip
def test_errors_name_where_the_value_came_from(message, overrides, source):
    assert error_source(message, overrides) == source


def snakemake_dry_run(repo_root, *config: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--config", *config],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_snakemake_reports_bad_config_at_start_up(repo_root, tmp_path):
    result = snakemake_dry_run(repo_root, "tasks={synthetic_online: {optimizers: [adam, adamm]}}")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "--config: tasks.synthetic_online.optimizers[1]: unknown optimizer 'adamm'" in output
    assert "config.yaml:" not in output  # the value came from the command line


def test_command_line_typos_fail_at_start_up_without_a_traceback(repo_root):
    result = snakemake_dry_run(repo_root, "scale=smoke", "tasks={logreg: {dataset: fashion_mnis}}")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "--config: tasks.logreg.dataset: unknown dataset 'fashion_mnis'" in output, output
    assert "Traceback" not in output and "Wildcards" not in output
    result = snakemake_dry_run(repo_root, "scale=smoke", "tasks={mpl: {epochs: 2}}")
    assert "--config: tasks.mpl: unknown task 'mpl' (known: " in result.stdout + result.stderr
    assert "'kind' is a required property" not in result.stdout + result.stderr
    result = snakemake_dry_run(repo_root, "scale=smoke", "seeds=[0, 1]", "tune=true")
    assert result.returncode == 0, result.stdout + result.stderr


def test_paper_and_full_fashion_presets_run_the_papers_protocol(raw):
    """Both tune α and β2 ∈ {0.99, 0.999} on the validation split, then train 10 seeds for
    100 epochs; full_fashion does it on Fashion-MNIST for the paper's optimizers alone."""
    from amsgrad_repro.tuning.grid import tuned_tasks

    for scale in ("paper", "full_fashion"):
        raw["scale"] = scale
        config = resolve(copy.deepcopy(raw))
        grids = tuned_tasks(config)
        assert config["tune"] and config["seeds"] == list(range(10))
        assert {"logreg", "mlp"} <= set(grids)
        for task in ("logreg", "mlp"):
            assert grids[task]["beta2"] == [0.99, 0.999]
            assert config["tasks"][task]["epochs"] == 100
            assert config["tasks"][task]["holdout_val"] is True
    assert config["tasks"]["logreg"]["dataset"] == "fashion_mnist"
    assert grids["logreg"]["epochs"] == 10
    paper_forms = ["adam", "amsgrad", "adamnc", "torch-adam", "torch-amsgrad"]
    assert config["tasks"]["mlp"]["optimizers"] == paper_forms == grids["mlp"]["optimizers"]
    enabled = [t for t, s in config["tasks"].items() if s.get("enabled", True)]
    assert enabled == ["logreg", "mlp"]

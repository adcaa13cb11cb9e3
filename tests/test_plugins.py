"""Plug-ins end to end: declared by import path, run on a synthetic problem and a neural
task through the real pipeline, and refused at start-up when they cannot work."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import pytest
import yaml

from amsgrad_repro.config import ConfigError, resolve
from tests.miniatures import write_idx_dataset
from tests.pipeline import copy_workflow, make_project, snakemake_command, snakemake_env

OWN_OPTIMIZER = '''
import torch


class SignDescent(torch.optim.Optimizer):
    """x <- x - lr * sign(g): a user's own optimizer, in a module of their project."""

    def __init__(self, params, lr=0.01, shrink=1.0):
        super().__init__(params, {"lr": lr, "shrink": shrink})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.add_(p.grad.sign(), alpha=-group["lr"] * group["shrink"])
'''


def plugin_config(workdir: Path, dataset: dict) -> dict:
    """Smoke config: the online problem and logistic regression with Adam, the lion
    plug-in from pytorch-optimizer and the user's own SignDescent; the rest switched off."""
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    config["plugins"]["signdescent"] = {
        "class": "my_optimizers:SignDescent",
        "hparams": {"lr": 0.01, "shrink": 0.5},
        "elementwise": True,
    }
    for name, task in config["tasks"].items():
        task["enabled"] = name in ("synthetic_online", "logreg")
        task["optimizers"] = ["adam", "lion", "signdescent"]
    config["datasets"]["fashion_mnist"] = dataset
    config["analysis"]["pairs"] = [["lion", "adam"]]
    return config


@pytest.fixture(scope="module")
def plugin_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("plugins")
    workdir = copy_workflow(root / "project")
    data = write_idx_dataset(root / "idx", num_train=1200, num_test=600, learnable=True)
    make_project(workdir, plugin_config(workdir, data))
    (workdir / "my_optimizers.py").write_text(textwrap.dedent(OWN_OPTIMIZER))
    env = snakemake_env()
    # The project's own module, then the code under test (the test's PYTHONPATH, if any).
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(workdir), env.get("PYTHONPATH")]))
    result = subprocess.run(
        snakemake_command("--config", "scale=smoke"),
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert result.returncode == 0, result.stderr[-6000:]
    return workdir


@pytest.mark.slow
@pytest.mark.parametrize("task", ["synthetic_online", "logreg"])
def test_plugins_run_like_builtins(plugin_run, task):
    for name in ("lion", "signdescent"):
        for seed in (0, 1):
            info = json.loads(
                (plugin_run / f"results/runs/{task}/{name}/{seed}/run.json").read_text()
            )
            assert info["status"] == "completed"
            assert info["optimizer_info"]["source"].endswith(
                "Lion" if name == "lion" else "SignDescent"
            )
            if task.startswith("synthetic"):
                assert info["engine"] == "generic"
    own = json.loads((plugin_run / f"results/runs/{task}/signdescent/0/run.json").read_text())
    assert own["hparams"]["shrink"] == 0.5
    finals = (plugin_run / "results/tables/finals.csv").read_text()
    assert "lion" in finals and "signdescent" in finals
    assert (plugin_run / "results/figures/figure1.png").stat().st_size > 10_000


def _start_up_error(workdir: Path, *config: str) -> str:
    result = subprocess.run(
        snakemake_command("-n", "--config", "scale=smoke", *config),
        cwd=workdir,
        env=snakemake_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0
    return result.stdout + result.stderr


@pytest.mark.parametrize(
    "declaration, expected",
    [
        (
            {"class": "no_such_package:Thing", "hparams": {"lr": 0.1}},
            "plugins.lion.class: cannot import 'no_such_package:Thing': No module named "
            "'no_such_package'",
        ),
        (
            {"class": "pytorch_optimizer:NoSuchOptimizer", "hparams": {"lr": 0.1}},
            "plugins.lion.class: cannot import 'pytorch_optimizer:NoSuchOptimizer'",
        ),
        (
            {"class": "pytorch_optimizer:Lion", "hparams": {"lr": 0.1, "betas": [1.5, 0.9]}},
            "plugins.lion: cannot build pytorch_optimizer:Lion",
        ),
        (
            {"class": "collections:OrderedDict", "hparams": {"lr": 0.1}},
            "is not a torch.optim.Optimizer subclass",
        ),
        (
            {"class": "pytorch_optimizer:Lion", "hparams": {"betas": [0.9, 0.99]}},
            "plugins.lion.hparams: 'lr' is a required property",
        ),
        # Found by tests/test_config_fuzz.py: was an HParamError (no ConfigError: a
        # traceback at start-up) naming "lion.lr".
        (
            {"class": "pytorch_optimizer:Lion", "hparams": {"lr": None}},
            "plugins.lion.hparams.lr: expected a number, got None",
        ),
        (
            {"class": "pytorch_optimizer:Lion", "hparams": {"lr": -0.1}},
            "plugins.lion.hparams.lr: ",
        ),
    ],
)
def test_a_plugin_that_cannot_work_fails_at_start_up(repo_root, declaration, expected):
    raw = yaml.safe_load((repo_root / "config.yaml").read_text())
    raw["scale"] = "smoke"
    raw["plugins"]["lion"] = declaration
    with pytest.raises(ConfigError) as error:
        resolve(raw)
    assert expected in str(error.value)


@pytest.mark.slow
def test_snakemake_names_the_plugin_key_at_start_up(tmp_path):
    workdir = copy_workflow(tmp_path / "project")
    out = _start_up_error(workdir, "plugins={lion: {class: 'no_such_package:Thing'}}")
    assert "plugins.lion.class: cannot import 'no_such_package:Thing'" in out
    assert "Traceback" not in out


def test_plugin_check_is_cached_per_declaration(repo_root, tmp_path):
    raw = yaml.safe_load((repo_root / "config.yaml").read_text())
    raw["scale"] = "smoke"
    resolve(raw, plugin_cache=tmp_path)
    markers = list(tmp_path.glob("plugin-*.ok"))
    assert len(markers) == 1
    raw["plugins"]["lion"]["hparams"]["weight_decay"] = 0.1
    resolve(raw, plugin_cache=tmp_path)
    assert len(list(tmp_path.glob("plugin-*.ok"))) == 2


def test_unknown_hyper_parameter_of_a_plugin_names_the_key(repo_root):
    raw = yaml.safe_load((repo_root / "config.yaml").read_text())
    raw["scale"] = "smoke"
    raw["tasks"]["logreg"]["overrides"]["lion"] = {"betaz": [0.9, 0.9]}
    with pytest.raises(ConfigError, match="tasks.logreg.overrides.lion.betaz: lion has no"):
        resolve(raw)

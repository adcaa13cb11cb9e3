"""Variants (``plugins.<name>: {variant_of: <built-in>, hparams: {...}}``): a built-in under a
name of its own with hyper-parameters fixed by that name, as the LM's beta2 sweep uses."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from amsgrad_repro.config import ConfigError, resolve
from amsgrad_repro.optimizers import catalogue, task_settings
from amsgrad_repro.optimizers.hparams import HParamError
from amsgrad_repro.train.engine import RunRequest, train
from tests.test_lm import lm_settings, write_text_cache
from tests.test_train import TIMING_COLUMNS

VARIANT = {"adamw-beta2-95": {"variant_of": "adamw", "hparams": {"beta2": 0.95}}}


def test_the_name_fixes_its_values_over_the_tasks_shared_ones():
    spec = catalogue(VARIANT)["adamw-beta2-95"]
    task = {"hparams": {"lr": 0.01, "beta2": 0.99, "weight_decay": 0.1}}
    settings = task_settings(spec, "t", task)
    base = task_settings(catalogue()["adamw"], "t", {"hparams": {**task["hparams"], "beta2": 0.95}})
    assert settings == base
    assert "adamw with beta2 = 0.95" in spec.summary and spec.impl is catalogue()["adamw"].impl
    with pytest.raises(HParamError, match="overrides.adamw-beta2-95.beta2: fixed by"):
        task_settings(spec, "t", {"overrides": {"adamw-beta2-95": {"beta2": 0.9}}})


def test_a_variant_trains_exactly_as_its_base_with_that_value(tmp_path):
    cache = write_text_cache(tmp_path / "verse")

    def run(optimizer: str, overrides: dict, root) -> pd.DataFrame:
        settings = lm_settings(optimizers=[optimizer], overrides=overrides)
        request = RunRequest(
            task="charlm", optimizer=optimizer, seed=0, settings=settings,
            dataset_cache=cache, out_dir=root / "run", checkpoint_dir=root / "ckpt",
            device="cpu", plugins=VARIANT,
        )  # fmt: skip
        record = train(request)
        assert record["hparams"]["beta2"] == 0.95
        return pd.read_csv(root / "run" / "metrics.csv").drop(columns=TIMING_COLUMNS)

    variant = run("adamw-beta2-95", {}, tmp_path / "variant")
    base = run("adamw", {"adamw": {"beta2": 0.95}}, tmp_path / "base")
    pd.testing.assert_frame_equal(variant, base, check_exact=True)


@pytest.mark.parametrize(
    "declaration, expected",
    [
        ({"variant_of": "adamx", "hparams": {"beta2": 0.95}}, "'adamx' is not a built-in"),
        ({"variant_of": "adamw", "hparams": {"beta3": 0.95}}, "adamw has no hyper-parameter"),
        ({"variant_of": "adamw", "hparams": {"beta2": 1.5}}, "plugins.v.hparams.beta2"),
        ({"variant_of": "adamw", "class": "torch.optim:AdamW", "hparams": {}}, "plugins.v"),
    ],
)
def test_a_variant_that_cannot_work_fails_at_start_up(repo_root, declaration, expected):
    raw = yaml.safe_load((repo_root / "config.yaml").read_text())
    raw["scale"] = "smoke"
    raw["plugins"]["v"] = declaration
    with pytest.raises(ConfigError, match=expected.replace(".", r"\.")):
        resolve(raw)


def test_the_lm_sweeps_beta2_through_its_variants(repo_root):
    raw = yaml.safe_load((repo_root / "config.yaml").read_text())
    task = raw["tasks"]["charlm_shakespeare"]
    specs = catalogue(raw["plugins"])
    beta2 = {
        name: task_settings(specs[name], "charlm_shakespeare", task).beta2
        for name in task["optimizers"]
        if name.startswith("adamw")
    }
    assert sorted(set(beta2.values())) == [0.95, 0.99, 0.999]
    assert sum(value == 0.95 for value in beta2.values()) == 2  # Adam's and AMSGrad's form
    # Beside them, the paper's own forms, as Algorithms 1 and 2 write them.
    for name in ("adam", "amsgrad"):
        paper = task_settings(specs[name], "charlm_shakespeare", task)
        assert (paper.bias_correction, paper.eps, paper.weight_decay) == (False, 0.0, 0.0)

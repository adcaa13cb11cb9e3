"""The plan of a configuration (``amsgrad_repro.plan``): which jobs exist, what each
writes, what rule ``all`` asks for. Checked on its own, and against what ``snakemake -n``
schedules in an empty copy of the workflow for every shipped preset."""

from __future__ import annotations

import copy
from collections import Counter

import pytest
import yaml

from amsgrad_repro import layout
from amsgrad_repro.config import resolve
from amsgrad_repro.plan import plan
from tests.conftest import REPO_ROOT
from tests.pipeline import copy_workflow, dry_run

RAW = yaml.safe_load((REPO_ROOT / "config.yaml").read_text())
# Every preset, and those that do not tune with tuning switched on.
CONFIGS = [[f"scale={scale}"] for scale in RAW["presets"]] + [
    ["scale=smoke", "tune=True"],
    ["scale=quick", "tune=True"],
]


def resolved(args: list[str]) -> dict:
    values = dict(arg.split("=", 1) for arg in args)
    overrides = {"scale": values["scale"]}
    if "tune" in values:
        overrides["tune"] = values["tune"] == "True"
    return resolve({**copy.deepcopy(RAW), **overrides}, overrides=overrides)


@pytest.mark.parametrize("args", CONFIGS, ids=" ".join)
def test_every_file_has_one_job_and_every_target_a_job(args):
    planned = plan(resolved(args))
    outputs = Counter(path for job in planned.jobs for path in job.outputs)
    assert [path for path, n in outputs.items() if n > 1] == []
    assert set(planned.targets) <= set(outputs)
    assert len(set(planned.targets)) == len(planned.targets)


def test_the_smoke_plan():
    """The smoke preset, counted by hand: 3 synthetic tasks x 12 optimizers; logreg and
    mlp stack their 12 optimizers' 2 seeds (24 jobs); the VAE trains 2 optimizers x 2 seeds
    one job each; 3 grids; 6 tasks."""
    planned = plan(resolved(["scale=smoke"]))
    rules = Counter(layout.rule_family(job.rule) for job in planned.jobs)
    assert rules == {
        "synthetic_run": 36,
        "train_stacked": 24,
        "train_vae": 4,
        "aggregate": 6,
        "train_figure": 3,
        "samples_figure": 1,
        "figure1": 1,
        "grid_run": 3,
        "grid_figure": 3,
        "prepare_dataset": 1,
        "analyse": 1,
        "cross_task": 1,
        "all": 1,
    }
    stacked = {job.name: job for job in planned.stacked}
    lion = stacked["train_stacked_logreg_lion"]
    assert [m.out for m in lion.members] == [
        "results/runs/logreg/lion/0",
        "results/runs/logreg/lion/1",
    ]
    assert lion.log == "results/logs/train/logreg/lion/stacked.log"
    assert lion.checkpoint_dir == "results/checkpoints/logreg/lion/stacked"
    assert lion.settings["hparams"]["lr"] == 0.001  # lion's own override
    assert "results/runs/vae_mnist/adam/1/samples.png" in planned.targets


def test_a_tuning_grid_job_is_not_given_the_task_s_own_alpha():
    """Every member of a grid job sets α and β2, so the task's shared values are not the
    job's settings: changing them reruns the replicated runs, never the grid."""
    settings = resolved(["scale=smoke", "tune=True"])
    grids = {j.name: j for j in plan(settings).stacked if j.tuning}
    job = grids["tune_stacked_logreg_adam_grid"]
    assert "lr" not in job.settings["hparams"] and "beta2" not in job.settings["hparams"]
    assert {m.hparams["lr"] for m in job.members} == {0.003, 0.03}
    settings["tasks"]["logreg"]["hparams"]["lr"] = 0.5
    settings["tasks"]["logreg"]["hparams"]["beta2"] = 0.9
    again = {j.name: j for j in plan(settings).stacked if j.tuning}
    assert again["tune_stacked_logreg_adam_grid"] == job


@pytest.mark.slow
def test_the_plan_is_what_snakemake_schedules(tmp_path):
    """In an empty copy of the workflow Snakemake schedules every job: the same jobs, with
    the same outputs, as the plan, and rule all asks for the plan's targets."""
    workdir = copy_workflow(tmp_path)
    for args in CONFIGS:
        scheduled = dry_run(workdir, "--config", *args)
        planned = plan(resolved(args))
        assert sorted((j["rule"], j["outputs"]) for j in scheduled) == sorted(
            (job.rule, tuple(sorted(job.outputs))) for job in planned.jobs
        ), args
        (everything,) = [j for j in scheduled if j["rule"] == "all"]
        assert everything["inputs"] == tuple(sorted(planned.targets)), args

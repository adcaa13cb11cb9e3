"""Each job is given only its own resolved settings (``amsgrad_repro.run_settings``), so
Snakemake's params trigger reruns exactly the jobs whose settings changed; the pipeline
test in test_train_pipeline.py checks that with Snakemake itself."""

from __future__ import annotations

import copy

import pytest
import yaml

from amsgrad_repro.config import resolve
from amsgrad_repro.optimizers import catalogue, hparams, task_settings
from amsgrad_repro.run_settings import job_plugins, job_settings
from amsgrad_repro.settings_base import enabled_tasks
from amsgrad_repro.staleness import run_identity
from tests.conftest import REPO_ROOT


@pytest.fixture(scope="module")
def raw():
    return yaml.safe_load((REPO_ROOT / "config.yaml").read_text())


def preset(raw, scale, **extra):
    return resolve({**copy.deepcopy(raw), "scale": scale, **extra})


def test_a_job_trains_with_exactly_the_settings_its_task_gives_it(raw):
    """For every shipped preset, task and optimizer: the job's settings resolve to the same
    optimizer settings as the whole task's, keep every task key the job reads, and are a
    fixed point (a run's record gives its own job settings back)."""
    checked = 0
    for scale in raw["presets"]:
        settings = preset(raw, scale)
        specs = catalogue(settings.get("plugins"))
        for name in enabled_tasks(settings):
            task = settings["tasks"][name]
            for optimizer in task["optimizers"]:
                spec = specs[optimizer]
                own = job_settings(name, task, spec)
                assert task_settings(spec, name, own) == task_settings(spec, name, task)
                assert job_settings(name, own, spec) == own
                assert own["optimizers"] == [optimizer]
                read = set(task) - {"resources", "figure", "enabled", "overrides"}
                if task["kind"] == "synthetic" and "generic_steps" not in own:
                    read.discard("generic_steps")  # the compiled kernel ignores it
                assert set(own) == read | {"optimizers", "hparams"}
                assert run_identity(own, optimizer, settings.get("plugins")) == run_identity(
                    task, optimizer, settings.get("plugins")
                )
                checked += 1
    assert checked > 100


def test_the_generic_path_alone_is_given_generic_steps(raw):
    task = preset(raw, "smoke")["tasks"]["synthetic_online"]
    specs = catalogue(preset(raw, "smoke").get("plugins"))
    assert "generic_steps" in job_settings("synthetic_online", task, specs["lion"])
    assert "generic_steps" not in job_settings("synthetic_online", task, specs["adam"])


def changed(before, after, names, specs):
    """The optimizers whose job settings differ between two versions of a task."""
    return [
        n
        for n in names
        if job_settings("t", before, specs[n]) != job_settings("t", after, specs[n])
    ]


def test_a_change_reaches_only_the_optimizers_it_changes(raw):
    settings = preset(raw, "smoke")
    specs = catalogue(settings.get("plugins"))
    task = settings["tasks"]["logreg"]
    names = task["optimizers"]
    assert "lion" in names and task["overrides"]["lion"]["lr"] != task["hparams"]["lr"]

    # The shared α: every optimizer but lion, whose override keeps its own.
    edited = copy.deepcopy(task)
    edited["hparams"]["lr"] = 0.02
    assert changed(task, edited, names, specs) == [n for n in names if n != "lion"]
    # lion's own α: lion only.
    edited = copy.deepcopy(task)
    edited["overrides"]["lion"]["lr"] = 0.005
    assert changed(task, edited, names, specs) == ["lion"]
    # A shared β2 that only some optimizers declare: those (lion has betas instead).
    edited = copy.deepcopy(task)
    edited["hparams"]["beta2"] = 0.99
    assert changed(task, edited, names, specs) == [
        n for n in names if "beta2" in specs[n].hparam_rules
    ]
    assert "lion" not in changed(task, edited, names, specs)
    # An override equal to the shared value changes nothing; neither do the cluster
    # resources or the figure options; the epochs change every job.
    edited = copy.deepcopy(task)
    edited["overrides"]["adam"] = {"beta1": 0.9}
    edited["resources"] = {**edited["resources"], "mem_mb": 1}
    edited["figure"] = {"log_y": True}
    assert changed(task, edited, names, specs) == []
    edited["epochs"] += 1
    assert changed(task, edited, names, specs) == names


def test_a_job_is_given_only_its_own_plugin_declaration(raw):
    plugins = preset(raw, "smoke")["plugins"]
    assert job_plugins(plugins, "lion") == {"lion": plugins["lion"]}
    assert job_plugins(plugins, "adam") == {} and job_plugins(None, "adam") == {}


def test_a_job_settings_hparams_are_the_settable_resolved_values(raw):
    settings = preset(raw, "smoke")
    specs = catalogue(settings.get("plugins"))
    task = settings["tasks"]["logreg"]
    own = job_settings("logreg", task, specs["amsgrad"])
    resolved = hparams.as_record(task_settings(specs["amsgrad"], "logreg", task))
    # second_moment is fixed by the name (AMSGrad: max), not a setting: it is left out.
    assert "second_moment" in resolved and "second_moment" not in own["hparams"]
    assert own["hparams"] == {k: v for k, v in resolved.items() if k != "second_moment"}

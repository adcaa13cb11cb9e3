"""The one declaration of where things live (``amsgrad_repro.layout``): every template
builds paths that it parses back, the stacked jobs and the start-up checks read the same
names, and the rule files' patterns are the templates'."""

from __future__ import annotations

import re

import pytest

from amsgrad_repro import layout
from amsgrad_repro.startup import Forcing
from tests.conftest import REPO_ROOT

TEMPLATES = {
    name: value for name, value in vars(layout).items() if isinstance(value, layout.Template)
}
VALUES = {
    "task": "logreg",
    "optimizer": "torch-amsgrad",
    "grid": "beta_map",
    "dataset": "fashion_mnist",
    "label": "grid",
    "seed": 7,
    "point": "lr0.003_beta20.999_weight_decay0.05",
}


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_every_template_parses_back_what_it_builds(name):
    template = TEMPLATES[name]
    values = {k: VALUES[k] for k in template.fields}
    path = template.build(**values)
    assert "{" not in path and template.parse(path) == values
    assert template.parse(path + "/x") is None


def test_runs_and_grid_points_are_spelled_and_read_exactly():
    assert layout.run_dir("mlp", "adam", 3) == "results/runs/mlp/adam/3"
    point = layout.tuning_run_dir("mlp", "adam", {"lr": 1e-4, "beta2": 0.99}, 1)
    assert point == "results/tuning/runs/mlp/adam/lr0.0001_beta20.99/1"
    kind, values = layout.parse_run_dir(point)
    assert kind is layout.TUNING_RUN and values["seed"] == 1
    assert layout.parse_point(values["point"]) == {"lr": 1e-4, "beta2": 0.99}
    assert layout.parse_run_dir("results/runs/mlp/adam/x") is None  # a seed is a number
    assert layout.parse_run_dir("results/aggregates/mlp.csv") is None
    with pytest.raises(KeyError, match="no value for seed"):
        layout.RUN.build(task="mlp", optimizer="adam")


def test_forcing_a_stacked_job_recomputes_its_runs():
    """``--forcerun train_stacked_logreg_adam`` recomputes logreg/adam's runs (start-up's
    check of pulled runs exempts them), not another optimizer's."""
    forced = Forcing(forcerun=frozenset({layout.stacked_rule("logreg", "torch-adam")}))
    assert forced.recomputes("results/runs/logreg/torch-adam/0")
    assert not forced.recomputes("results/runs/logreg/adam/0")
    grid = Forcing(forcerun=frozenset({"tune_stacked_mlp_adam_grid"}))
    assert grid.recomputes(layout.tuning_run_dir("mlp", "adam", {"lr": 0.001, "beta2": 0.999}, 0))
    assert Forcing(forcerun=frozenset({"train"})).recomputes("results/runs/mlp/adam/0")
    assert layout.rule_family("tune_stacked_mlp_adam_grid") == "tune_stacked"


def test_the_rule_files_write_no_run_log_or_checkpoint_path_of_their_own():
    """Runs, tuning points, checkpoints, logs, benchmarks, selections, aggregates, grids
    and caches come from the layout in every rule file (figures keep their names in the
    rules beside their report captions)."""
    own = re.compile(r'"(results/(runs|tuning|checkpoints|logs|benchmarks|aggregates|grids)/'
                     r"[^\"]*\{|data/cache/)")  # fmt: skip
    for path in sorted((REPO_ROOT / "workflow" / "rules").glob("*.smk")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if not line.lstrip().startswith("#"):
                assert not own.search(line), f"{path.name}:{number}: {line.strip()}"

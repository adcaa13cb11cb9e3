"""Where everything lives under ``results/`` and ``data/``: each path declared once, as a
template that both builds paths and parses them back.

The rule files (through ``workflow/rules/common.smk``), the stacked-job planner
(``train.jobs``), the tuning stage, the check of pulled runs (``staleness``), the start-up
checks and sharing all read their paths from here, so a folder moved here moves for all of
them. A template's ``{name}`` fields are Snakemake's wildcards when the template is used as
a rule's output pattern (:attr:`Template.pattern`), and the same fields are what
:meth:`Template.parse` reads back from a path.

Kept free of torch and of the configuration: the Snakemake process and every stage import
it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from amsgrad_repro.kinds import TRAIN_RULES

RESULTS = "results"
# Folders of results/ that stay on the machine that made them (never shared).
LOGS, BENCHMARKS, CHECKPOINTS = "logs", "benchmarks", "checkpoints"
NOT_SHARED = frozenset({LOGS, BENCHMARKS, CHECKPOINTS})

# The HTML report (``amsgrad-repro report``, ``make report``) and the GPU slot locks
# (``gpus.py``: one lock file per device, shared by every job on the machine).
REPORT = f"{RESULTS}/report.html"
GPU_LOCKS = f"{RESULTS}/.gpu-locks"

# The files of one run's folder; run.json is what makes a folder a run.
METRICS, RUN_RECORD, CHECKPOINT = "metrics.csv", "run.json", "checkpoint.pt"
RUN_FILES = (METRICS, RUN_RECORD, CHECKPOINT)

# What each field of a template matches (Snakemake's wildcard constraints use the same),
# and how a parsed value is typed.
FIELDS: dict[str, tuple[str, type]] = {
    "task": (r"[^/]+", str),
    "optimizer": (r"[^/]+", str),
    "grid": (r"[^/]+", str),
    "dataset": (r"[^/]+", str),
    "label": (r"[^/]+", str),
    "seed": (r"\d+", int),
    "point": (r"lr[^/]+", str),  # a tuning grid point's folder (point_name)
}
_FIELD = re.compile(r"\{(\w+)\}")


def number(value: float) -> str:
    """A grid value as it is spelled in a path, e.g. ``0.001``: ``repr`` round-trips
    exactly, so the value parsed back from the path is the configured one."""
    return repr(float(value))


@dataclass(frozen=True)
class Template:
    """One kind of path, e.g. ``results/runs/{task}/{optimizer}/{seed}``."""

    pattern: str

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(_FIELD.findall(self.pattern))

    def build(self, **values: Any) -> str:
        """The path of these field values (grid values spelled by :func:`number`)."""
        missing = set(self.fields) - set(values)
        if missing:
            raise KeyError(f"{self.pattern}: no value for {', '.join(sorted(missing))}")
        spelled = {
            k: number(v) if FIELDS.get(k, ("", str))[1] is float else str(v)
            for k, v in values.items()
        }
        return self.pattern.format(**spelled)

    def parse(self, path: str) -> dict[str, Any] | None:
        """The typed field values of ``path``, or None when it is not such a path."""
        match = self._regex().fullmatch(path)
        if match is None:
            return None
        return {k: FIELDS[k][1](v) for k, v in match.groupdict().items()}

    def child(self, name: str) -> Template:
        """The template of a file or folder inside this one."""
        return Template(f"{self.pattern}/{name}")

    def _regex(self) -> re.Pattern[str]:
        parts = _FIELD.split(self.pattern)
        regex = "".join(
            f"(?P<{part}>{FIELDS[part][0]})" if i % 2 else re.escape(part)
            for i, part in enumerate(parts)
        )
        return re.compile(regex)


def _results(path: str) -> Template:
    return Template(f"{RESULTS}/{path}")


# --- runs ---------------------------------------------------------------------------------

RUNS = _results("runs")
# A run's folder below RUNS (the synthetic job writes its seeds' folders under an out-root).
RUN_IN_RUNS = Template("{task}/{optimizer}/{seed}")
RUN = RUNS.child(RUN_IN_RUNS.pattern)
POINT = "{point}"  # one tuning grid point's folder (point_name)
TUNING_RUN = _results(f"tuning/runs/{{task}}/{{optimizer}}/{POINT}/{{seed}}")
RUN_KINDS = (RUN, TUNING_RUN)


def run_dir(task: str, optimizer: str, seed: int) -> str:
    return RUN.build(task=task, optimizer=optimizer, seed=seed)


def tuning_run_dir(task: str, optimizer: str, point: Mapping[str, float], seed: int) -> str:
    return TUNING_RUN.build(task=task, optimizer=optimizer, point=point_name(point), seed=seed)


# The hyper-parameters a tuning grid point sets, in the order its folder spells them, and
# whether every grid must have the axis (tuning.grid validates grids against this). A grid
# without a beta2 axis keeps each optimizer's own beta2 (ADOPT's 0.9999) or none (SGD).
TUNED_AXES: dict[str, bool] = {"lr": True, "beta2": False, "weight_decay": False}
_NUMBER = r"[0-9.e+-]+"
_POINT = re.compile(
    "_".join(f"{axis}(?P<{axis}>{_NUMBER})" for axis, needed in TUNED_AXES.items() if needed)
    + "".join(
        f"(?:_{axis}(?P<{axis}>{_NUMBER}))?" for axis, needed in TUNED_AXES.items() if not needed
    )
)


def point_name(point: Mapping[str, float]) -> str:
    """Folder name of one grid point, its axes in TUNED_AXES order, e.g.
    ``lr0.001_beta20.999``, ``lr0.001_beta20.999_weight_decay0.05`` or ``lr0.01``."""
    unknown = set(point) - set(TUNED_AXES)
    if unknown:
        raise KeyError(f"not a tuning axis: {', '.join(sorted(unknown))} (axes: {TUNED_AXES})")
    return "_".join(f"{axis}{number(point[axis])}" for axis in TUNED_AXES if axis in point)


def parse_point(name: str) -> dict[str, float] | None:
    """The grid point a folder name spells (:func:`point_name`), or None."""
    match = _POINT.fullmatch(name)
    if match is None:
        return None
    return {k: float(v) for k, v in match.groupdict().items() if v is not None}


def parse_run_dir(path: str) -> tuple[Template, dict[str, Any]] | None:
    """Which kind of run folder ``path`` is (:data:`RUN` or :data:`TUNING_RUN`) and its
    fields, or None."""
    for kind in RUN_KINDS:
        values = kind.parse(path)
        if values is not None:
            return kind, values
    return None


# --- resume state (outside the declared outputs) ----------------------------------------

RUN_CHECKPOINTS = _results(f"{CHECKPOINTS}/{{task}}/{{optimizer}}/{{seed}}")
TUNING_CHECKPOINTS = _results(f"{CHECKPOINTS}/tuning/{{task}}/{{optimizer}}/{POINT}/{{seed}}")
# A stacked job's: a task × optimizer's seeds ("stacked"), a tuning grid's points ("grid",
# or one point's name for a torch.optim class).
STACKED_CHECKPOINTS = _results(f"{CHECKPOINTS}/{{task}}/{{optimizer}}/stacked")
TUNE_STACKED_CHECKPOINTS = _results(f"{CHECKPOINTS}/tuning/{{task}}/{{optimizer}}/{{label}}")

# --- tuning ------------------------------------------------------------------------------

SELECTION = _results("tuning/{task}/{optimizer}.json")
TUNING_GRID = _results("tuning/{task}/grid.csv")
SENSITIVITY = _results("tuning/{task}/sensitivity.csv")

# --- grids, aggregates, figures, tables, data ---------------------------------------------

GRID_DIR = _results("grids/{grid}")
# The grid job's files in GRID_DIR. Its record is not run.json: a grid is many runs, and
# sharing treats a folder holding a run.json as one run (share.py).
GRID_TABLE_FILE, GRID_RECORD_FILE, GRID_CELLS_FILE = "table.csv", "grid.json", "cells.csv"
GRID_TABLE = GRID_DIR.child(GRID_TABLE_FILE)
GRID_RECORD = GRID_DIR.child(GRID_RECORD_FILE)
GRID_CELLS = GRID_DIR.child(GRID_CELLS_FILE)
AGGREGATE = _results("aggregates/{task}.csv")
TABLES = _results("tables")
DATASET_CACHE = Template("data/cache/{dataset}.pt")
FIGURE_FORMATS = ("png", "pdf")


def figure(name: str, ext: str) -> str:
    """One file of a figure, e.g. ``figure("figure1", "png")``; ``name`` may hold
    wildcards (``figure("{task}", "pdf")`` is a rule's output pattern)."""
    return f"{RESULTS}/figures/{name}.{ext}"


def figures(name: str) -> list[str]:
    """A figure's files in every format, e.g. ``figures("figure1")``."""
    return [figure(name, ext) for ext in FIGURE_FORMATS]


# The cross-task summary (rule cross_task): its table, and its heatmap with an SVG beside
# the usual formats, which the report's front page inlines.
CROSS_TASK_TABLE = TABLES.child("cross_task.csv")
CROSS_TASK_FIGURES = (*figures("cross_task"), figure("cross_task", "svg"))


# --- what each job logs and measures: the same name under logs/ and benchmarks/ ----------


def log(job: str) -> str:
    """A job's log, e.g. ``log("train/{task}/{optimizer}/{seed}")``."""
    return f"{RESULTS}/{LOGS}/{job}.log"


def benchmark(job: str) -> str:
    """A job's Snakemake benchmark, named like its log."""
    return f"{RESULTS}/{BENCHMARKS}/{job}.tsv"


TRAIN_JOB = "train/{task}/{optimizer}/{seed}"
TUNE_RUN_JOB = f"tune/{{task}}/{{optimizer}}/{POINT}/{{seed}}"
STACKED_JOB = "train/{task}/{optimizer}/stacked"
TUNE_STACKED_JOB = "tune/{task}/{optimizer}/{label}"
SYNTHETIC_JOB = "synthetic/{task}/{optimizer}"


# --- the rules that write runs -------------------------------------------------------------

# The rules whose jobs write run folders, and the families of the stacked jobs' rules (one
# rule per job, named by :func:`stacked_rule` and :func:`tune_stacked_rule`).
RUN_RULES = TRAIN_RULES | {"synthetic_run", "tune_run"}
STACKED_FAMILIES = ("train_stacked", "tune_stacked")
GRID_LABEL = "grid"  # a tuning grid's stacked job: every point (else one point's name)


def rule_name(*parts: str) -> str:
    """A rule name made of names (Snakemake allows no ``-`` or ``.`` in one)."""
    return "_".join(p.replace("-", "_").replace(".", "_") for p in parts)


def stacked_rule(task: str, optimizer: str) -> str:
    return rule_name("train_stacked", task, optimizer)


def tune_stacked_rule(task: str, optimizer: str, label: str) -> str:
    return rule_name("tune_stacked", task, optimizer, label)


def rule_family(name: str) -> str:
    """A rule's family: the stacked jobs' rules by their stage, the others by their name."""
    for family in STACKED_FAMILIES:
        if name.startswith(f"{family}_"):
            return family
    return name


def rules_writing(run_dir: str) -> frozenset[str]:
    """The rules that may write the run folder ``run_dir`` (whichever of them this
    configuration has): forcing one of them recomputes it."""
    parsed = parse_run_dir(run_dir)
    if parsed is None:
        return frozenset()
    kind, values = parsed
    task, optimizer = values["task"], values["optimizer"]
    if kind is RUN:
        return RUN_RULES | {stacked_rule(task, optimizer)}
    point = values["point"]
    return RUN_RULES | {
        tune_stacked_rule(task, optimizer, GRID_LABEL),
        tune_stacked_rule(task, optimizer, point),
    }

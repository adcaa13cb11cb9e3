# Shared by every stage: the resolved configuration, its plan (amsgrad_repro.plan: the
# jobs, their outputs, the targets), the paths (amsgrad_repro.layout) and the input
# functions and params the rules call. Rules stay thin and call the package's CLI.

import json
import os
import shlex
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

try:
    from amsgrad_repro import startup
except ModuleNotFoundError:
    raise WorkflowError(
        f"the Python running Snakemake ({sys.executable}) does not have the amsgrad-repro "
        "package: run `make install` and start .venv/bin/snakemake"
    ) from None

from amsgrad_repro.analysis.claims_spec import (
    ClaimsError,
    check_claims,
    load_claims_file,
    not_run_line,
)
from amsgrad_repro import layout
from amsgrad_repro.kinds import SAMPLES, train_rule
from amsgrad_repro.config import ConfigError, enabled_tasks, error_source, resolve
from amsgrad_repro.plan import TABLE_FILES
from amsgrad_repro.plan import plan as _plan
from amsgrad_repro.plan import runs_of as _runs_of

# Jobs run `amsgrad-repro`: the one beside this interpreter, even when PATH lacks it.
try:
    startup.own_cli_on_path(
        deployed_per_rule="CONDA" in str(workflow.deployment_settings.deployment_method)
    )
except startup.StartupError as error:
    raise WorkflowError(str(error)) from None

# Jobs die with this Snakemake; a lock left by a killed one is cleared (or explained).
startup.snakemake_started(workflow)

COMMAND_LINE_CONFIG = workflow.config_settings.overwrite_config


def config_error(error):
    """A configuration error for the user, prefixed by where the value came from."""
    return WorkflowError(f"{error_source(str(error), COMMAND_LINE_CONFIG)}: {error}")


try:
    SETTINGS = resolve(
        config,
        os.path.join(workflow.basedir, "workflow", "schemas", "config.schema.yaml"),
        overrides=COMMAND_LINE_CONFIG,
        plugin_cache=Path(workflow.basedir, ".snakemake", "amsgrad-repro"),
    )
except ConfigError as error:
    raise config_error(error) from None

# The claims' names against the configuration, now rather than when analyse runs.
CLAIMS_FILE = os.path.relpath(os.path.join(workflow.basedir, "workflow", "claims.yaml"))
try:
    _NOT_RUN = check_claims(load_claims_file(CLAIMS_FILE), SETTINGS, CLAIMS_FILE)
except ClaimsError as error:
    raise WorkflowError(str(error)) from None
if _NOT_RUN and workflow.is_main_process:
    print(not_run_line(_NOT_RUN, SETTINGS.get("scale")), file=sys.stderr)

# Which jobs exist, what each writes, the targets (amsgrad_repro.plan).
PLAN = _plan(SETTINGS)
SEEDS = list(PLAN.seeds)

from amsgrad_repro.optimizers import catalogue as _catalogue
from amsgrad_repro.optimizers import scalar_form as _scalar_form
from amsgrad_repro.optimizers import task_settings as _optimizer_settings
from amsgrad_repro.run_settings import job_plugins as _job_plugins
from amsgrad_repro.run_settings import job_settings as _job_settings

_SPECS = _catalogue(SETTINGS.get("plugins"))


def quoted(value):
    """A value as shell-quoted JSON for the CLI (keys sorted: the same settings give the
    same params, which Snakemake compares to decide a rerun)."""
    return shlex.quote(json.dumps(value, sort_keys=True))


def task_settings(task):
    """The resolved settings of one task, for the rules that read all its optimizers'
    runs (figures, sensitivity), as shell-quoted JSON."""
    return quoted(SETTINGS["tasks"][task])


def job_settings(task, optimizer, settings=None):
    """What one job of this task x optimizer is given (amsgrad_repro.run_settings): only
    its own resolved settings, so that changing another optimizer's reruns nothing here.
    ``settings`` replaces the task's (a tuning grid point's)."""
    task_values = SETTINGS["tasks"][task] if settings is None else settings
    return quoted(_job_settings(task, task_values, _SPECS[optimizer]))


def job_plugins(optimizer):
    """The plug-in declaration a job of this optimizer needs, as shell-quoted JSON."""
    return quoted(_job_plugins(SETTINGS.get("plugins"), optimizer))


def compiled(task, optimizer):
    """Whether the compiled kernel runs this task x optimizer (else the generic path)."""
    spec = _SPECS[optimizer]
    settings = _optimizer_settings(spec, task, SETTINGS["tasks"][task])
    return _scalar_form(spec, settings) is not None


def all_settings():
    """The whole resolved configuration, as shell-quoted JSON."""
    return shlex.quote(json.dumps(SETTINGS, sort_keys=True))


def dataset_settings(dataset):
    """A dataset's sources, checksums and expectations, as shell-quoted JSON."""
    if dataset not in SETTINGS.get("datasets", {}):
        raise WorkflowError(f"dataset {dataset!r} is not configured under datasets:")
    return shlex.quote(json.dumps(SETTINGS["datasets"][dataset], sort_keys=True))


# --- Paths (amsgrad_repro.layout): the rules' patterns and the paths of this run ----------

RUN = layout.RUN.pattern  # results/runs/{task}/{optimizer}/{seed}
TUNING_RUN = layout.TUNING_RUN.pattern
log_path, benchmark_path = layout.log, layout.benchmark


# The one global block: what a seed and a grid value look like in any path. Which tasks a
# rule serves stays with the rule (train, train_vae, synthetic_run, tune_run share names).
wildcard_constraints:
    seed=layout.FIELDS["seed"][0],
    point=layout.FIELDS["point"][0],


def dataset_cache(dataset):
    """The cache a training job reads, made by rule prepare_dataset (data.smk). It is
    renamed into place only when complete: if it exists, the conversion finished."""
    return layout.DATASET_CACHE.build(dataset=dataset)


def run_dir(task, optimizer, seed):
    return layout.run_dir(task, optimizer, seed)


def runs_of(task, filename=layout.METRICS):
    """Every seed's output file of every optimizer of a task."""
    return _runs_of(SETTINGS["tasks"], task, SEEDS, filename)


# --- Synthetic problems (workflow/rules/synthetic.smk) ---------------------------------

SYNTHETIC_TASKS = list(PLAN.synthetic_tasks)


# --- Training tasks (workflow/rules/train.smk) -----------------------------------------

TRAINING_TASKS = list(PLAN.training_tasks)


def training_cache(task):
    """The dataset cache a training task reads; its dataset must be configured."""
    return dataset_cache(training_dataset(task))


def training_dataset(task):
    dataset = SETTINGS["tasks"][task]["dataset"]
    if dataset not in SETTINGS.get("datasets", {}):
        raise WorkflowError(f"tasks.{task}.dataset: {dataset!r} is not under datasets:")
    return dataset


def task_resource(task, name, default=None):
    """One of a task's declared needs (gpus, mem_mb, runtime, cpus, gpu_model)."""
    return SETTINGS["tasks"][task]["resources"].get(name, default)


# The per-seed training rules and the tasks each serves: rule train, and one rule per
# kind whose runs also write samples (kinds.SAMPLES: the VAE's image grid, the language
# model's text), which declares them.
TRAIN_RULES = PLAN.train_rules
SAMPLE_TASKS = list(PLAN.sample_tasks)


def samples_of(task):
    """The samples declaration (kinds.SAMPLES) of a task's kind."""
    return SAMPLES[SETTINGS["tasks"][task]["kind"]]


def run_outputs(rule):
    """A training rule's outputs: the run files, and the samples of its kind (shown in the
    report beside the run)."""
    outputs = {
        "metrics": f"{RUN}/{layout.METRICS}",
        "run": f"{RUN}/{layout.RUN_RECORD}",
        "checkpoint": f"{RUN}/{layout.CHECKPOINT}",
    }
    for kind, samples in SAMPLES.items():
        if train_rule(kind) == rule:
            outputs["samples"] = report(
                f"{RUN}/{samples.file}",
                caption=f"../report/{samples.caption}",
                category="Samples of each run",
                subcategory="{task}",
                labels={"task": "{task}", "optimizer": "{optimizer}", "seed": "{seed}"},
            )
    return outputs


def task_pattern(tasks):
    """A wildcard constraint matching exactly these task names."""
    return "|".join(tasks) or "no_such_task"


# --- Grids (workflow/rules/grids.smk) --------------------------------------------------

# Checked with the rest of the configuration (config.resolve, above).
GRIDS = list(PLAN.grids)


def grid_settings(grid):
    """A grid's declaration, as shell-quoted JSON for the CLI."""
    return shlex.quote(json.dumps(SETTINGS["grids"][grid], sort_keys=True))


def grid_plugins(grid):
    """The plug-in declarations a grid's optimizers name, as shell-quoted JSON."""
    plugins = SETTINGS.get("plugins") or {}
    used = {
        n: plugins[n] for n in SETTINGS["grids"][grid]["optimizers"] if n in plugins
    }
    return shlex.quote(json.dumps(used, sort_keys=True))


def grid_tables():
    return [layout.GRID_TABLE.build(grid=grid) for grid in GRIDS]


# --- Analysis (workflow/rules/analysis.smk) --------------------------------------------

TABLES = [layout.TABLES.child(name).pattern for name in TABLE_FILES]


def all_run_records():
    """Every run.json of every enabled task."""
    return [
        path for task in enabled_tasks(SETTINGS) for path in runs_of(task, "run.json")
    ]


def all_aggregates():
    return [layout.AGGREGATE.build(task=task) for task in enabled_tasks(SETTINGS)]


# --- Tuning (workflow/rules/tune.smk) --------------------------------------------------

from amsgrad_repro.tuning import grid as _tuning

# {task: grid} of the tasks tuned in this run (empty unless tune: true).
TUNED = PLAN.tuned
TUNING_SEEDS = list(PLAN.tuning_seeds)


def tuning_runs(task, optimizer=None):
    """Every grid run's run.json of a tuned task (or of one of its optimizers)."""
    grid = TUNED[task]
    return [
        f"{layout.tuning_run_dir(task, opt, point, seed)}/{layout.RUN_RECORD}"
        for opt in ([optimizer] if optimizer else grid["optimizers"])
        for point in _tuning.grid_points(grid, opt)
        for seed in TUNING_SEEDS
    ]


def tuning_selection(task, optimizer):
    """The tuning stage's choice that the replicated runs of a tuned optimizer read, as a
    list (empty when the task × optimizer is not tuned) for rule inputs."""
    if task in TUNED and optimizer in TUNED[task]["optimizers"]:
        return [layout.SELECTION.build(task=task, optimizer=optimizer)]
    return []


def hparams_file_arg(task, optimizer):
    return " ".join(
        f"--hparams-file {path}" for path in tuning_selection(task, optimizer)
    )


def grid_point_settings(task, optimizer, point):
    """One grid point's job settings (``point``: its folder name, layout.point_name), as
    shell-quoted JSON for the train command."""
    settings = _tuning.grid_settings(
        SETTINGS["tasks"][task],
        optimizer,
        layout.parse_point(point),
        TUNED[task]["epochs"],
    )
    return job_settings(task, optimizer, settings)


def sensitivity_files():
    return [layout.SENSITIVITY.build(task=task) for task in TUNED]


# --- Stacked jobs (workflow/rules/stacked.smk) -----------------------------------------

STACKED_JOBS = PLAN.stacked


def stacked_members(job):
    """A stacked job's members (seed, output folder, own hyper-parameters), as JSON."""
    return quoted([m.as_json() for m in job.members])


# --- Pulled runs made with other settings (amsgrad_repro.staleness) --------------------
# Snakemake's params trigger cannot see them (no metadata): stop before any stage reads
# them, unless this call recomputes them or the user turned the params trigger off.


def _check_pulled_runs():
    command = startup.forcing()
    if (
        not workflow.is_main_process
        or os.environ.get(startup.SKIP_STALE_CHECK_ENV)
        or not command.params_trigger
    ):
        return
    try:
        startup.check_pulled_runs(
            Path(workflow.basedir),
            SETTINGS,
            command.recomputes,
            startup.snakemake_command_line(),
        )
    except startup.ReportedError as error:
        raise WorkflowError(str(error)) from None


_check_pulled_runs()


def all_targets():
    """What rule all asks for (amsgrad_repro.plan)."""
    return list(PLAN.targets)

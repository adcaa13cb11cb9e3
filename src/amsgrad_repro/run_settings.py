"""The settings one job is given: a task's settings resolved for one of its optimizers.

Snakemake reruns a job when its parameters differ from those recorded with its outputs
(``--rerun-triggers params``). Passing every job its whole task's settings made a change
to any optimizer's setting rerun all of them: a new shared ``lr`` for logistic regression
retrained lion, whose own override keeps its α. So a job's ``--settings`` (and with them
its params and the ``settings`` its ``run.json`` records) are :func:`job_settings`: the
task's settings with its optimizers, their shared ``hparams`` and every ``overrides``
replaced by this optimizer's resolved hyper-parameters, and without what the job does not
read (cluster ``resources``, ``figure`` options, ``enabled``; ``generic_steps`` for an
optimizer that runs the compiled 1-D kernel). Passing them back through
:func:`amsgrad_repro.optimizers.task_settings` gives the same optimizer settings, so the
job trains exactly as before (tested for every shipped task and optimizer).

``paper`` stays: it changes no number, but the synthetic runs' records carry it to
Figure 1's SHORTENED note.

Kept free of torch: the Snakemake process computes these for every job.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from amsgrad_repro.optimizers import OptimizerSpec, hparams, scalar_form, task_settings

# Settings that do not change what a run computes: editing them keeps its checkpoint and
# its results valid (the optimizer's hyper-parameters enter the identity merged with its
# overrides; ``paper`` only labels a reduced run).
NOT_IDENTITY = frozenset(
    {"resources", "optimizers", "overrides", "hparams", "enabled", "figure", "paper"}
)

# Task keys no training or synthetic job reads: the rules (resources), the figures
# (figure) and the planning (enabled, the task's optimizer list and other optimizers'
# overrides) use them.
NOT_READ_BY_JOBS = frozenset({"resources", "figure", "enabled", "optimizers", "overrides"})


def job_settings(task_name: str, task: Mapping[str, Any], spec: OptimizerSpec) -> dict[str, Any]:
    """The settings of ``spec``'s job(s) of ``task``, in their JSON form (what the job
    reads back), with keys sorted.

    ``hparams`` holds every hyper-parameter a configuration may set for this optimizer, at
    its resolved value (declaration defaults, the task's shared values it declares, its
    overrides); the values fixed by the optimizer's name follow from ``optimizers``."""
    resolved = hparams.as_record(task_settings(spec, task_name, task))
    settings = {k: v for k, v in task.items() if k not in NOT_READ_BY_JOBS}
    settings["optimizers"] = [spec.name]
    settings["hparams"] = {k: v for k, v in resolved.items() if k in spec.hparam_rules}
    if task.get("kind") == "synthetic" and _compiled(spec, task_name, task):
        settings.pop("generic_steps", None)  # only the generic tensor path reads it
    return json.loads(json.dumps(settings, sort_keys=True))


def job_plugins(plugins: Mapping[str, Any] | None, optimizer: str) -> dict[str, Any]:
    """The plug-in declaration a job of ``optimizer`` needs (none for a built-in)."""
    plugins = plugins or {}
    return {optimizer: plugins[optimizer]} if optimizer in plugins else {}


def _compiled(spec: OptimizerSpec, task_name: str, task: Mapping[str, Any]) -> bool:
    """Whether the compiled 1-D kernel runs this synthetic task × optimizer."""
    return scalar_form(spec, task_settings(spec, task_name, task)) is not None

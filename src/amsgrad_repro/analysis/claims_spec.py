"""``workflow/claims.yaml`` checked at start-up: its shape against
``workflow/schemas/claims.schema.yaml``, and every name a claim uses against the resolved
configuration, so that a typo stops ``snakemake`` (a dry run too) before the first job, in
one line naming the claim, the bad name and the valid ones, instead of failing ``analyse``
after hours of training.

What a claim names, and what it is checked against:

* ``task``: a task of the configuration for a rule type about a task, a grid for one about
  a grid (``analysis.verdicts.RULE_TYPES``, ``subject``);
* every optimizer field of its rule type: an optimizer of the catalogue (the built-ins and
  the configuration's plug-ins);
* ``metric``: one the task's kind records (``train.api.metric_names``: ``<split>_loss`` and
  the kind's extras for the training kinds, ``synthetic.problems.SYNTHETIC_METRICS`` for the
  synthetic problems and grids), or the tuning stage's ``hparam_sensitivity`` on a training
  task;
* on a grid: ``problem`` among the grid's problems, ``axis`` and the keys of ``where`` among
  its axes.

A name that exists in config.yaml but that this run does not run (a task or grid a preset
leaves off, an optimizer a preset or ``--config`` takes off a task's list, a robustness
claim without ``tune: true``) is not an error: ``analyse`` gives such a claim the verdict
"not run", as it always has, and :func:`check_claims` returns each of them with the reason,
which the workflow prints in one line at start-up so that no claim drops out unseen.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from amsgrad_repro.analysis.verdicts import RULE_TYPES
from amsgrad_repro.kinds import TRAINING_KINDS
from amsgrad_repro.optimizers import catalogue
from amsgrad_repro.settings_base import REPO_ROOT, ConfigError, key_path
from amsgrad_repro.synthetic.problems import SYNTHETIC_METRICS
from amsgrad_repro.train.api import kind_metric_names
from amsgrad_repro.train.spikes import SPIKE_METRIC
from amsgrad_repro.tuning.grid import tuned_tasks

CLAIMS_FILE = Path("workflow") / "claims.yaml"
CLAIMS_SCHEMA = REPO_ROOT / "workflow" / "schemas" / "claims.schema.yaml"
# The tuning stage's per-seed robustness value (tuning.select.SENSITIVITY_METRIC; that
# module imports pandas, which start-up does without).
SENSITIVITY_METRIC = "hparam_sensitivity"


class ClaimsError(ConfigError):
    """A claim of workflow/claims.yaml is malformed or names something the configuration
    does not have; the message names the file, the claim, the bad name and the valid ones."""


@dataclass(frozen=True)
class NotRun:
    """A well-formed claim that this configuration cannot decide, and why."""

    claim: str
    reason: str


def load_claims_file(path: str | Path, schema_path: Path = CLAIMS_SCHEMA) -> list[dict[str, Any]]:
    """The claims of ``path``, checked against the claims schema (ClaimsError otherwise)."""
    where = _shown(path)
    try:
        with open(path, encoding="utf-8") as handle:
            claims = yaml.safe_load(handle)
    except OSError as error:
        raise ClaimsError(f"{where}: cannot read the claims: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise ClaimsError(f"{where}: not valid YAML: {error}") from None
    claims = [] if claims is None else claims
    errors = sorted(
        jsonschema.Draft202012Validator(_schema(Path(schema_path))).iter_errors(claims),
        key=lambda e: [str(p) for p in e.absolute_path],
    )
    if errors:
        lines = [f"  {_claim_key(claims, list(e.absolute_path))}: {e.message}" for e in errors[:5]]
        raise ClaimsError(f"{where}: invalid claims:\n" + "\n".join(lines))
    seen: dict[str, int] = {}
    for index, claim in enumerate(claims):
        if claim["id"] in seen:
            raise ClaimsError(
                f"{where}: claim {claim['id']!r} (#{index}): the id is already claim "
                f"#{seen[claim['id']]}'s; give each claim its own id"
            )
        seen[claim["id"]] = index
    return claims


def check_claims(
    claims: Sequence[Mapping[str, Any]],
    settings: Mapping[str, Any],
    path: str | Path = CLAIMS_FILE,
) -> list[NotRun]:
    """Every name of every claim checked against the resolved ``settings`` (ClaimsError
    for the first wrong one); returns the claims this run cannot decide, with the reason."""
    optimizers = list(catalogue(settings.get("plugins")))  # resolve() checked the plug-ins
    tuned = tuned_tasks(settings)
    not_run = []
    for claim in claims:
        reason = _check_claim(claim, settings, optimizers, tuned, _shown(path))
        if reason:
            not_run.append(NotRun(claim["id"], reason))
    return not_run


def not_run_line(not_run: Sequence[NotRun], scale: Any) -> str:
    """The one line start-up prints about the claims this run leaves undecided, grouped by
    reason: ``claims not decided at scale quick (verdict 'not run'): cifarnet is off
    (cifarnet_train_loss, cifarnet_test_loss); needs tune: true (…)``."""
    by_reason: dict[str, list[str]] = {}
    for item in not_run:
        by_reason.setdefault(item.reason, []).append(item.claim)
    groups = "; ".join(f"{reason} ({', '.join(ids)})" for reason, ids in by_reason.items())
    return f"claims not decided at scale {scale} (verdict 'not run'): {groups}"


def _check_claim(
    claim: Mapping[str, Any],
    settings: Mapping[str, Any],
    optimizers: list[str],
    tuned: Mapping[str, Any],
    where: str,
) -> str:
    """ClaimsError for a wrong name; the reason the claim cannot be decided ("" if it can)."""
    rule = claim["rule"]
    declared = RULE_TYPES[rule["type"]]

    def refuse(field: str, text: str) -> ClaimsError:
        return ClaimsError(f"{where}: claim {claim['id']!r}, {field}: {text}")

    sections = {"task": "tasks", "grid": "grids"}
    section = settings.get(sections[declared.subject]) or {}
    name = claim["task"]
    if name not in section:
        other = "grids" if declared.subject == "task" else "tasks"
        if name in (settings.get(other) or {}):
            kinds = [t for t, r in RULE_TYPES.items() if r.subject != declared.subject]
            raise refuse(
                "task",
                f"{name!r} is one of the {other}, but rule type {rule['type']!r} is about "
                f"a {declared.subject} (rule types about {other}: {', '.join(kinds)})",
            )
        raise refuse(
            "task",
            f"unknown {declared.subject} {name!r} (the {sections[declared.subject]} of the "
            f"configuration: {', '.join(section) or 'none'})",
        )
    subject = section[name]
    for field in declared.optimizers:
        if rule[field] not in optimizers:
            raise refuse(
                f"rule.{field}",
                f"unknown optimizer {rule[field]!r} (known: {', '.join(optimizers)})",
            )
    metrics = _metrics(subject, declared.subject)
    if claim["metric"] not in metrics:
        raise refuse(
            "metric",
            f"{declared.subject} {name!r} records no metric {claim['metric']!r} "
            f"(it records: {', '.join(metrics)})",
        )
    if declared.subject == "grid":
        _check_grid_names(rule, name, subject, refuse)
    return _why_not_run(claim, declared.optimizers, subject, tuned)


def _metrics(subject: Mapping[str, Any], kind_of_subject: str) -> list[str]:
    """The metrics a task (of its kind) or a grid records, by name."""
    if kind_of_subject == "grid" or subject.get("kind") == "synthetic":
        return list(SYNTHETIC_METRICS)
    if subject.get("kind") in TRAINING_KINDS:
        spikes = [SPIKE_METRIC] if subject.get("spike_rule") else []
        return [*kind_metric_names(subject["kind"]), *spikes, SENSITIVITY_METRIC]
    return []


def _check_grid_names(rule: Mapping[str, Any], name: str, grid: Mapping[str, Any], refuse) -> None:
    problems = list(grid.get("problems") or [])
    if rule["problem"] not in problems:
        raise refuse(
            "rule.problem",
            f"grid {name!r} runs no problem {rule['problem']!r} (its problems: "
            f"{', '.join(problems)})",
        )
    axes = list(grid.get("axes") or {})
    named = [("rule.axis", rule["axis"])] if "axis" in rule else []
    named += [(f"rule.where.{axis}", axis) for axis in rule.get("where") or {}]
    for field, axis in named:
        if axis not in axes:
            raise refuse(field, f"grid {name!r} has no axis {axis!r} (its axes: {', '.join(axes)})")


def _why_not_run(
    claim: Mapping[str, Any],
    fields: tuple[str, ...],
    subject: Mapping[str, Any],
    tuned: Mapping[str, Any],
) -> str:
    """Why this run leaves the claim undecided ("" when it runs what the claim needs)."""
    if not subject.get("enabled", True):
        return f"{claim['task']} is off"
    names = [claim["rule"][field] for field in fields]
    missing = [n for n in names if n not in (subject.get("optimizers") or [])]
    if missing:
        return f"{claim['task']} does not run {', '.join(missing)}"
    if claim["metric"] == SENSITIVITY_METRIC:
        if claim["task"] not in tuned:
            return "needs tune: true"
        untuned = [n for n in names if n not in tuned[claim["task"]]["optimizers"]]
        if untuned:
            return f"tuning of {claim['task']} leaves out {', '.join(untuned)}"
    return ""


def _claim_key(claims: Any, path: list) -> str:
    """``claim 'logreg_train_loss' (#7).rule.side`` for a schema error's path."""
    if not path or not isinstance(claims, list) or not isinstance(path[0], int):
        return key_path(path)
    claim = claims[path[0]]
    ident = claim.get("id") if isinstance(claim, Mapping) else None
    head = f"claim {ident!r} (#{path[0]})" if isinstance(ident, str) else f"claim #{path[0]}"
    return ".".join([head, *map(str, path[1:])])


def _shown(path: str | Path) -> str:
    """The claims file as the user knows it: relative to the project when inside it."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


@functools.cache
def _schema(schema_path: Path) -> dict[str, Any]:
    with open(schema_path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)

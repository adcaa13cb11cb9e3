"""Pulled runs made with other settings than the configuration gives them: found, not used.

Snakemake reruns a job whose parameters changed by comparing them with the metadata it
recorded when it made the job's outputs. Results pulled from a DVC remote (``make pull``)
carry no such metadata, so after a pull ``--config 'tasks={mlp: {hparams: {lr: 1e6}}}'``
printed "Nothing to be done" and the aggregates, figures, claims and report silently used
runs made with the old α. So:

* ``share pull`` records every run folder it pulled, with the SHA-256 of its ``run.json``,
  in :data:`PULLED_RECORD`; a run recomputed here later has another ``run.json`` and drops
  out (Snakemake's own triggers cover it from then on).
* When Snakemake starts, the workflow (``workflow/rules/common.smk``) compares each pulled
  run's recorded settings with the settings the current configuration gives that run (the
  same task settings, tuning selection or grid point its ``train``/``synthetic`` job would
  be given), before any stage that reads runs, and stops with the list of stale runs and
  the command that recomputes them (:class:`StaleRuns`).

Only what defines a run's numbers is compared (:func:`run_identity`): editing a task's
``resources``, its figure options or another optimizer's overrides leaves its runs valid.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amsgrad_repro import commands, layout
from amsgrad_repro.errors import ReportedError
from amsgrad_repro.formatting import plural
from amsgrad_repro.io import write_json
from amsgrad_repro.optimizers import catalogue
from amsgrad_repro.run_settings import job_settings
from amsgrad_repro.settings_base import enabled_tasks
from amsgrad_repro.tuning import grid as tuning

PULLED_RECORD = Path(layout.RESULTS) / ".pulled.json"
RUN_RECORD = layout.RUN_RECORD
# What a job is given but only labels its results (a run shorter than ``paper`` says so).
LABELS = frozenset({"paper"})
LISTED = 20


class StaleRuns(ReportedError):
    """Pulled runs disagree with the configuration; the message lists them and the fix."""


@dataclass(frozen=True)
class Stale:
    """One run folder and how its recorded settings differ from the current ones."""

    run_dir: str
    differences: list[str]


def run_identity(
    settings: Mapping[str, Any], optimizer: str, plugins: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """What defines one optimizer's run of a task: the settings its job is given
    (:func:`amsgrad_repro.run_settings.job_settings`: the task settings the job reads and
    that optimizer's resolved hyper-parameters) less what changes no number. ``settings``
    may be a whole task's or one job's (a run's record): both give the same identity."""
    spec = catalogue(plugins)[optimizer]
    identity = job_settings("", settings, spec)
    return {k: v for k, v in identity.items() if k not in LABELS}


def differences(recorded: Mapping[str, Any], expected: Mapping[str, Any]) -> list[str]:
    """``key: value in the run, value now`` for each dotted key that differs."""
    before, after = _flatten(recorded), _flatten(expected)
    return [
        f"{key}: {_show(before, key)} in the run, {_show(after, key)} now"
        for key in sorted(set(before) | set(after))
        if before.get(key, _ABSENT) != after.get(key, _ABSENT)
    ]


_ABSENT = object()


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping) and value:
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}{key}."))
        return flat
    return {prefix.rstrip("."): value}


def _show(flat: Mapping[str, Any], key: str) -> str:
    return "(unset)" if key not in flat else json.dumps(flat[key])


# --- the record of pulled runs (written by share pull) ----------------------------------


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def record_pulled(root: Path, run_dirs: Iterable[str]) -> None:
    """Remember these run folders (relative to ``root``) as pulled, as they are now."""
    path = root / PULLED_RECORD
    runs = _read_record(path)
    for run_dir in run_dirs:
        record = root / run_dir / RUN_RECORD
        if record.is_file():
            runs[Path(run_dir).as_posix()] = _digest(record)
    write_json(path, {"runs": dict(sorted(runs.items()))})


def _read_record(path: Path) -> dict[str, str]:
    try:
        return dict(json.loads(path.read_text()).get("runs", {}))
    except (OSError, ValueError, AttributeError):
        return {}


def pulled_runs(root: Path) -> list[str]:
    """Pulled run folders whose ``run.json`` is still the pulled one."""
    runs = _read_record(root / PULLED_RECORD)
    found = []
    for run_dir, digest in runs.items():
        record = root / run_dir / RUN_RECORD
        if record.is_file() and _digest(record) == digest:
            found.append(run_dir)
    return found


# --- what the configuration gives a run ---------------------------------------------------


def expected_settings(
    root: Path, settings: Mapping[str, Any], run_dir: str
) -> dict[str, Any] | None:
    """The task settings the configuration gives the run in ``run_dir``, as its job would
    receive them; None when no stage of this configuration reads that run."""
    tasks = settings["tasks"]
    match = layout.RUN.parse(run_dir)
    if match:
        task, optimizer, seed = match["task"], match["optimizer"], match["seed"]
        if task not in enabled_tasks(settings) or seed not in settings["seeds"]:
            return None
        if optimizer not in tasks[task]["optimizers"]:
            return None
        grid = tuning.tuned_tasks(settings).get(task)
        if grid and optimizer in grid["optimizers"]:
            selection = root / layout.SELECTION.build(task=task, optimizer=optimizer)
            if not selection.is_file():
                return None  # Snakemake will make the selection, then rerun the run
            return tuning.apply_selection(tasks[task], optimizer, selection)
        return dict(tasks[task])
    match = layout.TUNING_RUN.parse(run_dir)
    if match:
        grid = tuning.tuned_tasks(settings).get(match["task"])
        seeds = tuning.tuning_seeds(settings.get("tuning") or {})
        if not grid or match["optimizer"] not in grid["optimizers"]:
            return None
        point = layout.parse_point(match["point"])
        if point not in tuning.grid_points(grid, match["optimizer"]) or match["seed"] not in seeds:
            return None
        return tuning.grid_settings(tasks[match["task"]], match["optimizer"], point, grid["epochs"])
    return None


def stale_runs(
    root: Path, settings: Mapping[str, Any], exempt: Callable[[str], bool] = lambda _: False
) -> list[Stale]:
    """Every pulled run whose recorded settings differ from what the configuration gives
    it, less those ``exempt`` says are being recomputed (``--forcerun``)."""
    found = []
    for run_dir in pulled_runs(root):
        if exempt(run_dir):
            continue
        expected = expected_settings(root, settings, run_dir)
        if expected is None:
            continue
        info = json.loads((root / run_dir / RUN_RECORD).read_text())
        optimizer = info.get("optimizer", "")
        plugins = settings.get("plugins")
        diff = differences(
            run_identity(info.get("settings") or {}, optimizer, plugins),
            run_identity(expected, optimizer, plugins),
        )
        if diff:
            found.append(Stale(run_dir, diff))
    return found


# The words every stale-runs message contains (``share pull`` finds the message by them).
STALE_MARK = "made with other settings than this configuration gives them"


def stale_message(stale: list[Stale], command: list[str]) -> str:
    """The list of stale runs and the commands that recompute them (and everything
    derived from them), for the user who ran ``command``."""
    lines = [
        f"{plural(len(stale), 'pulled run')} {'was' if len(stale) == 1 else 'were'} "
        f"{STALE_MARK}. Snakemake cannot see that (pulled results carry no Snakemake "
        "metadata), and the aggregates, figures, claims and report would use them:"
    ]
    for item in stale[:LISTED]:
        shown = "; ".join(item.differences[:3])
        more = f"; +{len(item.differences) - 3} more" if len(item.differences) > 3 else ""
        lines.append(f"  {item.run_dir}: {shown}{more}")
    if len(stale) > LISTED:
        lines.append(f"  ... and {len(stale) - LISTED} more")
    records = [f"{item.run_dir}/{RUN_RECORD}" for item in stale]
    snakemake, *make = commands.recompute_runs(records, command)
    lines += [
        "Recompute them and everything derived from them (--forcerun and the run records "
        "last, with your --config and profile):",
        f"  {snakemake}",
        *(f"or: {line}" for line in make),
        'Or run with the settings they were made with (each run.json\'s "settings"), or '
        "pull results made with this configuration.",
    ]
    return "\n".join(lines)

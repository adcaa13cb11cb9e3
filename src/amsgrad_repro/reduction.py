"""How a run's setting compares with the full one it stands in for.

Each task declares its full setting in a ``paper`` block (``epochs`` and ``dataset`` for the
neural tasks, ``steps`` for the synthetic problems, whose step count the paper does not give:
there it is this pipeline's default, which shows the paper's Figure 1). The ``smoke`` and
``quick`` presets run less. Figures (``train.figure``) and verdicts (``analysis.tables``)
both say so from the one description built here, so a reduced run is never read as the
paper's result.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from amsgrad_repro.formatting import plural


@dataclass(frozen=True)
class Reduction:
    """``length`` says what was run against the full setting (``1 of 100 epochs``);
    ``notes`` lists every reduction (``SHORTENED: …``, ``DATA: …``, ``SUBSET: …``)."""

    length: str
    shortened: bool
    notes: list[str] = field(default_factory=list)


def reduction(task: Mapping[str, Any], records: Sequence[Mapping[str, Any]] = ()) -> Reduction:
    """The reductions of a task's configured setting; ``records`` (its runs' ``run.json``)
    add the steps a training run took per run, when known."""
    full = task.get("paper") or {}
    synthetic = task.get("kind") == "synthetic"
    unit, ran = ("step", task.get("steps", 0)) if synthetic else ("epoch", task.get("epochs", 0))
    length, shortened = _length(int(ran), full.get(f"{unit}s"), unit)
    notes = [f"SHORTENED: {length}"] if shortened else []
    if synthetic:
        return Reduction(length, shortened, notes)
    steps = sorted(
        {int(r["steps"]) for r in records if r.get("status") == "completed" and "steps" in r}
    )
    if steps:
        span = str(steps[0]) if len(steps) == 1 else f"{steps[0]}–{steps[-1]}"
        length += f" ({span} steps per run)"
    if full.get("dataset") and task.get("dataset") != full["dataset"]:
        notes.append(f"DATA: {task.get('dataset')} instead of {full['dataset']}")
    subset = task.get("subset") or {}
    if any(subset.values()):
        notes.append(
            "SUBSET: " + ", ".join(f"{k} {v}" for k, v in subset.items() if v) + " examples"
        )
    return Reduction(length, shortened, notes)


def _length(ran: int, full: Any, unit: str) -> tuple[str, bool]:
    if not full:
        return plural(ran, unit), False
    return f"{ran} of {plural(int(full), unit)}", ran < int(full)

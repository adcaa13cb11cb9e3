"""Claims about grids (``synthetic.grid_spec``), judged on the grid's table.

A claim whose rule type is declared with subject ``grid`` (``analysis.verdicts.RULE_TYPES``)
names a grid as its ``task``; its evaluator here is registered for that type. "Reaches x*"
is the grid's own ``success_radius`` test on a cell's mean final x over seeds. Every
interval comes from resampling the seeds (2,000 resamples, the same indices in every cell,
since a seed draws the same gradients in every cell), so a deterministic problem, which
runs one seed, gets a point interval.

Only settled cells count (``synthetic.settle``: a cell is settled when every seed's run
is): an unsettled cell is neither a success nor a failure, every verdict line says how
many there were, and a one-cell threshold on an unsettled cell is inconclusive.

* ``grid_threshold``: one cell's per-seed final metric, judged by ``verdicts.decide`` exactly
  like a ``threshold`` rule.
* ``grid_boundary``: along ``axis`` with the other axes fixed by ``where``, the smallest
  value from which on every cell reaches x* (Zhang et al.'s "β2 large enough"); its
  interval is the 2.5–97.5% range of that value over seed resamples (+∞ when no value
  qualifies). Reproduced when it exists in ≥ 97.5% of resamples, not reproduced when in
  ≤ 2.5%, else inconclusive.
* ``grid_agreement``: the share of cells whose outcome agrees with a prediction computed
  from the theory alone (:data:`PREDICTIONS`), over ``cells: all`` or only the cells
  ``predicted_failures``; compared with ``value`` like a threshold; fewer than
  ``min_cells`` cells in the population is inconclusive.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from amsgrad_repro.analysis import verdicts
from amsgrad_repro.analysis.verdicts import (
    DEFAULT_MIN_SEEDS,
    EVALUATORS,
    INCONCLUSIVE,
    NOT_REPRODUCED,
    NOT_RUN,
    REPRODUCED,
    TOO_FEW_SEEDS,
    Evidence,
    Verdict,
    claim_row,
    claimed_side,
    decide,
    evaluates,
)
from amsgrad_repro.stats import DEFAULT_LEVEL
from amsgrad_repro.synthetic.grid_spec import GridSpec, cell_label
from amsgrad_repro.synthetic.problems import DETERMINISTIC, PARAMETER, PROBLEMS, problem_id
from amsgrad_repro.synthetic.settle import UNSETTLED, check_point

RULE_TYPES = tuple(name for name, rule in verdicts.RULE_TYPES.items() if rule.subject == "grid")
# Seed resamples behind the boundary and agreement intervals (a cell-wide statistic has
# no closed-form interval); fixed generator seed, so the table is reproducible.
RESAMPLES = 2000
X_STAR = -1.0
METRIC_COLUMNS = {"x": "final_x", "avg_regret": "final_avg_regret"}


@dataclass(frozen=True)
class GridData:
    """A grid's declaration and its table, what its claims are judged on."""

    spec: GridSpec
    table: pd.DataFrame


# A rule judged on one grid's data: one row of the claims table.
GridRule = Callable[[dict[str, Any], GridData], dict[str, Any]]
_row = claim_row


def evaluate_claim(
    claim: dict[str, Any], grids: Mapping[str, GridData], min_seeds: int = DEFAULT_MIN_SEEDS
) -> dict[str, Any]:
    """One row of the claims table for a claim about a grid (the evaluator registered for
    its rule type)."""
    return EVALUATORS[claim["rule"]["type"]](claim, Evidence(None, grids, min_seeds))


def _on_grid(name: str) -> Callable[[GridRule], GridRule]:
    """Register a rule judged on one grid's data as the evaluator of rule type ``name``:
    a grid that did not run gives "not run"; a wrong field names the claim; on a
    stochastic problem a verdict from fewer than ``min_seeds`` seeds is "too few seeds",
    as for every other claim (a deterministic problem's one seed is exact)."""

    def register(rule_on_grid: GridRule) -> GridRule:
        @evaluates(name)
        def evaluator(claim: dict[str, Any], evidence: Evidence) -> dict[str, Any]:
            rule = claim["rule"]
            if claim["task"] not in evidence.grids:
                nan = float("nan")
                effect = f"{rule['type']} on grid {claim['task']}"
                return _row(claim, effect, "", Verdict(NOT_RUN, nan, nan, nan, 0), "")
            try:
                row = rule_on_grid(claim, evidence.grids[claim["task"]])
            except (KeyError, ValueError) as error:
                raise ValueError(f"claim {claim['id']}: {error}") from None
            sampled = rule["problem"] not in DETERMINISTIC
            if sampled and row["verdict"] != NOT_RUN and row["n_seeds"] < evidence.min_seeds:
                row["verdict"] = TOO_FEW_SEEDS
            return row

        return rule_on_grid

    return register


# --- selecting cells -------------------------------------------------------------------


def _rows(data: GridData, rule: Mapping[str, Any], where: Mapping[str, float]) -> pd.DataFrame:
    """The runs of one problem × optimizer in the cells matching ``where``."""
    table = data.table
    for key in ("problem", "optimizer"):
        if rule[key] not in set(table[key]):
            raise ValueError(f"{key} {rule[key]!r} is not in grid {data.spec.name}")
    selected = table[
        (table["problem"] == rule["problem"]) & (table["optimizer"] == rule["optimizer"])
    ]
    for axis, value in where.items():
        if axis not in data.spec.axis_names:
            raise ValueError(f"{axis!r} is not an axis of grid {data.spec.name}")
        selected = selected[np.isclose(selected[axis], float(value), rtol=1e-9, atol=0.0)]
    if selected.empty:
        raise ValueError(f"no cell of grid {data.spec.name} matches {dict(where)}")
    return selected


def _seed_matrix(rows: pd.DataFrame, column: str) -> tuple[pd.DataFrame, np.ndarray]:
    """(one row per cell with its axis values and settings, cells × seeds values)."""
    values = rows.pivot_table(index="cell", columns="seed", values=column, dropna=False)
    cells = rows.drop_duplicates("cell").set_index("cell").loc[values.index]
    return cells, values.to_numpy(dtype=float)


def _settled_cells(rows: pd.DataFrame, cells: pd.DataFrame) -> np.ndarray:
    """Per cell (the order of ``cells``): every seed settled (``synthetic.settle``); an
    unsettled cell is neither a success nor a failure of any claim."""
    if "state" not in rows:
        raise ValueError("the grid's table has no state column: run the grid again")
    moving = rows.assign(moving=rows["state"] == UNSETTLED).groupby("cell")["moving"].any()
    return ~moving.loc[cells.index].to_numpy(dtype=bool)


def _unsettled_text(rows: pd.DataFrame, settled_cells: np.ndarray) -> str:
    """The verdict line's count of unsettled cells and the budget they ran to."""
    count = int((~settled_cells).sum())
    if count == 0:
        return f"all {settled_cells.size} cells settled"
    budget = int(rows.loc[rows["state"] == UNSETTLED, "steps_run"].max())
    return (
        f"{count} of {settled_cells.size} cells unsettled at {budget:.3g} steps "
        "(counted neither way)"
    )


def _resampled_means(values: np.ndarray) -> np.ndarray:
    """resamples × cells: each cell's mean over the same resampled seeds."""
    seeds = values.shape[1]
    rng = np.random.default_rng(0)
    index = rng.integers(0, seeds, size=(RESAMPLES, seeds))
    with np.errstate(invalid="ignore"):
        return np.nanmean(values[:, index], axis=2).T


def _reaches(means: np.ndarray, radius: float) -> np.ndarray:
    """Whether a cell's mean final x is within ``radius`` of x* (NaN: it does not)."""
    with np.errstate(invalid="ignore"):
        return np.abs(means - X_STAR) < radius


def _diverged(rows: pd.DataFrame) -> str:
    return f"{rows['optimizer'].iloc[0]} {int((rows['status'] == 'diverged').sum())}"


def _compare(estimate: float, lo: float, hi: float, threshold: float, side: str) -> str:
    if side == "above":
        return REPRODUCED if lo > threshold else NOT_REPRODUCED if hi < threshold else INCONCLUSIVE
    if side == "below":
        return REPRODUCED if hi < threshold else NOT_REPRODUCED if lo > threshold else INCONCLUSIVE
    raise ValueError(f"claimed side must be 'above' or 'below', got {side!r}")


# --- rules -----------------------------------------------------------------------------


@_on_grid("grid_threshold")
def _threshold(claim: dict[str, Any], data: GridData) -> dict[str, Any]:
    rule = claim["rule"]
    rows = _rows(data, rule, rule.get("where") or {})
    if rows["cell"].nunique() != 1:
        raise ValueError(
            f"`where` {rule.get('where')} selects {rows['cell'].nunique()} cells, not one"
        )
    samples = rows[METRIC_COLUMNS[claim["metric"]]].to_numpy(dtype=float)
    verdict = decide(samples, float(rule["value"]), rule["side"], min_seeds=1)
    moving = int((rows["state"] == UNSETTLED).sum()) if "state" in rows else len(rows)
    if moving:  # a run still moving is no evidence for either side
        verdict = Verdict(INCONCLUSIVE, verdict.estimate, verdict.lo, verdict.hi, verdict.n)
    cell = {axis: rows[axis].iloc[0] for axis in data.spec.axis_names}
    effect = (
        f"mean final {claim['metric']} of {rule['optimizer']} on {rule['problem']}, "
        f"{cell_label(cell)}{_halfway(rows) if claim['metric'] == 'x' else ''}; "
        f"{_seeds_text(rows, moving)}"
    )
    threshold = claimed_side(rule["side"], float(rule["value"]), verdict)
    return _row(claim, effect, threshold, verdict, _diverged(rows))


def _seeds_text(rows: pd.DataFrame, moving: int) -> str:
    if moving:
        return (
            f"{moving} of {len(rows)} seeds unsettled at {int(rows['steps_run'].max()):.3g} "
            "steps (inconclusive, not a failure)"
        )
    return f"every seed settled ({int(rows['steps_run'].max()):.3g} steps at most)"


def _halfway(rows: pd.DataFrame) -> str:
    """The cell's mean x at the settle rule's check point H ≈ T/2 of its last round, to
    show how much it still moves."""
    # here, not at the top: it loads numba (the grids' runner)
    from amsgrad_repro.synthetic.grids import recorded_steps

    if "steps_run" not in rows or rows["steps_run"].nunique() != 1:
        return ""
    end = int(rows["steps_run"].iloc[0])
    half = check_point(end, PROBLEMS[rows["problem"].iloc[0]].period)
    columns = dict(recorded_steps(rows))
    if half not in columns:
        return ""
    return f" (mean x at t = {half:.3g}: {rows[columns[half]].mean():.4g}, at {end:.3g} steps)"


def smallest_from_which(axis_values: np.ndarray, reaches: np.ndarray) -> np.ndarray:
    """Per row of ``reaches`` (… × values sorted by ``axis_values``), the smallest axis
    value such that it and every larger one reach x*; +∞ where the largest does not."""
    tail = np.flip(np.logical_and.accumulate(np.flip(reaches, axis=-1), axis=-1), axis=-1)
    first = np.argmax(tail, axis=-1)
    found = tail.any(axis=-1)
    return np.where(found, axis_values[first], np.inf)


@_on_grid("grid_boundary")
def _boundary(claim: dict[str, Any], data: GridData) -> dict[str, Any]:
    rule = claim["rule"]
    axis, radius = rule["axis"], data.spec.success_radius
    rows = _rows(data, rule, rule.get("where") or {})
    cells, values = _seed_matrix(rows, METRIC_COLUMNS[claim["metric"]])
    others = [a for a in data.spec.axis_names if a != axis and cells[a].nunique() != 1]
    if others:
        raise ValueError(f"`where` must fix every axis but {axis} (free: {', '.join(others)})")
    order = np.argsort(cells[axis].to_numpy())
    settled_cells = _settled_cells(rows, cells)[order]
    every_value = cells[axis].to_numpy()[order]
    # Only settled cells count: an unsettled one is skipped along the axis.
    axis_values, values = every_value[settled_cells], values[order][settled_cells]
    if axis_values.size == 0:
        nan = float("nan")
        effect = f"no settled cell along {axis}: {_unsettled_text(rows, settled_cells)}"
        verdict = Verdict(INCONCLUSIVE, nan, nan, nan, values.shape[1])
        return _row(claim, effect, f"exists on the axis ({axis})", verdict, _diverged(rows))
    with np.errstate(invalid="ignore"):
        estimate = float(
            smallest_from_which(axis_values, _reaches(np.nanmean(values, axis=1), radius))
        )
    resampled = smallest_from_which(axis_values, _reaches(_resampled_means(values), radius))
    tail = (1.0 - DEFAULT_LEVEL) / 2.0
    lo = float(np.quantile(resampled, tail, method="lower"))
    hi = float(np.quantile(resampled, 1.0 - tail, method="higher"))
    outcome = (
        REPRODUCED if np.isfinite(hi) else NOT_REPRODUCED if not np.isfinite(lo) else INCONCLUSIVE
    )
    if outcome == NOT_REPRODUCED and (every_value[~settled_cells] > axis_values[-1]).any():
        # No settled cell starts a converging tail, but cells above the last settled one
        # are still moving: the boundary may lie among them.
        outcome = INCONCLUSIVE
    lowest = (
        "fails" if not _reaches(np.nanmean(values[:1], axis=1), radius)[0] else "reaches x* too"
    )
    effect = (
        f"smallest {axis} from which {rule['optimizer']} reaches x* on {rule['problem']} in "
        f"every cell ({cell_label(dict(rule.get('where') or {}))}): {estimate:.6g} "
        f"[{lo:.6g}, {hi:.6g}] over seed resamples; the smallest {axis} of the axis, "
        f"{axis_values[0]:.6g}, {lowest}; {_unsettled_text(rows, settled_cells)}"
        f"{_beside(axis, estimate, axis_values, every_value[~settled_cells], rows)}"
    )
    threshold = f"exists on the axis ({axis_values[0]:.6g} … {axis_values[-1]:.6g})"
    verdict = Verdict(outcome, estimate, lo, hi, values.shape[1])
    return _row(claim, effect, threshold, verdict, _diverged(rows))


def _beside(axis: str, estimate: float, settled_values, unsettled_values, rows) -> str:  # noqa: ANN001
    """The unsettled cells beside the boundary: between the largest settled value below
    the estimate and the estimate (+∞: above the largest settled value), where the
    boundary could lie once they settle."""
    if not np.isfinite(estimate):
        below, above = settled_values[-1], np.inf
    else:
        lower = settled_values[settled_values < estimate]
        below, above = (lower[-1] if lower.size else -np.inf), estimate
    near = unsettled_values[(unsettled_values > below) & (unsettled_values < above)]
    if near.size == 0:
        return ""
    budget = int(rows.loc[rows["state"] == UNSETTLED, "steps_run"].max())
    return (
        f"; boundary between the {axis} values {below:.6g} and {above:.6g}: {near.size} "
        f"cell{'s' if near.size != 1 else ''} beside it unsettled at {budget:.3g} steps "
        f"({', '.join(f'{v:.6g}' for v in near)})"
    )


@_on_grid("grid_agreement")
def _agreement(claim: dict[str, Any], data: GridData) -> dict[str, Any]:
    rule = claim["rule"]
    rows = _rows(data, rule, rule.get("where") or {})
    cells, values = _seed_matrix(rows, METRIC_COLUMNS[claim["metric"]])
    predicted = PREDICTIONS[rule["prediction"]](rule["problem"], cells)
    population = rule.get("cells", "all")
    if population not in ("all", "predicted_failures"):
        raise ValueError(f"cells must be 'all' or 'predicted_failures', got {population!r}")
    settled_cells = _settled_cells(rows, cells)
    members = (np.ones_like(predicted) if population == "all" else predicted) & settled_cells
    radius = data.spec.success_radius
    with np.errstate(invalid="ignore"):
        fails = ~_reaches(np.nanmean(values, axis=1), radius)
    resampled_fails = ~_reaches(_resampled_means(values), radius)
    count = int(members.sum())
    labelled = cells[list(data.spec.axis_names)]
    effect = (
        f"share of the settled {'' if population == 'all' else 'predicted-failure '}cells "
        f"({count} of {len(predicted)}; {int(predicted.sum())} predicted to fail) where "
        f"{rule['optimizer']} on {rule['problem']} fails exactly when "
        f"{rule['prediction']} predicts it; {_unsettled_text(rows, settled_cells)}; settled "
        f"cells measured to fail: {int((fails & settled_cells).sum())}; "
        f"{_disagreements(predicted, fails, members, np.nanmean(values, axis=1), labelled)}"
    )
    least = f" (min {int(rule.get('min_cells', 1))} cells)"
    if count < int(rule.get("min_cells", 1)):
        nan = float("nan")
        verdict = Verdict(INCONCLUSIVE, nan, nan, nan, values.shape[1])
        threshold = claimed_side(rule["side"], float(rule["value"]), verdict) + least
        return _row(claim, effect, threshold, verdict, _diverged(rows))
    estimate = float(np.mean((fails == predicted)[members]))
    shares = np.mean((resampled_fails == predicted)[:, members], axis=1)
    tail = (1.0 - DEFAULT_LEVEL) / 2.0
    lo, hi = (float(q) for q in np.quantile(shares, [tail, 1.0 - tail]))
    outcome = _compare(estimate, lo, hi, float(rule["value"]), rule["side"])
    verdict = Verdict(outcome, estimate, lo, hi, values.shape[1])
    threshold = claimed_side(rule["side"], float(rule["value"]), verdict) + least
    return _row(claim, effect, threshold, verdict, _diverged(rows))


def _disagreements(predicted, fails, members, means, cells) -> str:  # noqa: ANN001
    """How the settled outcome departs from the prediction: cells predicted to fail that
    reached x*, and cells predicted to reach it that did not, each listed by its axis
    values (the first :data:`LISTED` of each), with the range of their final x."""
    wrong_fail = members & predicted & ~fails
    missed = members & ~predicted & fails
    text = (
        f"{int(wrong_fail.sum())} predicted to fail reached x*{_listed(cells, wrong_fail)}, "
        f"{int(missed.sum())} predicted to reach x* did not{_listed(cells, missed)}"
    )
    if missed.any():
        text += (
            f" (their mean final x {np.nanmin(means[missed]):.3g} … {np.nanmax(means[missed]):.3g})"
        )
    return text


LISTED = 12


def _listed(cells: pd.DataFrame, mask: np.ndarray) -> str:
    """The cells of ``mask`` by their axis values: ``[beta1=0.9,beta2=0.99; …]``."""
    if not mask.any():
        return ""
    labels = [cell_label(dict(row)) for _, row in cells[mask].iterrows()]
    more = f"; … {len(labels) - LISTED} more" if len(labels) > LISTED else ""
    return f" [{'; '.join(labels[:LISTED])}{more}]"


# --- predictions: which cells fail, from the theory alone -----------------------------


def _settings(cells: pd.DataFrame) -> list[dict[str, Any]]:
    return [json.loads(text) for text in cells["hparams"]]


def one_period(problem: str, parameter: float = 0.0) -> np.ndarray:
    """g_1 … g_P of a periodic problem, P its declared ``period`` (the online problem's
    101, Theorem 1's 3)."""
    # here, not at the top: it loads numba (drawn by the compiled kernel)
    from amsgrad_repro.synthetic.kernel import gradient_sequence

    periodic = [name for name, declared in PROBLEMS.items() if declared.period]
    if problem not in periodic:
        raise ValueError(f"steady_state_drift needs a periodic problem ({', '.join(periodic)})")
    return gradient_sequence(problem_id(problem), parameter, 0, PROBLEMS[problem].period)


def steady_state(gradients: np.ndarray, beta: float) -> np.ndarray:
    """The periodic steady state of an EMA e_t = β·e_{t−1} + (1 − β)·g_t driven by a
    periodic sequence (one period given): e_j = (1 − β)/(1 − β^P) Σ_i β^i g_{j−i mod P}."""
    period = gradients.size
    lags = (np.arange(period)[:, None] - np.arange(period)[None, :]) % period
    weights = beta**lags
    return (1.0 - beta) / (1.0 - beta**period) * (weights @ gradients)


def drift(gradients: np.ndarray, beta1: float, beta2: float, second_moment: str) -> float:
    """Σ over one period of m_t/√v̂_t in the steady state, the paper form of Adam
    (``ema``) or AMSGrad (``max``: v̂ is the largest v of the period). x moves by
    −α_t times it per period, so a positive drift goes to x* = −1 and a negative one to +1
    (the mechanism of Theorem 1's proof, for any β1, β2)."""
    m = steady_state(gradients, beta1)
    v = steady_state(gradients**2, beta2)
    if second_moment == "max":
        v = np.full_like(v, v.max())
    return float(np.sum(m / np.sqrt(v)))


def steady_state_drift(problem: str, cells: pd.DataFrame) -> np.ndarray:
    """Predicted to fail: the steady-state drift is not towards x* (paper-form Adam or
    AMSGrad: no bias correction, no ε, constant β1)."""
    key = PARAMETER[problem]
    predicted = []
    for (_, cell), settings in zip(cells.iterrows(), _settings(cells), strict=True):
        paper_form = (
            settings.get("second_moment") in ("ema", "max")
            and not settings.get("bias_correction")
            and settings.get("eps") == 0.0
            and settings.get("beta1_schedule") == "constant"
        )
        if not paper_form:
            raise ValueError("steady_state_drift covers the paper form of Adam and AMSGrad only")
        gradients = one_period(problem, float(cell[key]) if key else 0.0)
        value = drift(gradients, settings["beta1"], settings["beta2"], settings["second_moment"])
        predicted.append(value <= 0.0)
    return np.array(predicted, dtype=bool)


def theorem1_condition(problem: str, cells: pd.DataFrame) -> np.ndarray:
    """Predicted to fail: C > 2 and β2 ≤ 1/(1 + C²), with β1 = 0 (Theorem 1's setting)."""
    if problem != "theorem1":
        raise ValueError("theorem1_condition is about the theorem1 problem")
    settings = _settings(cells)
    if any(s["beta1"] != 0.0 for s in settings):
        raise ValueError("theorem1_condition needs beta1 = 0 in every cell")
    c = cells["C"].to_numpy(dtype=float)
    beta2 = np.array([s["beta2"] for s in settings])
    return (c > 2.0) & (beta2 <= 1.0 / (1.0 + c**2))


PREDICTIONS: dict[str, Callable[[str, pd.DataFrame], np.ndarray]] = {
    "steady_state_drift": steady_state_drift,
    "theorem1_condition": theorem1_condition,
}

"""Grids of synthetic runs, declared once under ``grids:`` in config.yaml.

A grid is thousands of short runs: every cell of the Cartesian product of its ``axes``
(hyper-parameters the optimizers declare tunable, such as β1 and β2, or the problem's
parameter, C or k) × every listed problem × optimizer × seed. Everything else derives
from the declaration: the axis values (from ``values`` or ranges), the cells, each
optimizer's settings in each cell (the grid's shared ``hparams`` and ``overrides`` resolved
once into the optimizer's settings dataclass, then the cell's axis values put in), the
seeds a problem needs (a deterministic problem runs its first seed only: every seed would
give the same run) and the figure's axes.

:func:`grid_spec` turns a declaration into a :class:`GridSpec` and raises ``ConfigError``
naming the key that is wrong: an axis no optimizer may vary, a value out of range, an
optimizer without a compiled step (a grid runs in one call of the compiled kernel), a
problem whose parameter is neither an axis nor given. Free of numba and plotting, so the
Snakemake process validates every grid at start-up (:func:`check_grids`).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from amsgrad_repro.optimizers import HParamError, catalogue, scalar_form
from amsgrad_repro.settings_base import ConfigError, normalise_seeds
from amsgrad_repro.synthetic.problems import (
    DETERMINISTIC,  # numba: not at start-up
    PARAMETER,  # numba: not at start-up
    PARAMETER_MINIMUM,
)

# How a piece of an axis makes its values (each piece is a mapping with one of these keys).
RANGES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "linspace": lambda points: points,
    "logspace": lambda exponents: 10.0**exponents,
    # 1 − 10^e: β2 close to 1, evenly spaced in log(1 − β2)
    "one_minus_logspace": lambda exponents: 1.0 - 10.0**exponents,
}
FIGURES = ("heatmap", "quartiles")
# The continuation's budget when a grid declares none, for a deterministic (True) and a
# stochastic (False) problem. Deterministic: 10^8 (issue 21's proposal). Stochastic: no
# continuation (the budget is ``steps``), because the settle rule judges each seed's x and
# a stochastic seed's x keeps moving by more than its tolerance: on beta_map at 10^7 steps
# 2,555-2,646 of 2,720 AMSGrad and ADOPT seeds were still unsettled, after about 35 minutes
# of continuation on 2 cores that settled next to nothing (2026-12-03). Such cells are
# reported unsettled, never failed; declare max_steps to continue them anyway.
DEFAULT_MAX_STEPS = {True: 100_000_000, False: 0}


@dataclass(frozen=True)
class Curve:
    """A theory's line drawn over a heatmap: ``y = f(x)`` on the named axes."""

    x: str
    y: str
    function: Callable[[np.ndarray], np.ndarray]
    label: str


CURVES: dict[str, Curve] = {
    # Reddi et al.'s and Zhang et al.'s condition β1 < √β2 (γ = β1/√β2 < 1).
    "beta1_sqrt_beta2": Curve("beta2", "beta1", np.sqrt, r"$\beta_1 = \sqrt{\beta_2}$"),
    # Theorem 1's setting: β2 = 1/(1 + C²) (with β1 = 0).
    "theorem1_beta2": Curve(
        "C", "beta2", lambda c: 1.0 / (1.0 + c**2), r"Theorem 1: $\beta_2 = 1/(1+C^2)$"
    ),
}


@dataclass(frozen=True)
class Axis:
    """One axis of a grid: a hyper-parameter (``hparam``) or the problem's parameter."""

    name: str
    values: tuple[float, ...]
    kind: str  # "hparam" or "problem"


@dataclass(frozen=True)
class GridSpec:
    """A grid's resolved declaration. ``settings`` holds each optimizer's settings object
    before the cell's axis values go in; ``parameters`` the fixed problem parameters."""

    name: str
    problems: tuple[str, ...]
    optimizers: tuple[str, ...]
    axes: tuple[Axis, ...]
    steps: int
    # The budget of the continuation (``synthetic.settle``): per problem, the most steps a
    # cell unsettled at ``steps`` may run, in rounds that double its length.
    max_steps: Mapping[str, int]
    x1: float
    seeds: tuple[int, ...]
    record_points: int
    success_radius: float
    parameters: Mapping[str, float]
    settings: Mapping[str, Any]
    figure: Mapping[str, Any]
    title: str = ""
    # The full setting this grid stands in for (``paper: {steps: ...}``): figures and
    # verdicts flag a run of fewer steps as SHORTENED (``reduction``).
    paper: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def axis_names(self) -> tuple[str, ...]:
        return tuple(axis.name for axis in self.axes)

    def axis(self, name: str) -> Axis:
        return next(axis for axis in self.axes if axis.name == name)

    def cells(self) -> list[dict[str, float]]:
        """Every cell, ``{axis: value}``, in row-major order of the declared axes."""
        names = self.axis_names
        return [
            dict(zip(names, values, strict=True))
            for values in itertools.product(*(a.values for a in self.axes))
        ]

    def hparam_cells(self) -> list[dict[str, float]]:
        """Every distinct combination of the hyper-parameter axes' values: the cells as the
        optimizer sees them (a problem-parameter axis changes the problem, not the step)."""
        hparams = [a for a in self.axes if a.kind == "hparam"]
        return [
            dict(zip((a.name for a in hparams), values, strict=True))
            for values in itertools.product(*(a.values for a in hparams))
        ]

    def seeds_for(self, problem: str) -> tuple[int, ...]:
        """The seeds a problem runs: all of them, or the first for a deterministic problem
        (its gradients do not depend on the seed, so every seed would repeat the run)."""
        return self.seeds[:1] if problem in DETERMINISTIC else self.seeds

    def cell_settings(self, optimizer: str, cell: Mapping[str, float]) -> Any:
        """The optimizer's settings in one cell (the cell's hyper-parameter values in)."""
        values = {a.name: cell[a.name] for a in self.axes if a.kind == "hparam"}
        return dataclasses.replace(self.settings[optimizer], **values)

    def parameter(self, problem: str, cell: Mapping[str, float]) -> float:
        """The problem's parameter (C or k) in one cell; 0 for the paper's problems."""
        key = PARAMETER[problem]
        if key is None:
            return 0.0
        return float(cell[key]) if key in cell else float(self.parameters[key])

    def max_steps_for(self, problem: str) -> int:
        return int(self.max_steps[problem])

    def run_count(self) -> int:
        per_problem = len(self.cells()) * len(self.optimizers)
        return sum(per_problem * len(self.seeds_for(p)) for p in self.problems)


def cell_label(cell: Mapping[str, float]) -> str:
    """A cell's name, e.g. ``beta1=0.9,beta2=0.999`` (``repr`` round-trips the values)."""
    return ",".join(f"{name}={float(value)!r}" for name, value in cell.items())


def axis_values(where: str, declaration: Any) -> tuple[float, ...]:
    """An axis's values from one piece or a list of pieces, in the declared order."""
    pieces = declaration if isinstance(declaration, list) else [declaration]
    values: list[float] = []
    for index, piece in enumerate(pieces):
        here = f"{where}[{index}]" if isinstance(declaration, list) else where
        values += _piece_values(here, piece)
    if len(set(values)) != len(values):
        raise ConfigError(f"{where}: the axis repeats a value ({values})")
    return tuple(values)


def _piece_values(where: str, piece: Mapping[str, Any]) -> list[float]:
    if len(piece) != 1:
        raise ConfigError(
            f"{where}: give exactly one of values, {', '.join(RANGES)} (got {sorted(piece)})"
        )
    ((kind, spec),) = piece.items()
    if kind == "values":
        return [float(v) for v in spec]
    if kind not in RANGES:
        raise ConfigError(f"{where}: unknown range {kind!r} (known: values, {', '.join(RANGES)})")
    points = np.linspace(float(spec["start"]), float(spec["stop"]), int(spec["num"]))
    with np.errstate(over="ignore"):  # an overflow is reported below, naming the key
        values = RANGES[kind](points / float(spec.get("per", 1)))
    if not np.all(np.isfinite(values)):
        raise ConfigError(
            f"{where}.{kind}: start {spec['start']}, stop {spec['stop']} give values beyond "
            "the range of a float (10^308); give exponents, not the values themselves"
        )
    return [float(v) for v in values]


def enabled_grids(config: Mapping[str, Any]) -> list[str]:
    """Names of the grids switched on in a resolved configuration."""
    return [n for n, d in (config.get("grids") or {}).items() if d.get("enabled", True)]


def check_grids(config: Mapping[str, Any]) -> dict[str, GridSpec]:
    """Every enabled grid of a resolved configuration, checked (ConfigError names the key)."""
    specs = catalogue(config.get("plugins"))
    return {
        name: grid_spec(name, config["grids"][name], config["seeds"], specs)
        for name in enabled_grids(config)
    }


def grid_spec(
    name: str, declaration: Mapping[str, Any], default_seeds: list[int], specs: Mapping
) -> GridSpec:
    """The resolved, checked grid ``grids.<name>``."""
    where = f"grids.{name}"
    problems = tuple(declaration["problems"])
    optimizers = tuple(declaration["optimizers"])
    settings = {
        optimizer: _optimizer_settings(where, declaration, specs, index, optimizer)
        for index, optimizer in enumerate(optimizers)
    }
    _check_shared(where, declaration, specs, optimizers)
    _check_axes_not_fixed(where, declaration)
    axes = tuple(
        _axis(f"{where}.axes.{axis}", axis, values, problems, settings, specs)
        for axis, values in declaration["axes"].items()
    )
    grid = GridSpec(
        name=name,
        problems=problems,
        optimizers=optimizers,
        axes=axes,
        steps=int(declaration["steps"]),
        max_steps=_max_steps(where, declaration, problems),
        x1=float(declaration["x1"]),
        seeds=tuple(normalise_seeds(declaration.get("seeds", default_seeds), f"{where}.seeds")),
        record_points=int(declaration["record_points"]),
        success_radius=float(declaration["success_radius"]),
        parameters=_fixed_parameters(where, declaration, problems, axes),
        settings=settings,
        figure=dict(declaration["figure"]),
        title=str(declaration.get("title", name)),
        paper=dict(declaration.get("paper") or {}),
    )
    for index, optimizer in enumerate(optimizers):  # in every cell, too
        cells = [grid.cell_settings(optimizer, cell) for cell in grid.hparam_cells()]
        _check_compiled(f"{where}.optimizers[{index}]", optimizer, specs[optimizer], cells)
    _check_figure(f"{where}.figure", grid)
    return grid


def _max_steps(where: str, declaration: Mapping[str, Any], problems) -> dict[str, int]:
    """``max_steps`` per problem: the declared budget, or :data:`DEFAULT_MAX_STEPS` of a
    deterministic or stochastic problem (never below ``steps``: a budget below it would
    cut the declared run)."""
    steps = int(declaration["steps"])
    declared = declaration.get("max_steps")
    if declared is not None and int(declared) < steps:
        raise ConfigError(f"{where}.max_steps: {declared} is below steps ({steps})")
    return {
        p: int(declared)
        if declared is not None
        else max(steps, DEFAULT_MAX_STEPS[p in DETERMINISTIC])
        for p in problems
    }


def _optimizer_settings(where: str, declaration, specs, index: int, optimizer: str) -> Any:
    if optimizer not in specs:
        raise ConfigError(
            f"{where}.optimizers[{index}]: unknown optimizer {optimizer!r} "
            f"(known: {', '.join(specs)})"
        )
    spec = specs[optimizer]
    shared = spec.shared_keys(declaration.get("hparams") or {})
    own = (declaration.get("overrides") or {}).get(optimizer) or {}
    try:
        settings = spec.resolve(
            (f"{where}.hparams", shared), (f"{where}.overrides.{optimizer}", own)
        )
    except HParamError as error:
        raise ConfigError(str(error)) from None
    _check_compiled(f"{where}.optimizers[{index}]", optimizer, spec, [settings])
    return settings


def _check_shared(where: str, declaration, specs, optimizers: tuple[str, ...]) -> None:
    """A shared hyper-parameter none of the optimizers has, or an override of an optimizer
    the grid does not run, is a typo."""
    for key in declaration.get("hparams") or {}:
        if not any(key in specs[name].hparam_rules for name in optimizers):
            raise ConfigError(
                f"{where}.hparams.{key}: none of this grid's optimizers "
                f"({', '.join(optimizers)}) has a hyper-parameter {key!r}"
            )
    for name in declaration.get("overrides") or {}:
        if name not in optimizers:
            raise ConfigError(f"{where}.overrides.{name}: {name!r} is not among the optimizers")


def _check_axes_not_fixed(where: str, declaration: Mapping[str, Any]) -> None:
    """An axis sets its hyper-parameter in every cell, so the same name given as a fixed
    value too (in the shared hparams or an override) contradicts it."""
    for axis in declaration["axes"]:
        if axis in (declaration.get("hparams") or {}):
            raise ConfigError(f"{where}.hparams.{axis}: {axis} is an axis of this grid")
        for name, own in (declaration.get("overrides") or {}).items():
            if axis in (own or {}):
                raise ConfigError(
                    f"{where}.overrides.{name}.{axis}: {axis} is an axis of this grid"
                )


def _axis(where: str, name: str, declaration, problems, settings, specs) -> Axis:
    """An axis is a tunable hyper-parameter of every optimizer, or the parameter of every
    problem; each value is checked against the field's (or the problem's) range."""
    # numba: the problems module compiles kernels; start-up validation must not import it.

    values = axis_values(where, declaration)
    if name in PARAMETER_MINIMUM:
        without = [p for p in problems if PARAMETER[p] != name]
        if without:
            raise ConfigError(f"{where}: {name} is no parameter of problem {without[0]!r}")
        low = PARAMETER_MINIMUM[name]
        for index, value in enumerate(values):
            if not math.isfinite(value) or value <= low:
                raise ConfigError(f"{where}[{index}]: {name} must be > {low:g}, got {value:g}")
        return Axis(name, values, "problem")
    for optimizer in settings:
        rule = specs[optimizer].hparam_rules.get(name)
        if rule is None or not rule.tunable:
            tunable = [k for k, r in specs[optimizer].hparam_rules.items() if r.tunable]
            raise ConfigError(
                f"{where}: {optimizer} has no tunable hyper-parameter {name!r} (tunable: "
                f"{', '.join(tunable)}; problem parameters: {', '.join(PARAMETER_MINIMUM)})"
            )
        try:
            for index, value in enumerate(values):
                rule.check(f"{where}[{index}]", value)
        except HParamError as error:
            raise ConfigError(f"{error} (for {optimizer})") from None
    return Axis(name, values, "hparam")


def _fixed_parameters(where: str, declaration, problems, axes) -> dict[str, float]:
    """C or k given as a fixed value, needed by a problem when it is not an axis."""
    # numba: the problems module compiles kernels; start-up validation must not import it.

    on_axes = {axis.name for axis in axes}
    needed = {PARAMETER[p] for p in problems} - {None} - on_axes
    fixed = {}
    for key in PARAMETER_MINIMUM:
        if key not in declaration:
            continue
        if key not in needed:
            raise ConfigError(f"{where}.{key}: no problem of this grid reads it as a fixed value")
        fixed[key] = float(declaration[key])
        if fixed[key] <= PARAMETER_MINIMUM[key]:
            raise ConfigError(f"{where}.{key}: must be > {PARAMETER_MINIMUM[key]:g}")
    missing = sorted(needed - set(fixed))
    if missing:
        raise ConfigError(f"{where}: give {missing[0]} (a fixed value or an axis)")
    return fixed


def _check_compiled(where: str, optimizer: str, spec, settings: list) -> None:  # noqa: ANN001
    """The optimizer runs in the compiled kernel with each of these settings: a grid is
    too many runs for the generic tensor path (a thousand times slower per step)."""
    if any(scalar_form(spec, each) is None for each in settings):
        raise ConfigError(
            f"{where}: {optimizer} has no compiled step (plug-ins and torch.optim classes "
            "without a native twin take the generic path, about 1000x slower per step: too "
            "slow for a grid)"
        )


def _check_figure(where: str, grid: GridSpec) -> None:
    """A heatmap names two axes (the others single-valued) and optionally a curve on them;
    a quartile figure names the axis of its panels and needs recorded steps to draw."""
    figure = grid.figure
    kind = figure.get("type")
    if kind not in FIGURES:
        raise ConfigError(f"{where}.type: expected one of {', '.join(FIGURES)}, got {kind!r}")
    shown = [figure.get("x"), figure.get("y")] if kind == "heatmap" else [figure.get("panels")]
    for key, axis in zip(("x", "y") if kind == "heatmap" else ("panels",), shown, strict=True):
        if axis not in grid.axis_names:
            raise ConfigError(f"{where}.{key}: {axis!r} is not an axis of the grid")
    for axis in grid.axes:  # a quartile figure draws one panel per cell
        if kind == "heatmap" and axis.name not in shown and len(axis.values) != 1:
            raise ConfigError(
                f"{where}: axis {axis.name} has {len(axis.values)} values but the figure "
                f"shows only {', '.join(shown)}"
            )
    curve = figure.get("curve")
    if curve is not None:
        if curve not in CURVES:
            raise ConfigError(
                f"{where}.curve: unknown curve {curve!r} (known: {', '.join(CURVES)})"
            )
        if (CURVES[curve].x, CURVES[curve].y) != (figure.get("x"), figure.get("y")):
            raise ConfigError(
                f"{where}.curve: {curve} is drawn on x = {CURVES[curve].x}, y = {CURVES[curve].y}"
            )
    if kind == "quartiles" and grid.record_points < 10:
        raise ConfigError(f"{where}: a quartile figure needs record_points >= 10")

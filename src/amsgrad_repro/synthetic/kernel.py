"""The compiled loop running every native optimizer family on the 1-D problems.

One call runs a batch of independent runs (optimizer × settings × problem × seed), in
parallel over the cores numba is given. Each run's optimizer is a native family's scalar
step (``optimizers/<family>.py``), the same shared scalar code as its tensor update, so the
two agree (``tests/test_synthetic.py``: to 1e-6 over 10^4+ steps). The families are
dispatched by index through one cached kernel: a family's hyper-parameters arrive as a
numpy record whose fields are the union of every family's declared fields (each family
reads its own), and its state as a tuple of ``scalar.STATE_SLOTS`` floats.

x_1 is given; each step draws g_t at x_t, adds f_t(x_t) = g_t·x_t to the loss, moves
x ← Π(x − dx) with Π the clip onto [low, high], and at the recorded steps stores x_{t+1}
and the average regret R_t/t = (Σ f_s(x_s) − min_{x∈F} Σ f_s(x))/t.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass

import numba
import numpy as np
from numba import literal_unroll
from numba.core.errors import NumbaExperimentalFeatureWarning
from numba.extending import overload, register_jitable

from amsgrad_repro import numba_cache
from amsgrad_repro.optimizers import BUILTINS, NATIVE_FAMILIES, hparams, scalar
from amsgrad_repro.optimizers.schedules import check_horizon
from amsgrad_repro.optimizers.spec import NativeFamily
from amsgrad_repro.synthetic import problems
from amsgrad_repro.synthetic.problems import stream

numba_cache.configure()
# literal_unroll over a tuple of compiled functions is what lets one cached kernel
# dispatch between the families; numba labels that use of function types experimental.
warnings.filterwarnings("ignore", category=NumbaExperimentalFeatureWarning)

for _function in (*scalar.SCALAR_CODE, *problems.GENERATOR):
    register_jitable(inline="always")(_function)


@overload(scalar.sqrt)
def _sqrt(x):  # noqa: ANN001, ANN202 - numba typing hook
    return lambda x: math.sqrt(x)


def _compiled(functions) -> tuple:
    return tuple(numba.njit(inline="always")(f) for f in functions)


INITS = _compiled(f.scalar_init for f in NATIVE_FAMILIES)
STEPS = _compiled(f.scalar_step for f in NATIVE_FAMILIES)
LAWS = _compiled(problems.LAWS)


def _record_dtype() -> np.dtype:
    """Every native family's packed fields, each once (same name, same type)."""
    fields: dict[str, str] = {}
    for family_settings in {s.settings for s in _native_specs()}:
        for name, rule in hparams.rules(family_settings).items():
            kind = hparams.numpy_kind(rule)
            if fields.setdefault(name, kind) != kind:
                raise TypeError(f"field {name!r} has two types among the native families")
    return np.dtype(sorted(fields.items()))


def _native_specs():

    return [spec for spec in BUILTINS.values() if spec.native is not None]


HP_DTYPE = _record_dtype()


def family_index(family: NativeFamily) -> int:
    return NATIVE_FAMILIES.index(family)


def hp_record(settings) -> np.void:  # noqa: ANN001 - any native settings dataclass
    """One run's hyper-parameters as the kernel's record."""
    check_horizon(settings)
    record = np.zeros((), dtype=HP_DTYPE)
    for name, rule in hparams.rules(type(settings)).items():
        record[name] = hparams.packed_value(rule, getattr(settings, name))
    return record


@numba.njit(cache=True)
def _init(family: int, hp) -> tuple:  # noqa: ANN001
    state = scalar.zero_state()
    index = 0
    for init in literal_unroll(INITS):
        if index == family:
            state = init(hp)
        index += 1  # noqa: SIM113 - numba cannot enumerate a literal_unroll
    return state


@numba.njit(cache=True)
def _step(family: int, state: tuple, hp, g: float, t: int) -> tuple:  # noqa: ANN001
    dx = 0.0
    index = 0
    for step in literal_unroll(STEPS):
        if index == family:
            state, dx = step(state, hp, g, t)
        index += 1  # noqa: SIM113 - numba cannot enumerate a literal_unroll
    return state, dx


@numba.njit(cache=True, inline="always")
def gradient(problem: int, t: int, big: float, start: np.uint64) -> float:
    """g_t for step t ≥ 1 of the problem with index ``problem`` (``problems.problem_id``);
    ``big`` is its parameter (C, k) and ``start`` the seed's ``problems.stream``."""
    g = 0.0
    index = 0
    for law in literal_unroll(LAWS):
        if index == problem:
            g = law(t, big, start)
        index += 1  # noqa: SIM113 - numba cannot enumerate a literal_unroll
    return g


@numba.njit(cache=True)
def gradient_block(problem: int, big: float, seed: int, first: int, count: int) -> np.ndarray:
    """g_first … g_{first+count−1}, drawn exactly as the kernel draws them (the generic
    tensor path reads its gradients from here)."""
    start = stream(seed)
    out = np.empty(count)
    for i in range(count):
        out[i] = gradient(problem, first + i, big, start)
    return out


def gradient_sequence(problem: int, big: float, seed: int, steps: int) -> np.ndarray:
    """g_1 … g_T."""
    return gradient_block(problem, float(big), int(seed), 1, int(steps))


@numba.njit(cache=True)
def _best(grad_sum: float, low: float, high: float) -> float:
    return grad_sum * low if grad_sum > 0.0 else grad_sum * high


# A run's whole state between two calls: x, Σ f_s(x_s), Σ g_s, then the optimizer's
# STATE_SLOTS floats. Continuing from it is the same run as never stopping (bit for bit:
# the same floats go through the same operations, tests/test_grids.py).
X_SLOT, LOSS_SLOT, GRAD_SLOT, OPT_SLOT = 0, 1, 2, 3
STATE_SIZE = OPT_SLOT + scalar.STATE_SLOTS
if scalar.STATE_SLOTS != 8:  # _as_tuple spells the slots out (numba needs a fixed length)
    raise RuntimeError("kernel._as_tuple assumes 8 optimizer state slots")


@numba.njit(cache=True, inline="always")
def _as_tuple(a: np.ndarray) -> tuple:
    o = OPT_SLOT
    return (a[o], a[o + 1], a[o + 2], a[o + 3], a[o + 4], a[o + 5], a[o + 6], a[o + 7])


@numba.njit(cache=True)
def start_state(family, hp, x1, out):  # noqa: ANN001
    """The state before step 1: x_1, empty sums, the family's initial state."""
    out[X_SLOT] = x1
    out[LOSS_SLOT] = 0.0
    out[GRAD_SLOT] = 0.0
    state = _init(family, hp)
    for i in range(scalar.STATE_SLOTS):
        out[OPT_SLOT + i] = state[i]


@numba.njit(cache=True)
def run_span(family, hp, problem, big, seed, first, last, low, high, state, record, xs, regrets):  # noqa: ANN001
    """Steps ``first`` … ``last`` of one run from ``state`` (updated in place); fills ``xs``
    and ``regrets`` at the ``record`` steps (sorted) of the span, leaves the others."""
    start = stream(seed)
    opt = _as_tuple(state)
    x = state[X_SLOT]
    loss_sum = state[LOSS_SLOT]
    grad_sum = state[GRAD_SLOT]
    next_record = np.searchsorted(record, first)
    for t in range(first, last + 1):
        g = gradient(problem, t, big, start)
        loss_sum += g * x
        grad_sum += g
        opt, dx = _step(family, opt, hp, g, t)
        x = min(max(x - dx, low), high)
        if next_record < record.size and record[next_record] == t:
            xs[next_record] = x
            regrets[next_record] = (loss_sum - _best(grad_sum, low, high)) / t
            next_record += 1
    state[X_SLOT] = x
    state[LOSS_SLOT] = loss_sum
    state[GRAD_SLOT] = grad_sum
    for i in range(scalar.STATE_SLOTS):
        state[OPT_SLOT + i] = opt[i]


@numba.njit(cache=True)
def run_one(family, hp, problem, big, seed, steps, x1, low, high, record, xs, regrets):  # noqa: ANN001
    """One run; fills ``xs`` and ``regrets`` at the ``record`` steps (sorted) and returns
    the final x and R_T/T."""
    state = np.empty(STATE_SIZE)
    start_state(family, hp, x1, state)
    run_span(family, hp, problem, big, seed, 1, steps, low, high, state, record, xs, regrets)
    return state[X_SLOT], (state[LOSS_SLOT] - _best(state[GRAD_SLOT], low, high)) / steps


@numba.njit(cache=True)
def _start_states(families, hps, x1s):  # noqa: ANN001
    states = np.empty((families.size, STATE_SIZE))
    for r in range(families.size):
        start_state(families[r], hps[r], x1s[r], states[r])
    return states


@numba.njit(cache=True, parallel=True)
def _continue_batch(
    families, hps, problems, bigs, seeds, first, last, low, high, states, record, xs, regrets
):  # noqa: ANN001, E501
    """Steps ``first`` … ``last`` of every run, each from its row of ``states``."""
    for r in numba.prange(families.size):
        run_span(
            families[r],
            hps[r],
            problems[r],
            bigs[r],
            seeds[r],
            first,
            last,
            low,
            high,
            states[r],
            record,
            xs[r],
            regrets[r],
        )


@dataclass(frozen=True)
class KernelRun:
    """One run for the kernel: a native family with its settings, a problem and a seed."""

    family: NativeFamily
    settings: object
    problem: int
    big: float
    seed: int
    x1: float


@dataclass(frozen=True)
class BatchResult:
    """Per run: x and R_t/t at the recorded steps, and exact final values."""

    steps: np.ndarray
    x: np.ndarray  # runs × recorded steps
    avg_regret: np.ndarray
    final_x: np.ndarray
    final_avg_regret: np.ndarray


@dataclass(frozen=True)
class Prepared:
    """A batch's runs as the kernel's arrays (one entry per run)."""

    families: np.ndarray
    hps: np.ndarray
    problems: np.ndarray
    bigs: np.ndarray
    seeds: np.ndarray
    x1s: np.ndarray

    def take(self, index: np.ndarray) -> Prepared:
        return Prepared(*(np.ascontiguousarray(a[index]) for a in dataclasses.astuple(self)))


def prepare(runs: list[KernelRun]) -> Prepared:
    hps = np.zeros(len(runs), dtype=HP_DTYPE)
    for i, run in enumerate(runs):
        hps[i] = hp_record(run.settings)
    return Prepared(
        np.array([family_index(r.family) for r in runs], dtype=np.int64),
        hps,
        np.array([r.problem for r in runs], dtype=np.int64),
        np.array([r.big for r in runs], dtype=np.float64),
        np.array([r.seed for r in runs], dtype=np.int64),
        np.array([r.x1 for r in runs], dtype=np.float64),
    )


def start_states(prepared: Prepared) -> np.ndarray:
    """runs × STATE_SIZE: every run before its first step."""
    return _start_states(prepared.families, prepared.hps, prepared.x1s)


def advance(
    prepared: Prepared,
    states: np.ndarray,
    span: tuple[int, int],
    bounds: tuple[float, float],
    record: np.ndarray,
    out: tuple[np.ndarray, np.ndarray],
) -> None:
    """Steps ``span`` = (first, last) of every run from its state (updated in place), x and
    R_t/t written to ``out`` at the ``record`` steps inside the span."""
    p = prepared
    _continue_batch(
        p.families, p.hps, p.problems, p.bigs, p.seeds, int(span[0]), int(span[1]),
        float(bounds[0]), float(bounds[1]), states, record, out[0], out[1],
    )  # fmt: skip


def average_regret(states: np.ndarray, steps: np.ndarray | int, bounds) -> np.ndarray:  # noqa: ANN001
    """R_T/T of each state after ``steps`` steps (the kernel's own arithmetic)."""
    grad = states[:, GRAD_SLOT]
    best = np.where(grad > 0.0, grad * bounds[0], grad * bounds[1])
    return (states[:, LOSS_SLOT] - best) / steps


def set_threads(threads: int | None) -> None:
    if threads:
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))


def run_batch(
    runs: list[KernelRun],
    *,
    steps: int,
    bounds: tuple[float, float],
    record: np.ndarray,
    threads: int | None = None,
) -> BatchResult:
    """Run every run of the batch for ``steps`` steps, ``threads`` at a time."""
    record = np.ascontiguousarray(record, dtype=np.int64)
    prepared = prepare(runs)
    set_threads(threads)
    states = start_states(prepared)
    xs = np.full((len(runs), record.size), np.nan)
    regrets = np.full((len(runs), record.size), np.nan)
    advance(prepared, states, (1, int(steps)), bounds, record, (xs, regrets))
    final_x = states[:, X_SLOT].copy()
    return BatchResult(record, xs, regrets, final_x, average_regret(states, int(steps), bounds))


def record_schedule(steps: int, points: int) -> np.ndarray:
    """About ``points`` steps: half log-spaced (the early transient), half evenly spaced
    (the long run), always including the first and last step."""
    half = max(points // 2, 2)
    early = np.geomspace(1, steps, half)
    late = np.linspace(1, steps, half)
    schedule = np.unique(np.concatenate([early, late, [1, steps]]).round().astype(np.int64))
    return schedule[(schedule >= 1) & (schedule <= steps)]

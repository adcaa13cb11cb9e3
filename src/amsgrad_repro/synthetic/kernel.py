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


@numba.njit(cache=True)
def run_one(family, hp, problem, big, seed, steps, x1, low, high, record, xs, regrets):  # noqa: ANN001
    """One run; fills ``xs`` and ``regrets`` at the ``record`` steps (sorted) and returns
    the final x and R_T/T."""
    start = stream(seed)
    state = _init(family, hp)
    x = x1
    loss_sum = 0.0
    grad_sum = 0.0
    next_record = 0
    for t in range(1, steps + 1):
        g = gradient(problem, t, big, start)
        loss_sum += g * x
        grad_sum += g
        state, dx = _step(family, state, hp, g, t)
        x = min(max(x - dx, low), high)
        if next_record < record.size and record[next_record] == t:
            xs[next_record] = x
            regrets[next_record] = (loss_sum - _best(grad_sum, low, high)) / t
            next_record += 1
    return x, (loss_sum - _best(grad_sum, low, high)) / steps


@numba.njit(cache=True, parallel=True)
def _run_batch(families, hps, problems, bigs, seeds, x1s, steps, low, high, record):  # noqa: ANN001
    n = families.size
    xs = np.empty((n, record.size))
    regrets = np.empty((n, record.size))
    final_x = np.empty(n)
    final_regret = np.empty(n)
    for r in numba.prange(n):
        final_x[r], final_regret[r] = run_one(
            families[r],
            hps[r],
            problems[r],
            bigs[r],
            seeds[r],
            steps,
            x1s[r],
            low,
            high,
            record,
            xs[r],
            regrets[r],
        )
    return xs, regrets, final_x, final_regret


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
    hps = np.zeros(len(runs), dtype=HP_DTYPE)
    for i, run in enumerate(runs):
        hps[i] = hp_record(run.settings)
    if threads:
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    xs, regrets, final_x, final_regret = _run_batch(
        np.array([family_index(r.family) for r in runs], dtype=np.int64),
        hps,
        np.array([r.problem for r in runs], dtype=np.int64),
        np.array([r.big for r in runs], dtype=np.float64),
        np.array([r.seed for r in runs], dtype=np.int64),
        np.array([r.x1 for r in runs], dtype=np.float64),
        int(steps),
        float(bounds[0]),
        float(bounds[1]),
        record,
    )
    return BatchResult(record, xs, regrets, final_x, final_regret)


def record_schedule(steps: int, points: int) -> np.ndarray:
    """About ``points`` steps: half log-spaced (the early transient), half evenly spaced
    (the long run), always including the first and last step."""
    half = max(points // 2, 2)
    early = np.geomspace(1, steps, half)
    late = np.linspace(1, steps, half)
    schedule = np.unique(np.concatenate([early, late, [1, steps]]).round().astype(np.int64))
    return schedule[(schedule >= 1) & (schedule <= steps)]

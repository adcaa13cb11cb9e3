"""Uncertainty across seeds: percentile bootstrap intervals, vectorised over many rows.

Rows are independent statistics (e.g. one per logged step); columns are seeds. Missing
values (NaN, e.g. after a run diverged and stopped) are ignored per row, so one bad seed
does not poison the others.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_RESAMPLES = 2000
DEFAULT_LEVEL = 0.95


@dataclass(frozen=True)
class Summary:
    """Per-row mean, median, interval bounds and number of finite samples."""

    mean: np.ndarray
    median: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    n: np.ndarray


def bootstrap_summary(
    samples: np.ndarray,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    level: float = DEFAULT_LEVEL,
    seed: int = 0,
    chunk_rows: int = 256,
) -> Summary:
    """Mean and percentile-bootstrap interval of the mean for each row of ``samples``.

    The same resampling indices serve every row, which keeps rows of one curve coherent
    and makes the result deterministic for a given ``seed``.
    """
    values = np.asarray(samples, dtype=float)
    if values.ndim == 1:
        values = values[None, :]
    values = np.where(np.isfinite(values), values, np.nan)
    rows, n_cols = values.shape
    finite = np.isfinite(values)
    n = finite.sum(axis=1)
    with np.errstate(invalid="ignore"), _quiet_nan_warnings():
        mean = np.nanmean(values, axis=1)
        median = np.nanmedian(values, axis=1)
    lo = mean.copy()
    hi = mean.copy()
    if n_cols > 1:
        rng = np.random.default_rng(seed)
        idx = rng.integers(0, n_cols, size=(resamples, n_cols))
        tail = (1.0 - level) / 2.0
        for start in range(0, rows, chunk_rows):
            block = values[start : start + chunk_rows][:, idx]  # rows × resamples × seeds
            with _quiet_nan_warnings():
                boot_means = np.nanmean(block, axis=2)
                lo[start : start + chunk_rows] = np.nanquantile(boot_means, tail, axis=1)
                hi[start : start + chunk_rows] = np.nanquantile(boot_means, 1 - tail, axis=1)
    single = n <= 1
    lo[single] = mean[single]
    hi[single] = mean[single]
    return Summary(mean=mean, median=median, lo=lo, hi=hi, n=n)


class _quiet_nan_warnings:
    """All-NaN rows (no finite seed at a step) are expected; they yield NaN silently."""

    def __enter__(self) -> None:
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("ignore", category=RuntimeWarning)

    def __exit__(self, *exc: object) -> None:
        self._ctx.__exit__(*exc)

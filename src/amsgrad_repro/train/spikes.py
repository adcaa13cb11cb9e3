"""Loss spikes: steps whose training loss jumps far above what the run was just doing.

Adam's failure mode on transformers is discussed as loss spikes, so a language model's runs
count them (issue 20) and the claims compare the counts between optimizers, paired by seed.
A step t is a spike when its batch loss exceeds ``factor`` × the median of the ``window``
batch losses before it (t ≥ window; the median, not the mean, so that one spike does not
lift the bar for the next ones). A task declares the rule as
``spike_rule: {factor: F, window: W}``; without one nothing is counted.

The engine keeps every step's loss in a tensor on the device (one write per step, no host
sync; saved in the checkpoint, so a resumed run counts as an uninterrupted one) and counts
once, at the end: ``train_loss_spikes`` in run.json's ``final`` block, a metric like any
other for the tables and claims.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

SPIKE_METRIC = "train_loss_spikes"


@dataclass(frozen=True)
class SpikeRule:
    """A spike: a batch loss above ``factor`` × the median of the ``window`` before it."""

    factor: float
    window: int

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> SpikeRule | None:
        block = settings.get("spike_rule")
        if not block:
            return None
        return cls(factor=float(block["factor"]), window=int(block["window"]))

    def spikes(self, losses: np.ndarray) -> np.ndarray:
        """The steps (0-based indices into ``losses``) that are spikes."""
        losses = np.asarray(losses, dtype=np.float64)
        if losses.size <= self.window:
            return np.zeros(0, dtype=np.int64)
        before = np.lib.stride_tricks.sliding_window_view(losses[:-1], self.window)
        bar = self.factor * np.median(before, axis=1)
        return self.window + np.flatnonzero(losses[self.window :] > bar)

    def count(self, losses: np.ndarray) -> int:
        return int(self.spikes(losses).size)

    def record(self) -> dict[str, Any]:
        return {"factor": self.factor, "window": self.window}


__all__ = ["SPIKE_METRIC", "SpikeRule"]

"""When a training run counts as diverged.

A NaN or infinite loss is not the only way a run fails: the MLP at α = 10^6 climbs to
losses of 3.5·10^16 and stays finite, and a run recorded ``completed`` with such numbers
would enter the tables, figures and claims as a result. The rule here stops a run at the
first log point where any logged loss (train, validation or test) is non-finite **or**
larger than ``loss_factor`` times the initial loss (the first training batch's loss,
computed before any update). The default factor, 100, is far above anything a run that
still learns reaches: a classifier starts near ln(10) = 2.3 and a loss of 230 means logits
hundreds apart on the wrong class; the VAE starts near 550 nats per image. A task sets its
own with ``divergence: {loss_factor: F}`` (``null`` switches the factor off, keeping the
non-finite check). The rule, the initial loss and the limit are recorded in ``run.json``;
a run stopped by either check has status ``diverged`` and is treated alike everywhere.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_LOSS_FACTOR = 100.0


@dataclass(frozen=True)
class DivergenceRule:
    """Stop when a logged loss is non-finite or above ``loss_factor`` × the initial loss."""

    loss_factor: float | None = DEFAULT_LOSS_FACTOR

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> DivergenceRule:
        """The task's ``divergence`` block, with the default factor when it has none."""
        block = settings.get("divergence") or {}
        factor = block.get("loss_factor", DEFAULT_LOSS_FACTOR)
        return cls(loss_factor=None if factor is None else float(factor))

    def limit(self, initial_loss: float | None) -> float:
        """The largest loss a run may log; infinite without a factor or initial loss."""
        if self.loss_factor is None or initial_loss is None or not math.isfinite(initial_loss):
            return math.inf
        return self.loss_factor * max(abs(initial_loss), 1e-12)

    def reason(self, row: Mapping[str, float], initial_loss: float | None) -> str | None:
        """Why the run diverged at this log point (a sentence for the log and run.json), or
        None when it did not."""
        losses = {name: value for name, value in row.items() if name.endswith("_loss")}
        bad = [name for name, value in losses.items() if not math.isfinite(value)]
        if bad:
            return f"non-finite {', '.join(bad)}"
        limit = self.limit(initial_loss)
        over = [(name, value) for name, value in losses.items() if value > limit]
        if over:
            name, value = over[0]
            return (
                f"{name} {value:.3g} above {self.loss_factor:g} × the initial loss "
                f"{initial_loss:.3g}"
            )
        return None

    def record(self, initial_loss: float | None) -> dict[str, Any]:
        """What run.json keeps about the rule the run was judged by."""
        limit = self.limit(initial_loss)
        return {
            "rule": "non-finite loss, or a loss above loss_factor × the initial loss",
            "loss_factor": self.loss_factor,
            "initial_loss": initial_loss,
            "limit": limit if math.isfinite(limit) else None,
        }

"""What each metric can be, declared once: the interval its values (and so their mean over
seeds) lie in.

A Student-t band of the mean is symmetric, so with few seeds near a bound it crosses it (an
accuracy band above 1, a loss band below 0). Figures clip a band to the metric's range and
say so on the panel (``plots.clipped_band``): the mean of values in a range is in that range,
so the clipped interval covers the mean whenever the unclipped one does and keeps its 95%
coverage, while an interval on a transformed scale (logit, log) would be one for another
quantity (the mean of the logits), not for the mean the curve shows.

A metric's name is ``<split>_<quantity>`` (``train_loss``, ``test_accuracy``) or the
quantity alone (the synthetic problems' ``x``); its last word names the quantity.
"""

from __future__ import annotations

import math

# F = [-1, 1], where the synthetic problems' iterate lives (declared here, a leaf module,
# and exported as ``synthetic.BOUNDS``, so the figures need not import the synthetic stage).
X_BOUNDS = (-1.0, 1.0)
UNBOUNDED = (-math.inf, math.inf)
RANGES: dict[str, tuple[float, float]] = {
    # Cross-entropy; the VAE's negative ELBO (a Bernoulli reconstruction loss plus a KL
    # divergence, both >= 0).
    "loss": (0.0, math.inf),
    "recon": (0.0, math.inf),
    "kl": (0.0, math.inf),
    "accuracy": (0.0, 1.0),
    "x": X_BOUNDS,  # the synthetic iterate, projected onto F
}


def metric_range(metric: str) -> tuple[float, float]:
    """``(low, high)`` of a metric; unbounded for a quantity not declared (R_t/t: an
    iterate that moves can beat the best fixed point, so it may be negative)."""
    return RANGES.get(metric.rsplit("_", 1)[-1], UNBOUNDED)

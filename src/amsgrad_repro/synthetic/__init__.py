"""The paper's synthetic problems (Section 5, Figure 1) and Theorem 1's counterexample.

All three are linear losses f_t(x) = g_t·x on F = [−1, 1], so a run is fully described by
its gradient sequence. ``problems`` defines the sequences, ``kernel`` runs the optimizers
on them with a compiled loop (10^7 steps in a fraction of a second), ``runner`` writes the
per-seed outputs, and ``reference`` is the plain ``torch.optim`` loop the kernel is
tested against.
"""

from amsgrad_repro.metric_ranges import X_BOUNDS as BOUNDS  # F = [-1, 1]

__all__ = ["BOUNDS"]

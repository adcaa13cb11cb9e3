"""A synthetic run's states by the settle rule (``synthetic.settle`` defines the rule): a
leaf, so that the summaries and the synthetic stage both read the names without a circle."""

CONVERGED = "converged"
FAILED = "failed"
UNSETTLED = "unsettled"
STATES = (CONVERGED, FAILED, UNSETTLED)

"""The training kinds by name and the module that implements each (``train.kinds.*``).

A plain table without imports, so that start-up checks, tuning and planning can ask "is this
a training task?" without importing the training package (which imports them back).
"""

from __future__ import annotations

# The module of each training kind (imported when a job runs: they import torch).
KIND_MODULES: dict[str, str] = {
    "classifier": "amsgrad_repro.train.kinds.classifier",
    "vae": "amsgrad_repro.train.kinds.vae",
    "lm": "amsgrad_repro.train.kinds.lm",
    "quadratic": "amsgrad_repro.train.kinds.quadratic",
}
TRAINING_KINDS: tuple[str, ...] = tuple(KIND_MODULES)

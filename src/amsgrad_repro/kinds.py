"""The training kinds by name, the module that implements each (``train.kinds.*``), and
the samples some of them write at the end of every run.

A plain table without imports, so that start-up checks, tuning and planning can ask "is this
a training task?" (or "which files does its run write?") without importing the training
package (which imports them back).
"""

from __future__ import annotations

from dataclasses import dataclass

# The module of each training kind (imported when a job runs: they import torch).
KIND_MODULES: dict[str, str] = {
    "classifier": "amsgrad_repro.train.kinds.classifier",
    "vae": "amsgrad_repro.train.kinds.vae",
    "lm": "amsgrad_repro.train.kinds.lm",
    "quadratic": "amsgrad_repro.train.kinds.quadratic",
}
TRAINING_KINDS: tuple[str, ...] = tuple(KIND_MODULES)


@dataclass(frozen=True)
class Samples:
    """What a kind's final model produces at the end of each run, beside the run files.

    Declared here once: the plan makes it an output of that kind's train jobs (rule
    ``train_<kind>``, :func:`train_rule`) and a target, the report shows the file of every
    run (``caption``), and rule ``samples_figure`` sets the first seed's file of each
    optimizer side by side (``medium`` says how: ``image`` panels or ``text`` columns).
    """

    file: str  # inside the run folder
    medium: str  # "image" | "text"
    caption: str  # workflow/report/<caption>: one run's file in the report
    title: str  # the samples figure's heading: what the panels show
    score: tuple[str, str, str]  # each panel's title: (final metric, its label, format)


SAMPLES: dict[str, Samples] = {
    "vae": Samples(
        file="samples.png",
        medium="image",
        caption="vae_run_samples.rst",
        title="test images over their reconstructions (row pairs), then samples from the prior",
        score=("test_loss", "test −ELBO", ".1f"),
    ),
    "lm": Samples(
        file="samples.txt",
        medium="text",
        caption="lm_run_samples.rst",
        title="text from each final model after a test-play prompt: greedy, then temperature 0.8",
        score=("test_bpc", "test bits/char", ".3f"),
    ),
}
MEDIA = ("image", "text")


def train_rule(kind: str) -> str:
    """The rule of a kind's per-seed training jobs: ``train``, or ``train_<kind>`` for a kind
    whose runs also write samples (the same job with one more declared output)."""
    return f"train_{kind}" if kind in SAMPLES else "train"


# Every rule that trains one seed of one task (layout.RUN_RULES).
TRAIN_RULES: frozenset[str] = frozenset(train_rule(kind) for kind in TRAINING_KINDS)

"""Datasets generated in code from a fixed seed (``format: generated``): nothing to download,
so nothing for DVC to track; the data stage writes them into the same cache as the
downloaded ones, and a run records the generator and its parameters as its provenance.

A generator is one entry of :data:`GENERATORS`: a function of the dataset's ``parameters``
returning the train and test arrays. The cache's ``content_sha256`` covers the arrays, so a
run trained on other data (another seed, another numpy) is stale like any other.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

GENERATED = "generated"


@dataclass(frozen=True)
class GeneratedSplits:
    """A generated dataset's inputs (float32 [N, ...]) per split; no labels."""

    train_x: np.ndarray
    test_x: np.ndarray


def deepobs_quadratic(
    dim: int = 100, points: int = 1000, noise: float = 0.6, seeds: Mapping[str, int] | None = None
) -> GeneratedSplits:
    """DeepOBS's noisy quadratic data (``deepobs/pytorch/datasets/quadratic.py``): x drawn
    N(0, noise²·I) in float64 and stored as float32, ``points`` of them per split, the
    training set from ``RandomState(42)`` (DeepOBS's validation and train-eval sets are
    that same set) and the test set from ``RandomState(43)``."""
    seeds = {"train": 42, "test": 43, **(seeds or {})}

    def draw(seed: int) -> np.ndarray:
        return np.float32(np.random.RandomState(seed).normal(0.0, noise, (points, dim)))

    return GeneratedSplits(draw(seeds["train"]), draw(seeds["test"]))


GENERATORS: dict[str, Callable[..., GeneratedSplits]] = {"deepobs_quadratic": deepobs_quadratic}


def generate(name: str, spec: Mapping[str, Any]) -> GeneratedSplits:
    """The arrays of the generated dataset ``name`` (its ``generator`` with its
    ``parameters``), checked against its ``expected`` counts and shape."""
    generator = spec["generator"]
    if generator not in GENERATORS:
        raise ValueError(
            f"datasets.{name}.generator: unknown generator {generator!r} "
            f"(known: {', '.join(GENERATORS)})"
        )
    splits = GENERATORS[generator](**(spec.get("parameters") or {}))
    expected = spec.get("expected") or {}
    for split in ("train", "test"):
        x = getattr(splits, f"{split}_x")
        count = expected.get(f"num_{split}")
        if count is not None and len(x) != count:
            raise ValueError(f"datasets.{name}: {len(x)} {split} points, expected {count}")
        shape = expected.get("sample_shape")
        if shape is not None and list(x.shape[1:]) != list(shape):
            raise ValueError(
                f"datasets.{name}: {split} points of shape {x.shape[1:]}, expected {shape}"
            )
    return splits


def provenance(spec: Mapping[str, Any]) -> dict[str, Any]:
    """What a run records in place of raw-file digests: the generator, its parameters and
    the numpy that drew them (``RandomState`` streams are frozen by numpy's policy)."""
    return {
        "generator": spec["generator"],
        "parameters": dict(spec.get("parameters") or {}),
        "numpy": np.__version__,
    }


__all__ = [
    "GENERATED",
    "GENERATORS",
    "GeneratedSplits",
    "deepobs_quadratic",
    "generate",
    "provenance",
]

"""Datasets: fetch (through DVC), verify, and convert once into a fast on-disk cache.

Training code only ever calls :func:`load_cache`; parsing the published formats happens
once, in the pipeline's data stage (``amsgrad-repro prepare-data``).
"""

from amsgrad_repro.data.cache import DatasetTensors, load_cache

__all__ = ["DatasetTensors", "load_cache"]

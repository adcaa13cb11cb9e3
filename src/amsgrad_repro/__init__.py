"""amsgrad-repro: a reproducibility pipeline for Reddi, Kale & Kumar (ICLR 2018)."""

__version__ = "0.1.0"

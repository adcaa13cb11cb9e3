"""Runs summarised over seeds: seed-mean curves (``aggregate``) and per-seed final values
with the tables built from them (``finals``).

The lower half of the analysis: training, the synthetic runs and tuning read these, and
``analysis`` (claims, tables, the report's pages) is built on them, so that no package
below ``analysis`` imports it.
"""

"""Aggregation, statistics, claims and reports over finished runs."""

"""The loss-spike rule (train/spikes.py) on constructed loss sequences."""

from __future__ import annotations

import numpy as np
import pytest

from amsgrad_repro.config import ConfigError, load
from amsgrad_repro.train.spikes import SpikeRule
from tests.pipeline import REPO_ROOT

RULE = SpikeRule(factor=1.5, window=50)


def test_a_jump_above_the_median_of_the_window_is_a_spike():
    losses = np.full(200, 2.0)
    losses[[60, 61, 120]] = [3.01, 3.5, 2.99]  # 1.5 x 2.0 = 3.0 is the bar
    assert RULE.spikes(losses).tolist() == [60, 61]
    # The median, not the mean: the spike at 60 does not lift the bar for 61.
    assert RULE.count(losses) == 2


def test_the_first_window_and_short_runs_have_none():
    losses = np.full(50, 1.0)
    losses[10] = 100.0
    assert RULE.count(losses) == 0  # no 50 steps before any of them
    assert RULE.count(np.array([])) == 0


def test_a_decreasing_or_noisy_loss_has_none():
    steps = np.arange(1, 5001)
    assert RULE.count(3.0 / np.sqrt(steps)) == 0
    noisy = 2.0 + 0.05 * np.random.default_rng(0).standard_normal(5000)
    assert RULE.count(noisy) == 0  # 1.5 x median is 20 standard deviations above it


def test_from_settings_and_the_stacking_guard(tmp_path):
    assert SpikeRule.from_settings({}) is None
    assert SpikeRule.from_settings({"spike_rule": {"factor": 2, "window": 10}}) == SpikeRule(
        2.0, 10
    )
    overrides = {"tasks": {"logreg": {"stack": "seeds", "spike_rule": {"factor": 2, "window": 9}}}}
    with pytest.raises(ConfigError, match="does not count loss spikes"):
        load(REPO_ROOT / "config.yaml", overrides)
    with pytest.raises(ConfigError, match="factor"):
        load(
            REPO_ROOT / "config.yaml",
            {"tasks": {"logreg": {"spike_rule": {"factor": 1.0, "window": 9}}}},
        )

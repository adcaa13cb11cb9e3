"""A pytest plug-in for tests/test_tiers.py (``-p tests.xdist_ids``): the controller writes
the node ids each pytest-xdist worker collected, as the scheduler gets them, to the JSON
file named by ``AMSGRAD_REPRO_XDIST_IDS``."""

from __future__ import annotations

import json
import os
from pathlib import Path

_collected: dict[str, list[str]] = {}


def pytest_xdist_node_collection_finished(node, ids) -> None:
    _collected[node.gateway.id] = list(ids)
    Path(os.environ["AMSGRAD_REPRO_XDIST_IDS"]).write_text(json.dumps(_collected))

"""The configuration schema's enumerations against the registries they name: a kind added
to ``amsgrad_repro.kinds.KIND_MODULES`` (or removed) must be added to the schema too, or this fails.
(The synthetic problems are checked the same way in ``test_problems``.)"""

from __future__ import annotations

import yaml

from amsgrad_repro.config import TASK_KINDS
from amsgrad_repro.kinds import KIND_MODULES


def test_the_schema_names_the_registered_task_kinds(repo_root):
    schema = yaml.safe_load((repo_root / "workflow/schemas/config.schema.yaml").read_text())
    branches = schema["properties"]["tasks"]["additionalProperties"]["allOf"]
    named: list[str] = []
    for branch in branches:
        kind = branch["if"]["properties"]["kind"]
        named += kind["enum"] if "enum" in kind else [kind["const"]]
    assert sorted(named) == sorted(TASK_KINDS)
    assert schema["$defs"]["training_task"]["properties"]["kind"]["enum"] == list(KIND_MODULES)

"""Architectures by name: a task's ``model.arch`` picks one.

Each entry is ``"module:function"`` with ``function(model_settings, meta) -> nn.Module``;
modules are imported only when used. Adding a task is adding an entry here (plus its
config), never touching the engine.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

MODELS: dict[str, str] = {
    "logreg": "amsgrad_repro.train.models.linear:build_logreg",
    "mlp": "amsgrad_repro.train.models.linear:build_mlp",
    "cifarnet": "amsgrad_repro.train.models.builders:build_cifarnet",
    "vae": "amsgrad_repro.train.models.builders:build_vae",
}


def build_model(model: Mapping[str, Any], meta: Mapping[str, Any]) -> Any:
    """Build ``model["arch"]`` for a dataset with this meta (image_shape, num_classes)."""
    arch = model.get("arch")
    if arch not in MODELS:
        raise ValueError(f"unknown model arch {arch!r} (known: {', '.join(sorted(MODELS))})")
    module_name, function = MODELS[arch].split(":")
    return getattr(importlib.import_module(module_name), function)(model, meta)

"""Architectures by name: a task's ``model.arch`` picks one.

Each entry names its builder as ``"module:function"`` with ``function(model_settings,
meta) -> nn.Module`` (imported only when a job builds it: the Snakemake process that
validates configurations must not import torch), and whether several seeds of it can be
trained as one stacked model (``train.stacked``: the model's class then lists its layers in
``stack_layers()``). Adding a task is adding an entry here (plus its config), never
touching the engine.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Architecture:
    builder: str
    stackable: bool = False


MODELS: dict[str, Architecture] = {
    "logreg": Architecture("amsgrad_repro.train.models.linear:build_logreg", stackable=True),
    "mlp": Architecture("amsgrad_repro.train.models.linear:build_mlp", stackable=True),
    "cifarnet": Architecture("amsgrad_repro.train.models.builders:build_cifarnet"),
    "vae": Architecture("amsgrad_repro.train.models.builders:build_vae"),
    "gpt": Architecture("amsgrad_repro.train.models.gpt:build_gpt"),
    # DeepOBS's test problems (models/deepobs.py) and ResNet-20 (models/resnet.py).
    "fmnist_2c2d": Architecture("amsgrad_repro.train.models.deepobs:build_fmnist_2c2d"),
    "fmnist_mlp": Architecture("amsgrad_repro.train.models.deepobs:build_fmnist_mlp"),
    "fmnist_vae": Architecture("amsgrad_repro.train.models.deepobs:build_fmnist_vae"),
    "quadratic_deep": Architecture("amsgrad_repro.train.models.deepobs:build_quadratic_deep"),
    "resnet20": Architecture("amsgrad_repro.train.models.resnet:build_resnet20"),
}


def build_model(model: Mapping[str, Any], meta: Mapping[str, Any]) -> Any:
    """Build ``model["arch"]`` for a dataset with this meta (image_shape, num_classes)."""
    arch = model.get("arch")
    if arch not in MODELS:
        raise ValueError(f"unknown model arch {arch!r} (known: {', '.join(sorted(MODELS))})")
    module_name, function = MODELS[arch].builder.split(":")
    return getattr(importlib.import_module(module_name), function)(model, meta)

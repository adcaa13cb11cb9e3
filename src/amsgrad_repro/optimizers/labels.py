"""Legends of optimizer settings: α with its schedule, then every field that declares a
symbol, from the values a run recorded. Above both ``optimizers.hparams`` (the fields'
symbols) and ``optimizers.schedules`` (α_t), which never import each other in a circle."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from amsgrad_repro.optimizers import BUILTINS, hparams


def describe_step_size(values: Mapping[str, Any]) -> str:
    """``α=0.5/√t``, ``α=0.01/√(1+0.01t)``, ``α=0.1 (5% warm-up, cos→0α)`` or ``α=0.001``
    from recorded values ("" when
    they have no α, e.g. a record written before α was recorded)."""
    if "lr" not in values:
        return ""
    lr = f"α={values['lr']:g}"
    if values.get("lr_schedule") == "inv_sqrt":
        return f"{lr}/√t"
    if values.get("lr_schedule") == "inv_sqrt_affine":
        return f"{lr}/√(1+{values.get('lr_decay', 0):g}t)"
    decay = {"warmup_cosine": "cos", "warmup_linear": "lin"}.get(values.get("lr_schedule"))
    if decay:
        warmup = f"{values.get('lr_warmup', 0) * 100:g}% warm-up, "
        return f"{lr} ({warmup}{decay}→{values.get('lr_final', 0):g}α)"
    return lr


def label_parts(settings_type: type, values: Mapping[str, Any]) -> dict[str, str]:
    """Short labels of recorded values, ``{field: "β1=0.9"}``: α with its schedule, then
    every field that declares a symbol (a flag shows its symbol when set)."""
    parts = {"lr": describe_step_size(values)} if "lr" in values else {}
    for name, rule in hparams.rules(settings_type).items():
        if not rule.symbol or name not in values:
            continue
        value = values[name]
        if rule.kind == "flag":
            if value:
                parts[name] = rule.symbol
        elif value or rule.show_zero:
            parts[name] = f"{rule.symbol}={value:g}"
    return parts


def run_label_parts(name: str, values: Mapping[str, Any]) -> dict[str, str]:
    """Label parts of one run's recorded hyper-parameters (``hparams`` of its run.json);
    a plug-in or unknown name shows its step size only."""
    spec = BUILTINS.get(name)
    if spec is None:
        return {"lr": describe_step_size(values)} if "lr" in values else {}
    return label_parts(spec.settings, values)

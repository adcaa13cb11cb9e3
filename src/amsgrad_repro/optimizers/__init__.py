"""Every optimizer selectable by name in config.yaml, declared once.

:data:`BUILTINS` is the catalogue, in the order legends and colours follow; each entry is
an :class:`~amsgrad_repro.optimizers.spec.OptimizerSpec` from its family's module (one
module per family). :func:`catalogue` adds the plug-ins a configuration declares, and
:func:`task_settings` resolves the settings one task gives one optimizer, which is all a
job needs. Adding an optimizer is adding a spec to its family's module (or a family module)
and listing it here.

Importing this package costs neither torch nor numba (the Snakemake process reads it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from amsgrad_repro.optimizers import (
    adabelief,
    adabound,
    adam,
    adopt,
    hparams,
    padam,
    plugins,
    torch_classes,
    yogi,
)
from amsgrad_repro.optimizers.hparams import HParamError
from amsgrad_repro.optimizers.spec import NativeFamily, OptimizerSpec, TorchClass

BUILTINS: dict[str, OptimizerSpec] = {
    spec.name: spec
    for spec in (
        *adam.SPECS[:3],
        *torch_classes.SPECS[:2],
        adam.SPECS[3],
        *adopt.SPECS,
        adabelief.SPEC,
        yogi.SPEC,
        *adabound.SPECS,
        padam.SPEC,
        *torch_classes.SPECS[2:],
    )
}
# The families the compiled 1-D kernel dispatches between, in a fixed order.
NATIVE_FAMILIES: tuple[NativeFamily, ...] = tuple(
    dict.fromkeys(spec.native for spec in BUILTINS.values() if spec.native is not None)
)


def catalogue(plugin_declarations: Mapping[str, Any] | None = None) -> dict[str, OptimizerSpec]:
    """The built-ins plus the plug-ins declared under ``plugins:`` (not imported here)."""
    found = dict(BUILTINS)
    for name, declaration in (plugin_declarations or {}).items():
        if name in BUILTINS:
            raise plugins.PluginError(f"plugins.{name}: {name!r} is a built-in optimizer")
        if plugins.is_variant(declaration):
            found[name] = plugins.variant_spec(name, declaration, BUILTINS)
        else:
            found[name] = plugins.plugin_spec(name, declaration)
    return found


def task_settings(spec: OptimizerSpec, task_name: str, task: Mapping[str, Any]) -> Any:
    """The settings ``task`` gives ``spec``: its defaults, the task's shared ``hparams``
    that this optimizer declares, then the task's ``overrides`` for it."""
    shared = spec.shared_keys(task.get("hparams") or {})
    own = (task.get("overrides") or {}).get(spec.name) or {}
    for key in sorted(set(own) & set(spec.fixed)):
        if key in spec.hparam_rules:  # a user option fixed by the name (a variant's)
            raise HParamError(
                f"tasks.{task_name}.overrides.{spec.name}.{key}: fixed by the optimizer's "
                f"name ({spec.name}: {key} = {spec.fixed[key]!r}); choose the optimizer "
                "that has the value you want"
            )
    return spec.resolve(
        (f"tasks.{task_name}.hparams", shared),
        (f"tasks.{task_name}.overrides.{spec.name}", own),
    )


def check_shared_hparams(
    specs: Mapping[str, OptimizerSpec], task_name: str, task: Mapping[str, Any]
) -> None:
    """A shared hyper-parameter that none of the task's optimizers has is a typo."""
    names = task.get("optimizers") or []
    for key in task.get("hparams") or {}:
        if not any(key in specs[name].hparam_rules for name in names):
            known = sorted({k for name in names for k in specs[name].hparam_rules})
            raise HParamError(
                f"tasks.{task_name}.hparams.{key}: none of this task's optimizers "
                f"({', '.join(names)}) has a hyper-parameter {key!r} (they have: "
                f"{', '.join(known)})"
            )


def scalar_form(spec: OptimizerSpec, settings: Any) -> tuple[NativeFamily, Any] | None:
    """The native family and settings that run ``spec`` in the compiled 1-D kernel, or
    None (the generic tensor path). A ``torch.optim`` class runs as its twin."""
    if spec.native is not None:
        if any(getattr(settings, key) for key in spec.native.scalar_unsupported):
            return None
        return spec.native, settings
    impl: TorchClass = spec.impl  # type: ignore[assignment]
    if impl.twin is None:
        return None
    twin = BUILTINS[impl.twin.spec]
    values = hparams.as_record(settings)
    for key in impl.twin.zero_only:
        if values[key]:
            return None
    shared = {k: v for k, v in values.items() if k in twin.hparam_rules}
    shared = {k: v for k, v in shared.items() if k not in impl.twin.zero_only}
    twin_settings = twin.resolve(("", shared), ("", dict(impl.twin.fixed)))
    return twin.native, twin_settings  # type: ignore[return-value]


__all__ = [
    "BUILTINS",
    "NATIVE_FAMILIES",
    "HParamError",
    "OptimizerSpec",
    "catalogue",
    "check_shared_hparams",
    "scalar_form",
    "task_settings",
]

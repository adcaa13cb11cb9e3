"""Plug-ins: any ``torch.optim.Optimizer`` subclass, declared in config.yaml by import path.

::

    plugins:
      lion:                                  # the name tasks use
        class: pytorch_optimizer:Lion        # module:attribute, importable where jobs run
        summary: Lion (Chen et al., 2023), from pytorch-optimizer
        hparams: {lr: 1.0e-4, betas: [0.9, 0.99], weight_decay: 0.0}
        elementwise: true                    # optional, default false

``hparams`` are the class's keyword arguments with their defaults; their types follow the
defaults (a float stays a float, a list a list), ``lr`` is required (tasks set it and the
schedules scale it), and ``lr_schedule``/``lr_decay`` are added as for every optimizer
(the schedule runs as a LambdaLR). ``elementwise: true`` promises that the update acts
coordinate by coordinate, which lets the 1-D problems run every seed in one tensor and
stacked jobs stack seeds; otherwise each seed gets its own parameter tensor.

A variant is a built-in under a name of its own with hyper-parameters fixed by that name
(:func:`variant_spec`), e.g. ``adamw-beta2-0.95: {variant_of: adamw, hparams: {beta2:
0.95}}``: nothing is imported, and it runs exactly as the built-in with those values.

:func:`check` imports the class and builds it on a dummy parameter, so that a wrong path
or keyword fails when the configuration is read, naming the config key and the error.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.util
import inspect
import json
import keyword
import os
from collections.abc import Mapping
from dataclasses import make_dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from amsgrad_repro.optimizers import hparams
from amsgrad_repro.optimizers.schedules import StepSize
from amsgrad_repro.optimizers.spec import SCHEDULE_FIELDS, OptimizerSpec, TorchClass
from amsgrad_repro.settings_base import ConfigError


class PluginError(ConfigError):
    """A plug-in declaration that cannot work; the message names its config key."""


def _field_for(name: str, default: Any) -> Any:
    doc = f"keyword argument {name} of the plug-in"
    if isinstance(default, bool):
        return hparams.flag(default, doc)
    if isinstance(default, int):
        return hparams.integer(default, doc)
    if isinstance(default, float):
        return hparams.real(default, doc)
    return hparams.value(default, doc)


def _settings_type(name: str, declared: Mapping[str, Any]) -> type:
    fields = []
    for key, default in declared.items():
        if key in SCHEDULE_FIELDS or key == "lr":
            continue
        fields.append((key, type(default), _field_for(key, default)))
    class_name = "Plugin_" + "".join(
        part.capitalize() for part in name.replace("-", "_").split("_")
    )
    return make_dataclass(class_name, fields, bases=(StepSize,), frozen=True)


def split_path(path: str, where: str) -> tuple[str, str]:
    module, _, attribute = path.partition(":")
    if not module or not attribute:
        raise PluginError(f"{where}: expected 'module:Class', got {path!r}")
    return module, attribute


def loader(path: str, where: str):
    """A function importing the class at ``path`` (deferred: jobs import it when they run)."""
    module, attribute = split_path(path, where)

    def load() -> type:
        try:
            found = getattr(importlib.import_module(module), attribute)
        except (ImportError, AttributeError) as error:
            raise PluginError(f"{where}: cannot import {path!r}: {error}") from error
        return found

    return load


def plugin_kwargs(settings: Any) -> dict[str, Any]:
    """The declared keyword arguments, under their own names (lists become tuples)."""
    values = {k: v for k, v in hparams.as_record(settings).items() if k not in SCHEDULE_FIELDS}
    return {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}


def plugin_spec(name: str, declaration: Mapping[str, Any]) -> OptimizerSpec:
    """The spec of one plug-in declaration (``plugins.<name>`` in config.yaml)."""
    where = f"plugins.{name}"
    declared = dict(declaration.get("hparams") or {})
    if "lr" not in declared:
        raise PluginError(f"{where}.hparams: declare lr (tasks set it and schedules scale it)")
    for key in declared:
        if not str(key).isidentifier() or keyword.iskeyword(key):
            raise PluginError(
                f"{where}.hparams: {key!r} is not an option name; the class receives each "
                "option as a keyword argument, so write a Python identifier (letters, digits "
                "and _, not starting with a digit)"
            )
    path = declaration["class"]
    settings = _settings_type(name, declared)
    try:
        return OptimizerSpec(
            name=name,
            summary=declaration.get("summary") or f"plug-in {path}",
            source=path,
            settings=settings,
            impl=TorchClass(load=loader(path, f"{where}.class"), kwargs=plugin_kwargs),
            defaults={k: v for k, v in declared.items() if k in hparams.rules(settings)},
            elementwise=bool(declaration.get("elementwise", False)),
            plugin=dict(declaration),
        )
    except hparams.HParamError as error:  # a declared default its own rule refuses (lr: null)
        raise PluginError(f"{where}.hparams.{str(error).removeprefix(name + '.')}") from None


def is_variant(declaration: Mapping[str, Any] | None) -> bool:
    """Whether a plug-in declaration names a setting of a built-in (``variant_of``)
    rather than a class to import."""
    return declaration is not None and "variant_of" in declaration


def variant_spec(
    name: str, declaration: Mapping[str, Any], builtins: Mapping[str, OptimizerSpec]
) -> OptimizerSpec:
    """A built-in under a name of its own with some hyper-parameters fixed by that name
    (``plugins.<name>: {variant_of: adamw, hparams: {beta2: 0.95}}``): a sweep over β2
    becomes optimizers that tasks list, paths hold and claims pair like any other. The
    fixed values win over a task's shared ``hparams`` (that is the name's meaning); a
    task's ``overrides`` for the variant may not set them (``task_settings``)."""
    where = f"plugins.{name}"
    base_name = declaration["variant_of"]
    if base_name not in builtins:
        raise PluginError(
            f"{where}.variant_of: {base_name!r} is not a built-in optimizer "
            f"(built-ins: {', '.join(builtins)})"
        )
    base = builtins[base_name]
    values = dict(declaration.get("hparams") or {})
    rules = base.hparam_rules
    for key, value in values.items():
        if key not in rules:
            raise PluginError(
                f"{where}.hparams.{key}: {base_name} has no hyper-parameter {key!r} "
                f"(it has: {', '.join(rules)})"
            )
        try:
            values[key] = rules[key].check(f"{where}.hparams.{key}", value)
        except hparams.HParamError as error:
            raise PluginError(str(error)) from None
    settings = ", ".join(f"{key} = {value}" for key, value in values.items())
    return dataclasses.replace(
        base,
        name=name,
        summary=declaration.get("summary") or f"{base.summary}; {base_name} with {settings}",
        fixed={**base.fixed, **values},
        plugin=dict(declaration),
    )


def check(spec: OptimizerSpec) -> None:
    """Import the plug-in's class and build it on a dummy parameter with its defaults."""
    import torch  # the plug-in check only: torch stays out of start-up

    where = f"plugins.{spec.name}.class"
    cls = spec.impl.load()  # type: ignore[union-attr]
    if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
        raise PluginError(f"{where}: {spec.source!r} is not a torch.optim.Optimizer subclass")
    kwargs = spec.impl.kwargs(spec.resolve())  # type: ignore[union-attr]
    try:
        built = cls([torch.zeros(2, requires_grad=True)], **kwargs)
    except Exception as error:  # any constructor failure is the user's to see, named
        raise PluginError(f"plugins.{spec.name}: cannot build {spec.source}: {error}") from error
    for key in kwargs:
        if not _takes(cls, built, key):
            raise PluginError(
                f"plugins.{spec.name}.hparams.{key}: {spec.source} has no hyper-parameter "
                f"{key!r} (it takes: {', '.join(sorted(_named_keywords(cls) or built.defaults))}"
                "); remove it or correct its name"
            )


def _takes(cls: type, built: Any, key: str) -> bool:
    """Whether the class really uses keyword ``key``. A class taking ``**kwargs`` accepts
    any name without complaint, and may even copy it into its ``defaults`` unread
    (pytorch-optimizer's Lion does): so a key counts when an ``__init__`` of the class or
    of its bases names it; only a class that names no keyword at all is judged by what its
    built instance records in ``defaults``."""
    named = _named_keywords(cls)
    return key in named if named else key in built.defaults


def _named_keywords(cls: type) -> set[str]:
    """The keyword parameters that the ``__init__`` of ``cls`` and of its bases below
    ``torch.optim.Optimizer`` name (not ``params``, not ``**kwargs``)."""
    import torch  # the plug-in check only: torch stays out of start-up

    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    names: set[str] = set()
    for klass in cls.__mro__:
        if klass in torch.optim.Optimizer.__mro__ or "__init__" not in vars(klass):
            continue
        try:
            parameters = inspect.signature(vars(klass)["__init__"]).parameters.values()
        except (TypeError, ValueError):  # a builtin without a signature: nothing named
            continue
        names |= {p.name for p in parameters if p.kind in kinds} - {"self", "params", "defaults"}
    return names


def check_cached(spec: OptimizerSpec, cache: Path | None) -> None:
    """:func:`check`, skipped when ``cache`` records that this declaration already passed
    with the same module file and package version (the check imports torch and the plug-in,
    seconds that every Snakemake start would otherwise pay)."""
    key = _check_key(spec)
    marker = cache / f"plugin-{key}.ok" if cache is not None and key else None
    if marker is not None and marker.exists():
        return
    check(spec)
    if marker is not None:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps(spec.plugin, sort_keys=True, default=str) + "\n")


def _check_key(spec: OptimizerSpec) -> str | None:
    """What the check's outcome depends on: the declaration, where the module's file is and
    when it changed, and the installed version of its distribution; None if not found."""
    module, _ = split_path(spec.source, f"plugins.{spec.name}.class")
    try:
        found = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if found is None or not found.origin or not os.path.exists(found.origin):
        return None
    top = module.split(".")[0]
    try:
        version = metadata.version(top.replace("_", "-"))
    except metadata.PackageNotFoundError:
        version = ""
    text = json.dumps(
        [spec.plugin, found.origin, os.stat(found.origin).st_mtime_ns, version],
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:20]

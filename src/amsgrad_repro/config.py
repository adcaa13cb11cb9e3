"""Load, resolve and validate the pipeline configuration.

``config.yaml`` holds a base configuration plus named ``presets`` (``paper``, ``quick``,
``smoke``). The ``scale`` key picks one; its overrides are deep-merged into the base. The
resolved configuration is validated against ``workflow/schemas/config.schema.yaml`` and
against the registry, so a typo fails at start-up with the offending key in the message
instead of hours later inside a job.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from amsgrad_repro.train.api import KIND_MODULES

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SCHEMA = REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml"


# Every task kind: the synthetic problems, and the training kinds.
TASK_KINDS: tuple[str, ...] = ("synthetic", *KIND_MODULES)


class ConfigError(ValueError):
    """A configuration value is wrong; the message names the key."""


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``override`` into a copy of ``base``; nested mappings merge, the rest replaces."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _key_path(path: Any) -> str:
    parts = [str(p) for p in path]
    return ".".join(parts) if parts else "<top level>"


def validate_schema(config: Mapping[str, Any], schema_path: Path = DEFAULT_SCHEMA) -> None:
    """Raise ConfigError naming the first wrong key, with the schema's complaint."""
    with open(schema_path) as handle:
        schema = yaml.safe_load(handle)
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if not errors:
        return
    lines = []
    for error in errors[:5]:
        where = _key_path(error.absolute_path)
        lines.append(f"  {where}: {error.message}")
    raise ConfigError("invalid configuration:\n" + "\n".join(lines))


def resolve(
    config: Mapping[str, Any],
    schema_path: Path = DEFAULT_SCHEMA,
    overrides: Mapping[str, Any] | None = None,
    plugin_cache: Path | None = None,
) -> dict[str, Any]:
    """Apply the selected scale preset, then validate the result.

    Precedence, lowest first: the config file, the preset, then ``overrides`` (what the user
    gave on the command line, e.g. ``--config seeds=3``), so a preset never silently undoes
    an explicit request. ``plugin_cache`` is a folder remembering which plug-in
    declarations already passed their import-and-build check (it costs seconds).
    """
    presets = config.get("presets", {})
    scale = config.get("scale")
    if scale not in presets:
        known = ", ".join(sorted(presets)) or "none defined"
        raise ConfigError(f"scale: unknown preset {scale!r} (known presets: {known})")
    base = {k: v for k, v in config.items() if k != "presets"}
    resolved = deep_merge(base, presets[scale] or {})
    explicit = {k: _typed_leaf(v) for k, v in (overrides or {}).items() if k != "presets"}
    resolved = deep_merge(resolved, explicit)
    _check_task_names(resolved)
    resolved["seeds"] = normalise_seeds(resolved.get("seeds"))
    validate_schema(resolved, schema_path)
    _check_registry_names(resolved, plugin_cache)
    _check_dataset_names(resolved)
    _check_stacking(resolved)
    from amsgrad_repro.synthetic.grid_spec import check_grids

    check_grids(resolved)
    return resolved


def _check_task_names(config: Mapping[str, Any]) -> None:
    """A task that only a ``--config`` value or a preset names (it has no ``kind``) is a
    typo: say so, with the task names config.yaml defines, before the schema would complain
    about its missing keys."""
    tasks = config.get("tasks") or {}
    if not isinstance(tasks, Mapping):
        return
    known = sorted(
        name for name, task in tasks.items() if isinstance(task, Mapping) and "kind" in task
    )
    for name, task in tasks.items():
        if isinstance(task, Mapping) and "kind" not in task:
            raise ConfigError(f"tasks.{name}: unknown task {name!r} (known: {', '.join(known)})")


def _check_dataset_names(config: Mapping[str, Any]) -> None:
    """Every training task's ``dataset`` is configured under ``datasets:`` (checked at
    start-up, not when Snakemake builds the jobs)."""
    datasets = config.get("datasets") or {}
    for name, task in config["tasks"].items():
        dataset = task.get("dataset")
        if dataset is not None and task.get("kind") != "synthetic" and dataset not in datasets:
            raise ConfigError(
                f"tasks.{name}.dataset: unknown dataset {dataset!r} "
                f"(configured under datasets: {', '.join(sorted(datasets)) or 'none'})"
            )


def error_source(message: str, overrides: Mapping[str, Any] | None) -> str:
    """Where the value a ConfigError names came from: ``--config`` when the command line
    set that key (or a mapping above it), else ``config.yaml``; used as the message's
    prefix so that a user fixes the right place."""
    overrides = overrides or {}
    match = re.search(r"^\s*([\w.\[\]-]+|<top level>): ", message, flags=re.M)
    if match is None or match.group(1) == "invalid configuration":
        return "config.yaml"
    key = match.group(1)
    if key == "<top level>":
        quoted = re.findall(r"'([^']+)' was unexpected", message)
        return "--config" if any(name in overrides for name in quoted) else "config.yaml"
    level: Any = overrides
    for part in re.sub(r"\[\d+\]", "", key).split("."):
        if not isinstance(level, Mapping) or part not in level:
            return "config.yaml"
        level = level[part]
    return "--config"


def _typed_leaf(value: Any) -> Any:
    """Snakemake types only some ``--config`` values: ``tune=true`` arrives as ``'true'``,
    ``seeds=[0, 1]`` as ``['0', '1']`` and the leaves of a nested value
    (``tasks={logreg: {epochs: 40}}``) as strings; read such values as YAML scalars, as
    they would be in config.yaml."""
    if isinstance(value, Mapping):
        return {key: _typed_leaf(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_typed_leaf(item) for item in value]
    if isinstance(value, str):
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            return value
        if parsed is None or isinstance(parsed, bool | int | float):
            return parsed
    return value


def normalise_seeds(seeds: Any) -> list[int]:
    """``seeds`` may be a count (``10`` → 0..9) or an explicit list."""
    if isinstance(seeds, bool):
        raise ConfigError(f"seeds: expected a count or a list of integers, got {seeds!r}")
    if isinstance(seeds, int):
        if seeds < 1:
            raise ConfigError(f"seeds: need at least one seed, got {seeds}")
        return list(range(seeds))
    if (
        isinstance(seeds, list)
        and seeds
        and all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)
    ):
        if len(set(seeds)) != len(seeds):
            raise ConfigError(f"seeds: duplicate seeds in {seeds}")
        return list(seeds)
    raise ConfigError(f"seeds: expected a count or a non-empty list of integers, got {seeds!r}")


def _check_registry_names(config: Mapping[str, Any], plugin_cache: Path | None = None) -> None:
    """Task kinds, optimizer names and every optimizer's hyper-parameters, checked against
    their declarations (``amsgrad_repro.optimizers``), plus the plug-ins the tasks use."""
    from amsgrad_repro.optimizers import HParamError, catalogue, check_shared_hparams
    from amsgrad_repro.optimizers import task_settings as optimizer_settings
    from amsgrad_repro.optimizers.plugins import PluginError, check_cached

    try:
        specs = catalogue(config.get("plugins"))
    except PluginError as error:
        raise ConfigError(str(error)) from None
    known = ", ".join(specs)
    used: set[str] = set()
    for task_name, task in config.get("tasks", {}).items():
        kind = task.get("kind")
        if kind not in TASK_KINDS:
            raise ConfigError(
                f"tasks.{task_name}.kind: unknown task kind {kind!r} "
                f"(known: {', '.join(sorted(TASK_KINDS))})"
            )
        for index, name in enumerate(task.get("optimizers", [])):
            if name not in specs:
                raise ConfigError(
                    f"tasks.{task_name}.optimizers[{index}]: unknown optimizer {name!r} "
                    f"(known: {known})"
                )
        # Overrides of an optimizer the task does not run are kept (a command line may
        # narrow the list), but a name no optimizer has is a typo.
        for name in task.get("overrides", {}) or {}:
            if name not in specs:
                raise ConfigError(
                    f"tasks.{task_name}.overrides.{name}: unknown optimizer {name!r} "
                    f"(known: {known})"
                )
        try:
            check_shared_hparams(specs, task_name, task)
            for name in task.get("optimizers", []):
                optimizer_settings(specs[name], task_name, task)
        except HParamError as error:
            raise ConfigError(str(error)) from None
        if task.get("enabled", True):
            used.update(task.get("optimizers", []))
    for index, pair in enumerate((config.get("analysis") or {}).get("pairs") or []):
        for name in pair:
            if name not in specs:
                raise ConfigError(
                    f"analysis.pairs[{index}]: unknown optimizer {name!r} (known: {known})"
                )
    for name in sorted(used):
        if specs[name].plugin is not None:
            try:
                check_cached(specs[name], plugin_cache)
            except PluginError as error:
                raise ConfigError(str(error)) from None


def _check_stacking(config: Mapping[str, Any]) -> None:
    """``stack: seeds`` needs a model the stacked engine can stack and no random input
    augmentation (each member would need its own random stream inside one batch)."""
    from amsgrad_repro.train.models import MODELS

    stackable = ", ".join(name for name, arch in MODELS.items() if arch.stackable)
    for name, task in config.get("tasks", {}).items():
        if task.get("stack") != "seeds":
            continue
        arch = MODELS.get((task.get("model") or {}).get("arch"))
        if arch is None or not arch.stackable:
            raise ConfigError(
                f"tasks.{name}.stack: model {task['model'].get('arch')!r} cannot be stacked "
                f"(stackable: {stackable}); use stack: none"
            )
        if (task.get("input") or {}).get("augment", "none") != "none":
            raise ConfigError(f"tasks.{name}.stack: random augmentation cannot be stacked")


def load(path: str | Path = "config.yaml", overrides: Mapping[str, Any] | None = None) -> dict:
    """Read a config file, apply command-line style overrides, and resolve it."""
    with open(path) as handle:
        raw = yaml.safe_load(handle) or {}
    if overrides:
        raw = deep_merge(raw, overrides)
    return resolve(raw, overrides=overrides)


def enabled_tasks(config: Mapping[str, Any], kind: str | None = None) -> list[str]:
    """Names of tasks switched on in the resolved config, optionally of one kind."""
    return [
        name
        for name, task in config["tasks"].items()
        if task.get("enabled", True) and (kind is None or task["kind"] == kind)
    ]

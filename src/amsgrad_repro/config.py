"""Load, resolve and validate the pipeline configuration.

``config.yaml`` holds a base configuration plus named ``presets`` (``paper``, ``quick``,
``smoke``). The ``scale`` key picks one; its overrides are deep-merged into the base. The
resolved configuration is validated against ``workflow/schemas/config.schema.yaml`` and
against the registry, so a typo fails at start-up with the offending key in the message
instead of hours later inside a job.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from amsgrad_repro.kinds import KIND_MODULES
from amsgrad_repro.optimizers import HParamError, catalogue, check_shared_hparams
from amsgrad_repro.optimizers import task_settings as optimizer_settings
from amsgrad_repro.optimizers.plugins import PluginError, check_cached, is_variant
from amsgrad_repro.settings_base import (
    DEFAULT_SCHEMA,
    REPO_ROOT,
    ConfigError,
    deep_merge,
    enabled_tasks,
    normalise_seeds,
    validate_schema,
    validate_typed,
)
from amsgrad_repro.synthetic.grid_spec import check_grids
from amsgrad_repro.train.models import MODELS
from amsgrad_repro.tuning.grid import check_tuning

# Every task kind: the synthetic problems, and the training kinds.
TASK_KINDS: tuple[str, ...] = ("synthetic", *KIND_MODULES)

# Re-exported: the configuration's primitives live in the leaf module settings_base.
__all__ = [
    "ConfigError",
    "deep_merge",
    "enabled_tasks",
    "error_source",
    "load",
    "normalise_seeds",
    "resolve",
    "validate_schema",
    "DEFAULT_SCHEMA",
    "REPO_ROOT",
]


def resolve(
    config: Mapping[str, Any],
    schema_path: Path = DEFAULT_SCHEMA,
    overrides: Mapping[str, Any] | None = None,
    plugin_cache: Path | None = None,
) -> dict[str, Any]:
    """Apply the selected scale preset, then validate the result: the one caller of every
    validator (the schema, the registries' names, the grids, tuning), so that a resolved
    configuration is a checked one.

    Precedence, lowest first: the config file, the preset, then ``overrides`` (what the user
    gave on the command line, e.g. ``--config seeds=3``), so a preset never silently undoes
    an explicit request. ``plugin_cache`` is a folder remembering which plug-in
    declarations already passed their import-and-build check (it costs seconds).
    """
    if not isinstance(config, Mapping):
        raise ConfigError(
            f"<top level>: the configuration must be a mapping of keys to values, "
            f"got {type(config).__name__}"
        )
    # The file first, presets included, so that an entry a preset brings is named by its
    # place in the file (``presets.quick.tasks…``), not by where it would land.
    _check_keys(config)
    _check_values(yaml12_numbers(config))
    resolved = yaml12_numbers(_merge_preset(config, overrides))
    _check_keys(resolved)
    _check_values(resolved)
    _check_task_names(resolved)
    resolved["seeds"] = normalise_seeds(resolved.get("seeds"))
    validate_typed(resolved, schema_path)
    _check_registry_names(resolved, plugin_cache)
    _check_models(resolved)
    _check_dataset_names(resolved)
    _check_stacking(resolved)
    _check_synthetic_budgets(resolved)
    check_grids(resolved)
    check_tuning(resolved)
    return resolved


def _merge_preset(config: Mapping[str, Any], overrides: Mapping[str, Any] | None) -> dict:
    """The file's base, the preset ``scale`` names merged over it, then the command line."""
    presets = config.get("presets") or {}
    if not isinstance(presets, Mapping):
        raise ConfigError(f"presets: expected a mapping of preset names, got {presets!r}")
    scale = config.get("scale")
    if not isinstance(scale, str) or scale not in presets:
        known = ", ".join(sorted(map(str, presets))) or "none defined"
        raise ConfigError(f"scale: unknown preset {scale!r} (known presets: {known})")
    preset = presets[scale] or {}
    if not isinstance(preset, Mapping):
        raise ConfigError(f"presets.{scale}: expected a mapping of settings, got {preset!r}")
    if not isinstance(overrides or {}, Mapping):
        raise ConfigError(f"--config: expected key=value settings, got {overrides!r}")
    base = {k: v for k, v in config.items() if k != "presets"}
    explicit = {k: _typed_leaf(v) for k, v in (overrides or {}).items() if k != "presets"}
    preset = dict(preset)
    switched_off = _not_run(base, scale, preset.pop(PRESET_RUN, None))
    return deep_merge(base, switched_off, preset, explicit)


PRESET_RUN = "run"  # the key of a preset that names the tasks and grids it runs
SECTIONS_RUN = ("tasks", "grids")  # the sections whose entries a preset's run list names


def _not_run(base: Mapping[str, Any], scale: str, run: Any) -> dict[str, Any]:
    """``{"tasks": {name: {"enabled": False}}, "grids": …}`` for every task and grid that
    the preset's ``run`` list leaves out (``all``: none), so that a task added to
    config.yaml joins only the presets that name it. Merged below the preset and the
    command line: an ``enabled`` either of them gives still wins."""
    where = f"presets.{scale}.{PRESET_RUN}"
    sections = {key: base.get(key) or {} for key in SECTIONS_RUN}
    if not all(isinstance(section, Mapping) for section in sections.values()):
        return {}  # the schema names the section that is not a mapping
    if run == "all":
        return {}
    known = [str(name) for section in sections.values() for name in section]
    if not isinstance(run, list) or not all(isinstance(name, str) for name in run):
        raise ConfigError(
            f"{where}: name the tasks and grids this preset runs, as a list of names or "
            f"`all` (got {run!r}; names: {', '.join(known)})"
        )
    for index, name in enumerate(run):
        if name not in known:
            raise ConfigError(
                f"{where}[{index}]: unknown task or grid {name!r} (known: {', '.join(known)})"
            )
    return {
        key: {name: {"enabled": False} for name in section if name not in run}
        for key, section in sections.items()
    }


# A number as YAML 1.2 (and a person) writes it with an exponent: 1e6, 1E-3, +2.5e+3, .5e1.
# YAML 1.1, which PyYAML and Snakemake read config.yaml and --config with, takes these for
# strings (it wants a dot and a signed exponent: 1.0e+6). Short: a 32-digit md5 stays text.
_EXPONENT_NUMBER = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)[eE][-+]?[0-9]+")
_LONGEST_NUMBER = 24


def yaml12_number(text: str) -> float | None:
    """The number ``text`` is in YAML 1.2 if YAML 1.1 left it a string, else None."""
    if len(text) <= _LONGEST_NUMBER and _EXPONENT_NUMBER.fullmatch(text.strip()):
        return float(text)
    return None


def yaml12_numbers(value: Any) -> Any:
    """``value`` with every string that YAML 1.2 reads as a number replaced by it, in
    mapping values and list items (keys are names and stay as they are)."""
    if isinstance(value, Mapping):
        return {key: yaml12_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [yaml12_numbers(item) for item in value]
    if isinstance(value, str):
        number = yaml12_number(value)
        return value if number is None else number
    return value


def _check_keys(value: Any, where: str = "") -> None:
    """Every key is a name (text, not blank): YAML also reads ``1:``, ``null:``, ``on:`` or
    a date as keys of other types, which no setting has, and which the jobs' JSON settings
    (sorted keys) cannot hold side by side with names. A blank key (``'': x`` in a preset,
    ``' '=x`` on the command line) would otherwise reach the value checks, whose messages
    then name no key at all (found by tests/test_config_fuzz.py)."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ConfigError(
                    f"{where or '<top level>'}: the key {key!r} is not a name; keys are "
                    f"text (write it in quotes, '{key}', or correct it)"
                )
            if not key.strip():
                raise ConfigError(
                    f"{where or '<top level>'}: the key {key!r} is blank; every key names a "
                    "setting (remove the entry or write the setting's name)"
                )
            _check_keys(item, f"{where}.{key}" if where else key)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_keys(item, f"{where}[{index}]")


# The types a setting can have: JSON's, which the jobs' settings are passed as.
SETTING_TYPES = (str, bool, int, float, type(None))


def _check_values(value: Any, where: str = "") -> None:
    """Every value is text, a number, a boolean or null, and no number is NaN or infinite.

    YAML reads an unquoted ``2020-01-01`` as a date (and ``!!binary``, ``!!set`` as bytes and
    sets), which no setting is and the jobs' JSON settings cannot hold (a traceback at
    start-up, found by tests/test_config_fuzz.py). YAML also reads ``.nan`` and ``.inf``:
    the schema's ranges let a NaN through (every comparison with it is false), and a run
    would carry it silently."""
    where_shown = where or "<top level>"
    if isinstance(value, Mapping):
        for key, item in value.items():
            _check_values(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_values(item, f"{where}[{index}]")
    elif not isinstance(value, SETTING_TYPES):
        raise ConfigError(
            f"{where_shown}: {value!s:.60} is a {type(value).__name__}, which no setting is "
            f"(YAML reads it so when it is not quoted): quote it ('{value!s:.60}') or "
            "correct it"
        )
    elif isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(
            f"{where_shown}: expected a finite number, got {value!r} (give a "
            "number, or leave the key out for its default)"
        )


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
    match = re.search(r"^\s*([^\s:]+|<top level>): ", message, flags=re.M)
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


def _check_registry_names(config: Mapping[str, Any], plugin_cache: Path | None = None) -> None:
    """Task kinds, optimizer names and every optimizer's hyper-parameters, checked against
    their declarations (``amsgrad_repro.optimizers``), plus the plug-ins the tasks use."""
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
        if task.get("enabled", True):
            used.update(task.get("optimizers", []))
    for index, pair in enumerate((config.get("analysis") or {}).get("pairs") or []):
        for name in pair:
            if name not in specs:
                raise ConfigError(
                    f"analysis.pairs[{index}]: unknown optimizer {name!r} (known: {known})"
                )
    # A plug-in that cannot be imported or built is the cause of any error its tasks'
    # settings would raise next, so it is reported first.
    for name in sorted(used):
        if specs[name].plugin is not None and not is_variant(specs[name].plugin):
            try:
                check_cached(specs[name], plugin_cache)
            except PluginError as error:
                raise ConfigError(str(error)) from None
    for task_name, task in config.get("tasks", {}).items():
        try:
            check_shared_hparams(specs, task_name, task)
            for name in task.get("optimizers", []):
                optimizer_settings(specs[name], task_name, task)
        except HParamError as error:
            raise ConfigError(str(error)) from None


def _check_models(config: Mapping[str, Any]) -> None:
    """Every training task's ``model.arch`` names a model of the table (train.models)."""
    for name, task in config["tasks"].items():
        if task.get("kind") == "synthetic":
            continue
        arch = (task.get("model") or {}).get("arch")
        if arch not in MODELS:
            raise ConfigError(
                f"tasks.{name}.model.arch: unknown model {arch!r} "
                f"(known: {', '.join(sorted(MODELS))})"
            )


def _check_synthetic_budgets(config: Mapping[str, Any]) -> None:
    """A synthetic task's ``max_steps`` (the continuation budget) is at least its ``steps``."""
    for name, task in config.get("tasks", {}).items():
        if task.get("kind") != "synthetic" or task.get("max_steps") is None:
            continue
        if int(task["max_steps"]) < int(task["steps"]):
            raise ConfigError(
                f"tasks.{name}.max_steps ({task['max_steps']}) is below its steps "
                f"({task['steps']}); raise it, or drop it to run each run for steps only"
            )


def _check_stacking(config: Mapping[str, Any]) -> None:
    """``stack: seeds`` needs a model the stacked engine can stack and no random input
    augmentation (each member would need its own random stream inside one batch)."""
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
        if task.get("spike_rule"):
            raise ConfigError(
                f"tasks.{name}.stack: a stacked job does not count loss spikes "
                "(spike_rule); use stack: none, or drop spike_rule"
            )


def load(path: str | Path = "config.yaml", overrides: Mapping[str, Any] | None = None) -> dict:
    """Read a config file, apply command-line style overrides, and resolve it."""
    with open(path) as handle:
        raw = yaml.safe_load(handle) or {}
    if overrides:
        raw = deep_merge(raw, overrides)
    return resolve(raw, overrides=overrides)

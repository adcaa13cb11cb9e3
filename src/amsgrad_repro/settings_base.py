"""What every settings validator shares: the error it raises, merging, seed lists.

A leaf of the package (it imports nothing of it), so that the domain modules that validate
one part of the configuration (``synthetic.grid_spec``, ``tuning.grid``, ``train``…) import
it, and :func:`amsgrad_repro.config.resolve`, which calls each of those validators, can
import them at the top of the module: no import circle between ``config`` and its
validators, and no import hidden inside a function to break one.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SCHEMA = REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """A configuration value is wrong; the message names the key and what to do."""


def key_path(path: Any) -> str:
    """``tasks.logreg.epochs`` for the key path ("<top level>" for the empty one)."""
    parts = [str(p) for p in path]
    return ".".join(parts) if parts else "<top level>"


@functools.cache
def _schema(schema_path: Path) -> dict[str, Any]:
    with open(schema_path) as handle:
        return yaml.safe_load(handle)


def validate_schema(config: Mapping[str, Any], schema_path: Path = DEFAULT_SCHEMA) -> None:
    """Raise ConfigError naming the first wrong keys, with the schema's complaint."""
    _raise_schema_errors(config, _schema(Path(schema_path)))


def check_section(key: str, value: Any, schema_path: Path = DEFAULT_SCHEMA) -> Any:
    """``value`` checked as the configuration's top-level section ``key`` (e.g. the plug-in
    declarations a command line gives); returns it."""
    schema = _schema(Path(schema_path))
    section = {**schema, "required": [], "properties": {key: schema["properties"][key]}}
    _raise_schema_errors({key: value}, section)
    return value


_STRICT = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda _, value: isinstance(value, int) and not isinstance(value, bool)
    ),
)


def integers_where_expected(
    config: dict[str, Any], schema_path: Path = DEFAULT_SCHEMA
) -> dict[str, Any]:
    """``config`` with each whole float (``steps: 1e6``, ``1.0e+6``) made an int where the
    schema expects an integer: JSON Schema counts 1e6 as an integer, but a job would then
    count steps, epochs or megabytes in floats."""
    _typed(config, schema_path)
    return config


def validate_typed(config: dict[str, Any], schema_path: Path = DEFAULT_SCHEMA) -> dict[str, Any]:
    """:func:`integers_where_expected`, then :func:`validate_schema`, in one validation
    per pass (the schema check is most of the start-up's configuration time): the strict
    pass's own errors are reported once no whole float is left to convert."""
    errors = _typed(config, schema_path)
    if errors:
        _raise(errors)
    return config


def _typed(config: dict[str, Any], schema_path: Path) -> list:
    """Convert the whole floats where integers are expected; the errors left under the
    strict (int-only) integer rule, top level first (none: valid)."""
    validator = _STRICT(_schema(Path(schema_path)))
    errors: list = []
    for _ in range(100):  # each pass converts every whole float the errors point to
        errors = list(validator.iter_errors(config))
        paths = [
            list(error.absolute_path)
            for error in _flattened(errors)
            if error.validator == "type"
            and isinstance(error.instance, float)
            and error.instance.is_integer()
            and "integer" in _as_list(error.validator_value)
        ]
        if not paths:
            return errors
        for path in paths:
            _set(config, path, int(_get(config, path)))
    return errors


def _flattened(errors: Any) -> Any:
    for error in errors:
        yield error
        yield from _flattened(error.context or ())


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def _get(config: Any, path: list) -> Any:
    for part in path:
        config = config[part]
    return config


def _set(config: Any, path: list, value: Any) -> None:
    _get(config, path[:-1])[path[-1]] = value


def _raise_schema_errors(config: Any, schema: Mapping[str, Any]) -> None:
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(config))
    if errors:
        _raise(errors)


def _raise(errors: list) -> None:
    """One ConfigError naming the first (by key path) five of the schema's errors."""
    errors = sorted(errors, key=lambda e: list(map(str, e.absolute_path)))
    lines = [f"  {key_path(error.absolute_path)}: {error.message}" for error in errors[:5]]
    raise ConfigError("invalid configuration:\n" + "\n".join(lines))


def deep_merge(base: Mapping[str, Any], *overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Merge each of ``overrides`` in turn into a copy of ``base``; nested mappings merge,
    the rest replaces. ``base`` is copied once, however many layers go over it (start-up
    merges three), and keys keep their order: ``base``'s, then the new ones."""
    merged = copy.deepcopy(dict(base))
    for override in overrides:
        _merge_into(merged, override)
    return merged


def _merge_into(target: dict[str, Any], override: Mapping[str, Any]) -> None:
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(target.get(key), Mapping):
            if not isinstance(target[key], dict):
                target[key] = dict(target[key])
            _merge_into(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


# Bounds that keep a mistyped number from reaching the runs: a count of runs per setting
# beyond any study (``seeds=1e30`` would build a list no memory holds), and seed values
# within what every generator takes after the engine's derivation (seed·1000 + stream
# must stay below 2^64 for torch.Generator.manual_seed).
MAX_SEED_COUNT = 100_000
MAX_SEED = 2**32 - 1


def normalise_seeds(seeds: Any, where: str = "seeds") -> list[int]:
    """``seeds`` may be a count (``10`` → 0..9) or an explicit list of distinct integers
    from 0 to ``MAX_SEED`` (``where`` is the key the message names)."""
    if isinstance(seeds, bool):
        raise ConfigError(f"{where}: expected a count or a list of integers, got {seeds!r}")
    if isinstance(seeds, int):
        if seeds < 1:
            raise ConfigError(f"{where}: need at least one seed, got {seeds}")
        if seeds > MAX_SEED_COUNT:
            raise ConfigError(
                f"{where}: {seeds} seeds is more runs per setting than any study needs (at "
                f"most {MAX_SEED_COUNT:,}); give a count such as 10, or a list of seeds"
            )
        return list(range(seeds))
    if (
        isinstance(seeds, list)
        and seeds
        and all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)
    ):
        if len(seeds) > MAX_SEED_COUNT:
            raise ConfigError(f"{where}: {len(seeds)} seeds, at most {MAX_SEED_COUNT:,}")
        if len(set(seeds)) != len(seeds):
            raise ConfigError(f"{where}: duplicate seeds in {seeds}")
        if min(seeds) < 0:
            raise ConfigError(f"{where}: seeds are integers >= 0, got {min(seeds)}")
        if max(seeds) > MAX_SEED:
            raise ConfigError(
                f"{where}: seeds are integers up to 2^32 − 1 = {MAX_SEED}, got {max(seeds)}"
            )
        return list(seeds)
    raise ConfigError(f"{where}: expected a count or a non-empty list of integers, got {seeds!r}")


def enabled_tasks(config: Mapping[str, Any], kind: str | None = None) -> list[str]:
    """Names of tasks switched on in the resolved config, optionally of one kind."""
    return [
        name
        for name, task in config["tasks"].items()
        if task.get("enabled", True) and (kind is None or task["kind"] == kind)
    ]

"""Hyper-parameters declared once, as typed fields of a frozen dataclass.

An optimizer family declares its hyper-parameters as a dataclass whose fields are made
with :func:`real`, :func:`integer`, :func:`flag` or :func:`choice`: the field's name, type,
default, allowed range and whether a tuning grid (or a stacked job's members) may vary it.
Everything else is derived from that declaration:

* validation of the values a task gives (:func:`resolve`), naming the key that is wrong;
* the resolved settings object a job uses (an instance of the dataclass, frozen);
* ``run.json`` records (:func:`as_record`) and legends (``optimizers.labels``);
* the packed form the shared scalar code reads (:func:`pack`): choices become their index
  and booleans stay booleans, as a namedtuple in Python and a numpy record in the compiled
  1-D kernel, so one function body serves both (``optimizers.scalar``).

Kept free of torch and numba: the Snakemake process validates configurations with it.
"""

from __future__ import annotations

import dataclasses
import math
from collections import namedtuple
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

HPARAM = "hparam"  # the dataclass-field metadata key that holds a field's Rule


class HParamError(ValueError):
    """A hyper-parameter value or name is wrong; the message names it."""


@dataclass(frozen=True)
class Rule:
    """What values one hyper-parameter accepts, and how it is shown."""

    doc: str
    kind: str  # "real", "integer", "flag", "choice" or "value" (any JSON value of one type)
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str, ...] = ()
    tunable: bool = False
    symbol: str = ""  # short label in legends and titles, e.g. "β1"
    fixed: bool = False  # set by the optimizer's name, never by the user
    show_zero: bool = True  # False: legends leave the field out while it is 0 (switched off)

    def check(self, name: str, value: Any) -> Any:
        """The value coerced to the field's type, or HParamError naming the problem."""
        if self.kind == "flag":
            if not isinstance(value, bool):
                raise HParamError(f"{name}: expected true or false, got {value!r}")
            return value
        if self.kind == "choice":
            if value not in self.choices:
                raise HParamError(
                    f"{name}: expected one of {', '.join(self.choices)}, got {value!r}"
                )
            return value
        if self.kind == "value":
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise HParamError(f"{name}: expected a number, got {value!r}")
        if self.kind == "integer" and not float(value).is_integer():
            raise HParamError(f"{name}: expected an integer, got {value!r}")
        number = int(value) if self.kind == "integer" else float(value)
        if not math.isfinite(number):
            raise HParamError(f"{name}: expected a finite number, got {value!r}")
        self._check_range(name, number)
        return number

    def _check_range(self, name: str, number: float) -> None:
        if self.low is not None:
            bad = number <= self.low if self.low_open else number < self.low
            if bad:
                sign = ">" if self.low_open else ">="
                raise HParamError(f"{name}: must be {sign} {self.low:g}, got {number:g}")
        if self.high is not None:
            bad = number >= self.high if self.high_open else number > self.high
            if bad:
                sign = "<" if self.high_open else "<="
                raise HParamError(f"{name}: must be {sign} {self.high:g}, got {number:g}")

    def range_text(self) -> str:
        """The allowed values in words, for the README table and error messages."""
        if self.kind == "flag":
            return "true/false"
        if self.kind == "choice":
            return " | ".join(self.choices)
        left = "(" if self.low_open else "["
        right = ")" if self.high_open else "]"
        low = "−∞" if self.low is None else f"{self.low:g}"
        high = "∞" if self.high is None else f"{self.high:g}"
        return f"{left}{low}, {high}{right}"


def _field(default: Any, rule: Rule) -> Any:
    return field(default=default, metadata={HPARAM: rule})


def real(
    default: float,
    doc: str,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
    tunable: bool = False,
    symbol: str = "",
    show_zero: bool = True,
) -> Any:
    """A real-valued hyper-parameter in [low, high] (either end open if asked); with
    ``show_zero=False`` a legend shows it only when it is not 0 (a switched-off option)."""
    rule = Rule(
        doc,
        "real",
        low,
        high,
        low_open,
        high_open,
        tunable=tunable,
        symbol=symbol,
        show_zero=show_zero,
    )
    return _field(float(default), rule)


def integer(default: int, doc: str, low: int | None = None, high: int | None = None) -> Any:
    return _field(int(default), Rule(doc, "integer", low, high))


def flag(default: bool, doc: str, *, symbol: str = "") -> Any:
    return _field(bool(default), Rule(doc, "flag", symbol=symbol))


def value(default: Any, doc: str) -> Any:
    """A plug-in's keyword argument of a type the declaration does not constrain."""
    return field(default_factory=lambda: default, metadata={HPARAM: Rule(doc, "value")})


def choice(default: str, choices: tuple[str, ...], doc: str, *, fixed: bool = False) -> Any:
    """One of ``choices``; ``fixed`` ones are set by the optimizer's name (e.g. AMSGrad's
    max of the second moment) and recorded, but a configuration may not set them."""
    if default not in choices:
        raise ValueError(f"default {default!r} is not among {choices}")
    return _field(default, Rule(doc, "choice", choices=choices, fixed=fixed))


def rules(settings_type: type) -> dict[str, Rule]:
    """The declared hyper-parameters of a settings dataclass, in declaration order."""
    return {f.name: f.metadata[HPARAM] for f in dataclasses.fields(settings_type)}


def field_defaults(settings_type: type) -> dict[str, Any]:
    return {
        f.name: f.default_factory() if f.default is dataclasses.MISSING else f.default
        for f in dataclasses.fields(settings_type)
    }


def user_rules(settings_type: type) -> dict[str, Rule]:
    """The hyper-parameters a configuration may set (all but the fixed ones)."""
    return {name: rule for name, rule in rules(settings_type).items() if not rule.fixed}


def resolve(
    settings_type: type,
    layers: list[tuple[str, Mapping[str, Any]]],
    *,
    fixed: Mapping[str, Any] | None = None,
    owner: str = "",
) -> Any:
    """The settings object: the dataclass defaults, then each ``(where, values)`` layer in
    order (later wins), then ``fixed``. A key the optimizer does not declare, a fixed key or
    a value out of range raises HParamError naming ``where.key``."""
    declared = rules(settings_type)
    values = field_defaults(settings_type)
    for where, layer in layers:
        for key, value in layer.items():
            rule = declared.get(key)
            prefix = f"{where}.{key}" if where else key
            if rule is None:
                known = ", ".join(user_rules(settings_type))
                raise HParamError(
                    f"{prefix}: {owner or 'this optimizer'} has no hyper-parameter "
                    f"{key!r} (it has: {known})"
                )
            if rule.fixed:
                raise HParamError(
                    f"{prefix}: fixed by the optimizer's name ({owner}: {key} = "
                    f"{values[key]!r}); choose the optimizer that has the value you want"
                )
            values[key] = rule.check(prefix, value)
    for key, value in (fixed or {}).items():
        values[key] = declared[key].check(key, value)
    return settings_type(**values)


def as_record(settings: Any) -> dict[str, Any]:
    """The settings as plain JSON-able values (run.json, legends, fingerprints)."""
    return dataclasses.asdict(settings)


_PACKED_TYPES: dict[type, type] = {}


def packed_type(settings_type: type) -> type:
    """The namedtuple the scalar code reads (one per settings dataclass)."""
    if settings_type not in _PACKED_TYPES:
        names = [f.name for f in dataclasses.fields(settings_type)]
        _PACKED_TYPES[settings_type] = namedtuple(f"Packed{settings_type.__name__}", names)
    return _PACKED_TYPES[settings_type]


def packed_value(rule: Rule, value: Any) -> Any:
    """A choice as its index (the scalar code compares integers), the rest as they are."""
    return rule.choices.index(value) if rule.kind == "choice" else value


def pack(settings: Any, **replace: Any) -> Any:
    """The settings in the form the scalar code reads. ``replace`` substitutes values, e.g.
    tensors holding one value per member of a stacked job for tunable fields."""
    declared = rules(type(settings))
    values = {name: packed_value(rule, getattr(settings, name)) for name, rule in declared.items()}
    for name, value in replace.items():
        if not declared[name].tunable:
            raise HParamError(f"{name} is not tunable, so it cannot vary across members")
        values[name] = value
    return packed_type(type(settings))(**values)


def numpy_kind(rule: Rule) -> str:
    """The numpy dtype a field takes in the compiled kernel's record."""
    return {"real": "f8", "integer": "i8", "flag": "?", "choice": "i8"}[rule.kind]

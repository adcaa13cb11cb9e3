"""``amsgrad-repro optimizers``: the catalogue as a table (the README's is this output)."""

from __future__ import annotations

import argparse

from amsgrad_repro.cli import json_arg
from amsgrad_repro.optimizers import BUILTINS, OptimizerSpec, catalogue, hparams, scalar_form
from amsgrad_repro.optimizers.spec import SCHEDULE_FIELDS
from amsgrad_repro.settings_base import check_section


def register(subparsers: argparse._SubParsersAction) -> None:

    parser = subparsers.add_parser(
        "optimizers", help="list every optimizer with its source and default hyper-parameters"
    )
    parser.add_argument("--plugins", type=json_arg, default={}, help="plug-in declarations")
    parser.set_defaults(func=_list)


def default_text(spec: OptimizerSpec) -> str:
    """The defaults a run gets when a task sets nothing, fixed values in brackets."""
    values = spec.default_values()
    declared = hparams.field_defaults(spec.settings)
    parts = []
    for name, rule in hparams.rules(spec.settings).items():
        value = values[name]
        if name in SCHEDULE_FIELDS and value == declared[name]:
            continue
        text = f"{value:g}" if isinstance(value, float) else str(value).lower()
        parts.append(f"[{name}: {text}]" if rule.fixed else f"{name} {text}")
    return ", ".join(parts)


def compiled_text(spec: OptimizerSpec) -> str:
    form = scalar_form(spec, spec.resolve())
    if form is None:
        return "generic"
    return "compiled" if spec.native is not None else f"compiled (twin: {spec.impl.twin.spec})"


def markdown(specs: dict[str, OptimizerSpec]) -> str:
    lines = [
        "| name | what it is | source | defaults | 1-D problems |",
        "|---|---|---|---|---|",
    ]
    for name, spec in specs.items():
        lines.append(
            f"| `{name}` | {spec.summary} | {spec.source} | {default_text(spec)} | "
            f"{compiled_text(spec)} |"
        )
    return "\n".join(lines)


def _list(args: argparse.Namespace) -> int:
    specs = catalogue(check_section("plugins", args.plugins)) if args.plugins else BUILTINS
    print(markdown(specs))
    return 0

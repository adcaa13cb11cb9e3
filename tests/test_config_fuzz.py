"""No configuration ends in a traceback: a property-based search (hypothesis) over
config.yaml's content and ``--config`` values.

Each example mutates the shipped configuration (a value replaced by one of the wrong kind,
a key deleted or added, a list emptied, numbers huge, negative, NaN or infinite, unicode,
nested nonsense, plug-in declarations that cannot work) and adds ``--config key=value``
entries, read by Snakemake's own parser (``snakemake.cli.parse_config``) and merged into the
file's content by Snakemake's own ``update_config``, exactly what the Snakefile's ``config``
and ``workflow.config_settings.overwrite_config`` hold when ``common.smk`` starts. It then
does what ``common.smk`` does at start-up: :func:`amsgrad_repro.config.resolve`, the claims
check, and, for an accepted configuration, everything the rules derive from the settings
(JSON for the jobs, the plan of stacked jobs, tuning and grid targets). Each example must
either pass all of that or be refused with ONE :class:`ConfigError` whose message names the
key (``error_source`` finds where it came from) and says what is wrong; any other exception
is a traceback a user would see, and fails the test.

Reproducible: a fixed seed (``derandomize``), no example database, no deadline (the machine
is shared). ``FUZZ_EXAMPLES`` sets how many examples run (default below); ``FUZZ_RANDOM=1``
draws a new seed each run, to search beyond the fixed one (hypothesis prints how to
reproduce what it finds).
"""

from __future__ import annotations

import copy
import datetime
import json
import os
import re
import string
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from snakemake.cli import parse_config
from snakemake.common.configfile import load_configfile
from snakemake.utils import update_config

from amsgrad_repro.analysis.claims_spec import ClaimsError, check_claims, load_claims_file
from amsgrad_repro.config import ConfigError, enabled_tasks, error_source, resolve
from amsgrad_repro.optimizers import catalogue
from amsgrad_repro.plan import plan
from amsgrad_repro.run_settings import job_settings
from amsgrad_repro.synthetic.grid_spec import enabled_grids

REPO_ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "2000"))
# Read once, as Snakemake reads it (its loader, not PyYAML's defaults).
BASE = load_configfile(str(REPO_ROOT / "config.yaml"))
CLAIMS = load_claims_file(REPO_ROOT / "workflow" / "claims.yaml")
PRESETS = sorted(BASE["presets"])
# The first part of every key path a message may name: the schema's top-level keys.
TOP_LEVEL_NAMES = set(
    yaml.safe_load((REPO_ROOT / "workflow/schemas/config.schema.yaml").read_text())["properties"]
) | {"presets"}
# Characters of the fuzz's text: ASCII, accents, symbols, CJK, an emoji, controls, a
# surrogate-free astral character (a fixed alphabet: drawing from all of unicode is slow).
ALPHABET = string.printable + "éÀñũŀÈ≈ç√∫Ω€中文💥\x00\x1e\x7f\u200b\U0001f600"
TEXT = st.text(ALPHABET, max_size=12)
# What Snakemake accepts as a --config key (snakemake.cli.parse_config).
CONFIG_KEY = re.compile(r"[a-zA-Z_][\w-]*\w$")


def _paths(tree: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path of ``tree``: mapping entries and list items, at any depth."""
    found = [prefix] if prefix else []
    if isinstance(tree, Mapping):
        for key, value in tree.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(tree, list):
        for index, value in enumerate(tree):
            found += _paths(value, (*prefix, index))
    return found


PATHS = _paths(BASE)


def _get_at(tree: Any, path: tuple) -> Any:
    for part in path:
        tree = tree[part]
    return tree


def _exists(tree: Any, path: tuple) -> bool:
    for part in path:
        if (
            isinstance(tree, Mapping)
            and part in tree
            or isinstance(tree, list)
            and isinstance(part, int)
            and 0 <= part < len(tree)
        ):
            tree = tree[part]
        else:
            return False
    return True


MAPPINGS = [()] + [path for path in PATHS if isinstance(_get_at(BASE, path), Mapping)]
LISTS = [path for path in PATHS if isinstance(_get_at(BASE, path), list)]
NESTED_PATHS = [path for path in PATHS if len(path) >= 2]
LEAVES = [path for path in PATHS if not isinstance(_get_at(BASE, path), Mapping | list)]

# --- values a person (or a YAML file) can give ------------------------------------------

NAMES = sorted(
    {*BASE["tasks"], *BASE["grids"], *BASE["datasets"], *BASE["plugins"], *catalogue(None)}
    | {"lr", "beta2", "epochs", "steps", "enabled", "kind", "optimizers", "hparams", "class"}
)
WORDS = st.sampled_from(
    [
        "",
        " ",
        "1e6",
        "1E-3",
        "+1e6",
        "1.0e+6",
        "-1e400",
        "1e400",
        ".nan",
        "NaN",
        ".inf",
        "-.inf",
        "true",
        "True",
        "no",
        "null",
        "~",
        "0x1F",
        "0o17",
        "1_000",
        "12:30",
        "2020-01-01",
        "[]",
        "{}",
        "[1, 2",
        "{a: 1",
        "all",
        "none",
        "seeds",
        "inv_sqrt",
        "mnist",
        "Ω≈ç√∫",
        "💥",
        "a" * 300,
        "module:Class",
        "torch.optim:SGD",
        "../../etc",
        "$(echo hi)",
        "'quoted'",
        '"double"',
        "a,b",
        "x=y",
        "\t",
        "\n",
        "é",
        *NAMES,
    ]
)
NUMBERS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, -1, 2, 10**6, 10**30, -(10**30), 2**63, -(2**63) - 1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1e-300, 5e-324, 1e300, 1e6, 0.5, 0.999, 1.0, 1.5]),
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    NUMBERS,
    WORDS,
    TEXT,
    # YAML 1.1 reads these too (a date, !!binary).
    st.sampled_from([datetime.date(2020, 1, 1), datetime.datetime(2020, 1, 1, 12), b"\x00\xff"]),
)
KEYS = st.one_of(WORDS, st.text(ALPHABET, max_size=8), st.integers(-3, 3), st.none(), st.booleans())
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(KEYS, inner, max_size=4),
    ),
    max_leaves=8,
)
HPARAMS = st.dictionaries(
    st.one_of(st.sampled_from(["lr", "betas", "weight_decay", "momentum", "nope", "eps"]), KEYS),
    st.one_of(NUMBERS, st.lists(NUMBERS, max_size=3), SCALARS),
    max_size=4,
)
CLASSES = st.sampled_from(
    [
        "pytorch_optimizer:Lion",
        "torch.optim:SGD",
        "torch.optim:Adam",
        "torch.optim:NoSuchClass",
        "no_such_module_xyz:Opt",
        "collections:OrderedDict",
        "math:pi",
        "torch.optim:Optimizer",
        "torch",
        "",
        ":",
        "a:b:c",
    ]
)
PLUGINS = st.fixed_dictionaries(
    {"class": st.one_of(CLASSES, SCALARS)},
    optional={
        "hparams": st.one_of(HPARAMS, VALUES),
        "summary": st.one_of(TEXT, SCALARS),
        "elementwise": st.one_of(st.booleans(), SCALARS),
        "extra": VALUES,
    },
)
PLUGIN_NAMES = st.one_of(st.sampled_from(["lion", "lion2", "adam", "my-opt", "x"]), KEYS)


@st.composite
def mutation(draw: st.DrawFn) -> tuple[str, tuple, Any]:
    """One change to the file's content: (operation, path, value)."""
    kind = draw(st.sampled_from(["replace", "tweak", "tweak", "delete", "add", "empty", "plugin"]))
    if kind == "tweak":  # a leaf given another value of its own kind: gets past the schema
        path = draw(st.sampled_from(LEAVES))
        value = _get_at(BASE, path)
        if isinstance(value, bool):
            return "replace", path, draw(st.one_of(st.booleans(), WORDS))
        if isinstance(value, int | float):
            return "replace", path, draw(NUMBERS)
        return "replace", path, draw(st.one_of(WORDS, TEXT))
    if kind == "replace":
        return kind, draw(st.sampled_from(PATHS)), draw(VALUES)
    if kind == "delete":
        return kind, draw(st.sampled_from(PATHS)), None
    if kind == "add":
        return kind, (*draw(st.sampled_from(MAPPINGS)), draw(KEYS)), draw(VALUES)
    if kind == "empty":
        return "replace", draw(st.sampled_from(LISTS)), draw(st.sampled_from([[], {}, None]))
    # A plug-in declaration, used by a task or not.
    name = draw(PLUGIN_NAMES)
    return kind, ("plugins", name), (draw(PLUGINS), draw(st.sampled_from([*BASE["tasks"], None])))


def _apply(config: dict, change: tuple[str, tuple, Any]) -> None:
    kind, path, value = change
    if kind == "plugin":
        declaration, task = value
        plugins = config.get("plugins")
        if not isinstance(plugins, dict):
            config["plugins"] = plugins = {}
        plugins[path[1]] = declaration
        target = (
            (config.get("tasks") or {}).get(task) if isinstance(config.get("tasks"), dict) else None
        )
        if isinstance(target, dict) and isinstance(target.get("optimizers"), list):
            target["optimizers"].append(path[1])
        return
    parent_path, last = path[:-1], path[-1]
    if not _exists(config, parent_path):
        return
    parent = _get_at(config, parent_path)
    if isinstance(parent, dict):
        if kind == "delete":
            parent.pop(last, None)
        else:
            parent[last] = value
    elif isinstance(parent, list) and isinstance(last, int) and 0 <= last < len(parent):
        if kind == "delete":
            del parent[last]
        else:
            parent[last] = value


def _flow(value: Any) -> str:
    """``value`` as a person would type it after ``key=`` (YAML flow style)."""
    text = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=10**6)
    return text.removesuffix("\n...\n").strip()


@st.composite
def override(draw: st.DrawFn) -> str:
    """One ``--config key=value`` entry as typed on the command line."""
    kind = draw(st.sampled_from(["top", "nested", "nested", "text", "scale"]))
    if kind == "scale":
        return f"scale={draw(st.one_of(st.sampled_from(PRESETS), WORDS))}"
    if kind == "nested":  # e.g. tasks={logreg: {epochs: 1e6}}
        path = draw(st.sampled_from(NESTED_PATHS))
        nested: Any = draw(VALUES)
        for part in reversed(path[1:]):
            nested = {part if not isinstance(part, int) else 0: nested}
        return f"{path[0]}={_flow(nested)}"
    key = draw(
        st.one_of(
            st.sampled_from(sorted(k for k in BASE if isinstance(k, str))),
            st.text(string.ascii_letters + string.digits + "_-", min_size=2, max_size=8).filter(
                CONFIG_KEY.match
            ),
        )
    )
    if kind == "text":
        return f"{key}={draw(st.one_of(WORDS, st.text(string.printable, max_size=12)))}"
    return f"{key}={_flow(draw(VALUES))}"


# --- what common.smk does with them ---------------------------------------------------


def start_up(config: dict, overrides: dict, cache: Path) -> dict:
    """common.smk at start-up: resolve and check; then what the rules derive from the
    settings (any exception here would be a traceback at parse time)."""
    settings_ = resolve(config, overrides=overrides, plugin_cache=cache)
    check_claims(CLAIMS, settings_)
    json.dumps(settings_, sort_keys=True)  # every job gets its settings as JSON
    specs = catalogue(settings_.get("plugins"))
    plan(settings_)  # the jobs, what each writes, the targets
    for task in enabled_tasks(settings_):  # each job's own settings (its params)
        for optimizer in settings_["tasks"][task]["optimizers"]:
            job_settings(task, settings_["tasks"][task], specs[optimizer])
    for grid in enabled_grids(settings_):
        json.dumps(settings_["grids"][grid], sort_keys=True)
    for task in enabled_tasks(settings_):
        assert settings_["tasks"][task]["optimizers"], task
    return settings_


def check_refusal(
    error: ConfigError, config: Mapping[str, Any], overrides: Mapping[str, Any]
) -> None:
    """One error, naming a key (its first part is a key of the configuration or the
    schema's), saying what is wrong (and where the value came from)."""
    message = str(error)
    if isinstance(error, ClaimsError):  # a claim names what the mutated file lacks
        assert re.match(r"workflow/claims\.yaml: claim '\w+', [\w.]+: \S", message), message
        return
    first = message.removeprefix("invalid configuration:\n").lstrip()
    names = TOP_LEVEL_NAMES | {"<top level>", *map(str, config), *map(str, overrides)}
    assert any(
        first.startswith(name) and first[len(name) : len(name) + 1] in ".[:" for name in names
    ), message
    assert re.match(r"[^\n]*?: \S", first, re.S) or ": " in first, message
    assert error_source(message, overrides) in {"config.yaml", "--config"}
    assert "Traceback" not in message


@pytest.fixture(scope="module")
def plugin_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("plugin-cache")


def test_shipped_configuration_starts_for_every_preset(plugin_cache):
    """The fuzz's own entry point accepts what is shipped (so refusals mean something)."""
    for scale in PRESETS:
        overrides = parse_config([f"scale={scale}"])
        config = copy.deepcopy(BASE)
        update_config(config, overrides)
        assert start_up(config, overrides, plugin_cache)["scale"] == scale


COUNT = {"examples": 0, "accepted": 0, "refused": 0}


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not os.environ.get("FUZZ_RANDOM"),
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    changes=st.lists(mutation(), max_size=3),
    entries=st.lists(override(), max_size=3),
    scale=st.sampled_from(PRESETS),
)
def test_any_configuration_starts_or_gives_one_error(changes, entries, scale, plugin_cache):
    config = copy.deepcopy(BASE)
    config["scale"] = scale
    for change in changes:
        _apply(config, change)
    try:
        overrides = parse_config(entries)
    except (ValueError, AssertionError):
        # Snakemake's own refusal of a malformed key=value, before the workflow is read
        # (a value of blank spaces even fails an assertion in its parser): not ours.
        return
    update_config(config, overrides)
    COUNT["examples"] += 1
    try:
        start_up(config, overrides, plugin_cache)
    except ConfigError as error:
        COUNT["refused"] += 1
        check_refusal(error, config, overrides)
        return
    COUNT["accepted"] += 1


def test_fuzz_counts():
    """How many examples reached the start-up (printed with -s; both outcomes occur)."""
    if COUNT["examples"]:
        print(f"\nconfig fuzz: {COUNT}")
        assert COUNT["accepted"] and COUNT["refused"]

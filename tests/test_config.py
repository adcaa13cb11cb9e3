"""Configuration errors fail at start-up with a message that names the key."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import yaml

from amsgrad_repro.config import ConfigError, error_source, resolve


@pytest.fixture
def raw(repo_root):
    with open(repo_root / "config.yaml") as handle:
        return yaml.safe_load(handle)


def test_shipped_config_resolves_for_every_preset(raw):
    for scale in raw["presets"]:
        config = copy.deepcopy(raw)
        config["scale"] = scale
        resolved = resolve(config)
        assert resolved["seeds"] and "presets" not in resolved


def test_preset_overrides_base_and_command_line_overrides_preset(raw):
    raw["scale"] = "smoke"
    assert resolve(raw)["tasks"]["synthetic_online"]["steps"] == 20000
    assert resolve(raw, overrides={"seeds": 3})["seeds"] == [0, 1, 2]


def test_nested_command_line_values_are_read_as_yaml_scalars(raw):
    # What Snakemake hands over for --config 'tasks={logreg: {epochs: 40, ...}}'.
    nested = {"logreg": {"epochs": "40", "enabled": "false", "hparams": {"lr": "0.003"}}}
    nested["logreg"]["dataset"] = "fashion_mnist"
    raw["scale"] = "smoke"
    logreg = resolve(raw, overrides={"tasks": nested})["tasks"]["logreg"]
    assert (logreg["epochs"], logreg["enabled"], logreg["hparams"]["lr"]) == (40, False, 0.003)
    assert logreg["dataset"] == "fashion_mnist"
    assert (logreg["hparams"]["beta1"], logreg["hparams"]["beta2"]) == (0.9, 0.999)


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda c: c.update(scale="huge"), "scale: unknown preset 'huge'"),
        (lambda c: c["presets"][c["scale"]].update(seeds="abc"), "seeds: expected a count"),
        (lambda c: c["presets"][c["scale"]].update(seeds=[1, 1]), "seeds: duplicate"),
        (lambda c: c.update(colour="red"), "'colour' was unexpected"),
        (lambda c: c.update(device="tpu"), "device: 'tpu' does not match"),
        (
            lambda c: c["tasks"]["synthetic_online"].update(steps="many"),
            "tasks.synthetic_online.steps: 'many' is not of type 'integer'",
        ),
        (
            lambda c: c["tasks"]["synthetic_online"]["hparams"].update(lr=-1),
            "tasks.synthetic_online.hparams.lr",
        ),
        (
            lambda c: c["tasks"]["synthetic_online"]["hparams"].update(learning_rate=0.1),
            "tasks.synthetic_online.hparams.learning_rate: none of this task's optimizers",
        ),
        (
            lambda c: c["tasks"]["synthetic_online"].update(optimizers=["adam", "adamw2"]),
            "tasks.synthetic_online.optimizers[1]: unknown optimizer 'adamw2'",
        ),
        (
            lambda c: c["tasks"]["cifarnet"].update(stack="seeds"),
            "tasks.cifarnet.stack: model 'cifarnet' cannot be stacked (stackable: logreg, mlp)",
        ),
        (
            lambda c: c["tasks"]["synthetic_online"].update(kind="quantum"),
            "tasks.synthetic_online.kind: unknown task kind 'quantum'",
        ),
    ],
)
def test_bad_values_name_the_key(raw, mutate, expected):
    mutate(raw)
    with pytest.raises(ConfigError) as error:
        resolve(raw)
    assert expected in str(error.value)


def test_top_level_command_line_lists_and_booleans_are_typed(raw):
    # What Snakemake hands over for --config 'seeds=[0, 1]' tune=true.
    resolved = resolve(raw, overrides={"seeds": ["0", "1"], "tune": "true"})
    assert resolved["seeds"] == [0, 1] and resolved["tune"] is True
    assert resolve(raw, overrides={"scale": "smoke"})["scale"] == "smoke"


def test_unknown_task_and_dataset_names_say_what_is_known(raw):
    known = r"\(known: charlm_shakespeare, cifarnet, "
    with pytest.raises(ConfigError, match=r"tasks.mpl: unknown task 'mpl' " + known):
        resolve(raw, overrides={"tasks": {"mpl": {"epochs": "2"}}})
    typo = {"tasks": {"logreg": {"dataset": "fashion_mnis"}}}
    with pytest.raises(ConfigError) as error:
        resolve(raw, overrides=typo)
    assert "tasks.logreg.dataset: unknown dataset 'fashion_mnis' (configured under " in str(
        error.value
    )


SCHEMA_ERROR = "invalid configuration:\n  tasks.mlp.epochs: 'x' is not of type 'integer'"
TOP_LEVEL_ERROR = "invalid configuration:\n  <top level>: ('colour' was unexpected)"


@pytest.mark.parametrize(
    "message, overrides, source",
    [
        ("seeds: need at least one seed, got 0", {"seeds": 0}, "--config"),
        ("seeds: need at least one seed, got 0", {"tune": True}, "config.yaml"),
        (SCHEMA_ERROR, {"tasks": {"mlp": {"epochs": "x"}}}, "--config"),
        (SCHEMA_ERROR, {"tasks": {"mlp": {}}}, "config.yaml"),
        (SCHEMA_ERROR, {"tasks": {"a": {}}}, "config.yaml"),
        ("tasks.s.optimizers[1]: unknown", {"tasks": {"s": {"optimizers": []}}}, "--config"),
        (TOP_LEVEL_ERROR, {"colour": "red"}, "--config"),
        (TOP_LEVEL_ERROR, {}, "config.yaml"),
    ],
)  # fmt: skip
def test_errors_name_where_the_value_came_from(message, overrides, source):
    assert error_source(message, overrides) == source


def snakemake_dry_run(tmp_path, *config: str) -> subprocess.CompletedProcess[str]:
    """A dry run in a scratch copy of the workflow (even a dry run writes .snakemake/, and
    parallel workers must not share one in the checkout)."""
    from tests.pipeline import copy_workflow

    workdir = tmp_path / "wf"
    if not workdir.exists():
        copy_workflow(workdir)
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--config", *config],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_snakemake_reports_bad_config_at_start_up(tmp_path):
    result = snakemake_dry_run(tmp_path, "tasks={synthetic_online: {optimizers: [adam, adamm]}}")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "--config: tasks.synthetic_online.optimizers[1]: unknown optimizer 'adamm'" in output
    assert "config.yaml:" not in output  # the value came from the command line


@pytest.mark.slow
def test_command_line_typos_fail_at_start_up_without_a_traceback(tmp_path):
    result = snakemake_dry_run(tmp_path, "scale=smoke", "tasks={logreg: {dataset: fashion_mnis}}")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "--config: tasks.logreg.dataset: unknown dataset 'fashion_mnis'" in output, output
    assert "Traceback" not in output and "Wildcards" not in output
    result = snakemake_dry_run(tmp_path, "scale=smoke", "tasks={mpl: {epochs: 2}}")
    assert "--config: tasks.mpl: unknown task 'mpl' (known: " in result.stdout + result.stderr
    assert "'kind' is a required property" not in result.stdout + result.stderr
    result = snakemake_dry_run(tmp_path, "scale=smoke", "seeds=[0, 1]", "tune=true")
    assert result.returncode == 0, result.stdout + result.stderr


def test_paper_and_full_fashion_presets_run_the_papers_protocol(raw):
    """Both tune α and β2 ∈ {0.99, 0.999} on the validation split, then train 10 seeds for
    100 epochs; full_fashion does it on Fashion-MNIST for the paper's optimizers alone."""
    from amsgrad_repro.tuning.grid import tuned_tasks

    for scale in ("paper", "full_fashion"):
        raw["scale"] = scale
        config = resolve(copy.deepcopy(raw))
        grids = tuned_tasks(config)
        assert config["tune"] and config["seeds"] == list(range(10))
        assert {"logreg", "mlp"} <= set(grids)
        for task in ("logreg", "mlp"):
            assert grids[task]["beta2"] == [0.99, 0.999]
            assert config["tasks"][task]["epochs"] == 100
            assert config["tasks"][task]["holdout_val"] is True
    assert config["tasks"]["logreg"]["dataset"] == "fashion_mnist"
    assert grids["logreg"]["epochs"] == 10
    paper_forms = ["adam", "amsgrad", "adamnc", "torch-adam", "torch-amsgrad"]
    assert config["tasks"]["mlp"]["optimizers"] == paper_forms == grids["mlp"]["optimizers"]
    enabled = [t for t, s in config["tasks"].items() if s.get("enabled", True)]
    assert enabled == ["logreg", "mlp"]


def test_a_plugins_unknown_keyword_is_refused_though_the_class_takes_kwargs(raw):
    """pytorch-optimizer's Lion takes ``**kwargs`` and even copies them into its defaults:
    a typo must still be named, the way torch.optim.SGD's constructor refuses it."""
    raw["scale"] = "smoke"
    for path in ("pytorch_optimizer:Lion", "torch.optim:SGD"):
        plugins = {"lion2": {"class": path, "hparams": {"lr": "0.1", "nope": "3"}}}
        overrides = {"plugins": plugins, "tasks": {"logreg": {"optimizers": ["adam", "lion2"]}}}
        with pytest.raises(ConfigError, match=r"plugins\.lion2(\.hparams\.nope|: cannot build)"):
            resolve(raw, overrides=overrides)
    # A keyword the class names but does not record in its defaults (Lion's maximize) is fine.
    plugins = {"lion2": {"class": "pytorch_optimizer:Lion", "hparams": {"lr": 0.1}}}
    plugins["lion2"]["hparams"]["maximize"] = False
    overrides = {"plugins": plugins, "tasks": {"logreg": {"optimizers": ["adam", "lion2"]}}}
    assert resolve(raw, overrides=overrides)["plugins"]["lion2"]["hparams"]["maximize"] is False


@pytest.mark.parametrize(
    "typed, number",
    [("1e6", 1e6), ("1E-3", 1e-3), ("+1e6", 1e6), ("-2.5e-2", -0.025), (".5e1", 5.0),
     ("1.0e6", 1e6), (".5", 0.5), ("1.0e+6", 1e6)],
)  # fmt: skip
def test_numbers_are_read_as_a_person_types_them(raw, typed, number):
    """YAML 1.1 (PyYAML, Snakemake) reads 1e6 as a string; config.yaml and --config read it
    as the number, like YAML 1.2."""
    from_file = yaml.safe_load(f"x1: {typed}\nsteps: {typed}")
    raw["tasks"]["logreg"]["hparams"]["lr"] = yaml.safe_load(typed.lstrip("+-"))
    raw["tasks"]["synthetic_online"]["x1"] = from_file["x1"]
    if float(number).is_integer() and number > 10:
        raw["tasks"]["synthetic_online"]["steps"] = from_file["steps"]
    cut = {"x1": "0.0"} if abs(number) > 1 else {}  # beyond x1's range [-1, 1]
    command_line = {"mlp": {"hparams": {"lr": typed.lstrip("+-")}}, "synthetic_online": cut}
    resolved = resolve(raw, overrides={"tasks": command_line})
    assert resolved["tasks"]["logreg"]["hparams"]["lr"] == abs(number)
    assert resolved["tasks"]["mlp"]["hparams"]["lr"] == abs(number)
    steps = resolved["tasks"]["synthetic_online"]["steps"]
    whole = float(number).is_integer() and number > 10
    assert type(steps) is int and steps == (number if whole else 10**7)
    if not cut:
        assert resolved["tasks"]["synthetic_online"]["x1"] == number


def test_a_md5_of_digits_is_not_read_as_a_number(raw):
    md5 = "1" * 20 + "e" + "1" * 11
    raw["datasets"]["mnist"]["files"][0]["md5"] = md5
    assert resolve(raw)["datasets"]["mnist"]["files"][0]["md5"] == md5


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf"])
def test_nan_and_infinity_are_refused_naming_the_key(raw, value):
    raw["tasks"]["synthetic_online"]["x1"] = yaml.safe_load(value)
    with pytest.raises(ConfigError, match="tasks.synthetic_online.x1: expected a finite number"):
        resolve(raw)


@pytest.mark.parametrize(
    ("text", "kind"),
    [("2020-01-01", "date"), ("2020-01-01 10:00:00", "datetime"), ("!!binary AA==", "bytes")],
)
def test_a_value_yaml_reads_as_no_setting_type_is_refused_naming_the_key(raw, text, kind):
    """Found by the fuzz test: an unquoted date reached the jobs' JSON settings (TypeError)."""
    raw["tasks"]["cifarnet"]["model"]["padding"] = yaml.safe_load(f"v: {text}")["v"]
    with pytest.raises(
        ConfigError, match=f"tasks.cifarnet.model.padding: .* is a {kind}, .*quote it"
    ):
        resolve(raw)


def test_optimizers_command_refuses_a_malformed_plugin_declaration(capsys):
    from amsgrad_repro.cli import main

    for text, key in (('{"x": 1}', "plugins.x"), ("[1]", "plugins"), ('{"adam": {}}', "adam")):
        assert main(["optimizers", "--plugins", text]) == 2
        err = capsys.readouterr().err
        assert err.startswith("amsgrad-repro: configuration error:") and key in err, err
        assert "Traceback" not in err


def test_version_comes_from_the_package_metadata(capsys):
    from importlib import metadata

    from amsgrad_repro.cli import main

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"amsgrad-repro {metadata.version('amsgrad-repro')}"


def test_a_new_task_joins_only_the_presets_that_name_it(raw):
    """Presets list what they run: a task added to config.yaml runs under ``run: all``
    (paper) and nowhere else until a preset names it."""
    raw["tasks"]["logreg2"] = copy.deepcopy(raw["tasks"]["logreg"])
    raw["grids"]["beta_map2"] = copy.deepcopy(raw["grids"]["beta_map"])
    for scale, preset in raw["presets"].items():
        resolved = resolve({**copy.deepcopy(raw), "scale": scale})
        runs_all = preset["run"] == "all"
        assert resolved["tasks"]["logreg2"].get("enabled", True) is runs_all, scale
        assert resolved["grids"]["beta_map2"].get("enabled", True) is runs_all, scale
        listed = set(preset["run"]) if not runs_all else None
        for section in ("tasks", "grids"):
            for name, entry in resolved[section].items():
                if listed is not None and name not in listed:
                    assert entry["enabled"] is False, (scale, name)
    raw["presets"]["smoke"]["run"].append("logreg2")
    assert resolve({**raw, "scale": "smoke"})["tasks"]["logreg2"].get("enabled", True)


@pytest.mark.parametrize(
    "run, expected",
    [
        (None, "presets.smoke.run: name the tasks and grids this preset runs"),
        ("everything", "presets.smoke.run: name the tasks and grids"),
        (["logreg", "lgoreg"], r"presets.smoke.run\[1\]: unknown task or grid 'lgoreg'"),
    ],
)
def test_a_preset_must_name_what_it_runs(raw, run, expected):
    raw["scale"] = "smoke"
    raw["presets"]["smoke"]["run"] = run
    with pytest.raises(ConfigError, match=expected):
        resolve(raw)


def test_the_command_line_and_a_presets_own_entry_still_switch_a_task_on(raw):
    raw["scale"] = "quick"
    assert resolve(raw)["tasks"]["cifarnet"]["enabled"] is False
    on = {"tasks": {"cifarnet": {"enabled": "true"}}}
    assert resolve(raw, overrides=on)["tasks"]["cifarnet"]["enabled"] is True
    raw["presets"]["quick"]["tasks"]["cifarnet"]["enabled"] = True
    assert resolve(raw)["tasks"]["cifarnet"]["enabled"] is True


def test_every_tasks_model_arch_is_in_the_model_table(raw):
    from amsgrad_repro.train.models import MODELS

    raw["tasks"]["vae_celeba"]["model"]["arch"] = "vae2"
    raw["tasks"]["vae_celeba"]["enabled"] = False  # checked for every task, run or not
    with pytest.raises(ConfigError) as error:
        resolve(raw)
    assert str(error.value) == (
        f"tasks.vae_celeba.model.arch: unknown model 'vae2' (known: {', '.join(sorted(MODELS))})"
    )


def test_the_schemas_kinds_and_problems_are_the_registries(repo_root):
    """The schema's enums of task kinds and synthetic problems repeat the registries (a
    JSON schema cannot import them): this fails when one changes without the other."""
    from amsgrad_repro.config import TASK_KINDS
    from amsgrad_repro.kinds import KIND_MODULES
    from amsgrad_repro.synthetic.problems import PARAMETER, PROBLEMS

    schema = yaml.safe_load((repo_root / "workflow/schemas/config.schema.yaml").read_text())
    defs = schema["$defs"]
    branches = schema["properties"]["tasks"]["additionalProperties"]["allOf"]
    assert branches[0]["if"]["properties"]["kind"]["const"] == "synthetic"
    assert branches[1]["if"]["properties"]["kind"]["enum"] == list(KIND_MODULES)
    assert defs["training_task"]["properties"]["kind"]["enum"] == list(KIND_MODULES)
    assert ("synthetic", *KIND_MODULES) == TASK_KINDS
    assert defs["synthetic_task"]["properties"]["problem"]["enum"] == list(PROBLEMS)
    assert defs["grid"]["properties"]["problems"]["items"]["enum"] == list(PROBLEMS)
    assert list(PARAMETER) == list(PROBLEMS)
    for problem, parameter in PARAMETER.items():  # a problem's parameter is required
        if parameter is not None:
            required = [
                b["then"]["required"]
                for b in defs["synthetic_task"]["allOf"]
                if b["if"]["properties"]["problem"]["const"] == problem
            ]
            assert required == [[parameter]], problem


# --- found by the property-based search (tests/test_config_fuzz.py) --------------------


@pytest.mark.parametrize(
    ("where", "value", "message"),
    [
        # Mixed key types reached the jobs' JSON (sorted keys): TypeError at parse time.
        (("tasks", "cifarnet", "model"), {"lrn_bias": 1.0, 3: "x"}, "tasks.cifarnet.model"),
        # YAML reads `null:`, `on:` and `1:` as keys of other types.
        (("tasks", "logreg", "hparams"), {None: 1}, "tasks.logreg.hparams"),
        (("analysis", "targets"), {True: {"x": -0.9}}, "analysis.targets"),
    ],
)
def test_a_key_that_is_not_a_name_is_one_error(raw, where, value, message):
    raw["scale"] = "quick_cifar10"
    target = raw
    for part in where[:-1]:
        target = target[part]
    target[where[-1]] = {**(target.get(where[-1]) or {}), **value}
    bad = next(key for key in value if not isinstance(key, str))
    with pytest.raises(ConfigError) as error:
        resolve(raw)
    assert str(error.value) == (
        f"{message}: the key {bad!r} is not a name; keys are text (write it in quotes, "
        f"'{bad}', or correct it)"
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        # A blank key (in a preset, on the command line) reached the value checks, whose
        # message named no key.
        ({"__preset__": {"": ["2020-01-01"]}}, "presets.quick: the key '' is blank"),
        # An entry a preset brings is named by its place in the file, not by the top-level
        # key it would become (the fuzz met '1e6: the key ...', naming no key of the file).
        ({"__preset__": {"1e6": {"": None}}}, "presets.quick.1e6: the key '' is blank"),
        ({"__preset__": {"1e6": {0: None}}}, "presets.quick.1e6: the key 0 is not a name"),
        # 10^400 overflowed to inf with a RuntimeWarning and reached the range checks.
        (
            {"grids": {"beta_map": {"axes": {"beta2": {"one_minus_logspace": {"stop": 400}}}}}},
            "grids.beta_map.axes.beta2.one_minus_logspace: start -1, stop 400 give values beyond",
        ),
        ({" ": float("-inf")}, "<top level>: the key ' ' is blank"),
        # range(10^30): an OverflowError at start-up (and 10^9 would fill the memory).
        ({"seeds": 10**30}, "seeds: 1000000000000000000000000000000 seeds is more runs"),
        ({"seeds": [0, 2**32]}, "seeds: seeds are integers up to 2^32 − 1"),
        # make_dataclass's TypeError for a field named '' (now refused as blank) or 'a-b'.
        (
            {"plugins": {"lion": {"hparams": {"a-b": None}}}},
            "plugins.lion.hparams: 'a-b' is not an option name",
        ),
        (
            {"plugins": {"lion": {"hparams": {"class": 1}}}},
            "plugins.lion.hparams: 'class' is not an option name",
        ),
    ],
)
def test_a_blank_key_a_runaway_seed_count_and_a_bad_option_name_are_one_error(
    raw, overrides, message
):
    raw["presets"][raw["scale"]].update(overrides.pop("__preset__", {}))
    with pytest.raises(ConfigError) as error:
        resolve(raw, overrides=overrides)
    assert str(error.value).startswith(message), error.value


def test_error_source_finds_a_command_line_key_of_any_characters():
    """A key with characters beyond [\\w.-] (unicode punctuation, commas) set on the
    command line is still traced to --config."""
    overrides = {"tasks": {"log,reg€": {}}}
    message = "tasks.log,reg€: unknown task 'log,reg€' (known: logreg)"
    assert error_source(message, overrides) == "--config"
    assert error_source(message, {}) == "config.yaml"


def test_deep_merge_of_several_layers_copies_once_and_keeps_the_order():
    from amsgrad_repro.settings_base import deep_merge

    base = {"a": {"x": 1, "y": [1]}, "b": 2}
    layer = {"a": {"y": [2], "z": 3}, "c": {"n": 1}}
    merged = deep_merge(base, layer, {"a": {"x": 9}, "c": 4})
    assert merged == {"a": {"x": 9, "y": [2], "z": 3}, "b": 2, "c": 4}
    assert list(merged) == ["a", "b", "c"] and list(merged["a"]) == ["x", "y", "z"]
    merged["a"]["y"].append(5)
    assert base == {"a": {"x": 1, "y": [1]}, "b": 2} and layer["a"]["y"] == [2]
    assert deep_merge(base, layer) == deep_merge(deep_merge(base, {}), layer)


def test_one_validation_converts_whole_floats_and_names_the_rest(raw):
    """validate_typed: 1e6 steps become an int; a wrong value is reported as the standard
    schema check reports it."""
    raw["scale"] = "smoke"
    raw["presets"]["smoke"]["tasks"]["synthetic_online"]["steps"] = 1e6
    raw["presets"]["smoke"]["tasks"]["synthetic_online"]["max_steps"] = 1e6  # ≥ steps
    steps = resolve(raw)["tasks"]["synthetic_online"]["steps"]
    assert steps == 1_000_000 and isinstance(steps, int)
    raw["presets"]["smoke"]["tasks"]["synthetic_online"]["steps"] = 2.5
    with pytest.raises(ConfigError, match=r"tasks\.synthetic_online\.steps: 2\.5 is not of type"):
        resolve(raw)

"""Every documented Snakemake command that forces something does what its text says.

``--forcerun`` takes every following word as a rule or file to force, so
``snakemake --forcerun prepare_dataset data/cache/x.pt`` swallows its target and schedules
the whole pipeline (146 jobs). Each documented command line (README, docs/, and the
commands the code prints) is parsed with Snakemake's own argument parser: what it forces
must be rule names or run records, and a cache to rebuild must stay a target."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from snakemake.cli import get_argument_parser

from amsgrad_repro.data.cache import rebuild_hint
from amsgrad_repro.staleness import Stale, stale_message

REPO = Path(__file__).resolve().parents[1]
DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
# The program as a message prints it: .venv/bin/snakemake or an absolute path to one.
COMMAND = re.compile(r"(?:\S*/)?snakemake\s[^`\n]*")
FORCING = re.compile(r"\s(--forcerun|-R|--force|-f)(\s|$)")


def rule_names() -> set[str]:
    text = "\n".join(p.read_text() for p in (REPO / "workflow/rules").glob("*.smk"))
    return set(re.findall(r"^rule (\w+):", text, flags=re.M)) | set(
        re.findall(r"^use rule \w+ as (\w+)", text, flags=re.M)
    )


def documented_commands() -> list[str]:
    found = [m.group(0) for doc in DOCUMENTS for m in COMMAND.finditer(doc.read_text())]
    found.append(rebuild_hint(Path("data/cache/fashion_mnist.pt")).split("with: ", 1)[1])
    stale = [Stale("results/runs/mlp/adam/0", ["hparams.lr: 1 in the run, 2 now"])]
    printed = stale_message(stale, ["snakemake", "--cores", "all", "--config", "scale=smoke"])
    found += [m.group(0) for m in map(COMMAND.search, printed.splitlines()) if m]
    return [command for command in found if FORCING.search(command)]


def parse(command: str):
    words = [w for w in shlex.split(command.replace("…", "")) if w]
    args, _ = get_argument_parser().parse_known_args(words[1:])
    return args


def test_there_are_forcing_commands_to_check():
    commands = documented_commands()
    assert any("--force data/cache/" in c for c in commands), commands
    assert any("--forcerun results/runs/" in c for c in commands), commands


@pytest.mark.parametrize("command", documented_commands())
def test_forced_words_are_rules_or_run_records_and_targets_stay_targets(command):
    args = parse(command)
    rules = rule_names()
    for word in args.forcerun or ():
        assert word in rules or word.endswith("/run.json"), (
            f"{command!r}: --forcerun swallowed {word!r} (put --forcerun last, or use "
            "--force with the target)"
        )
    caches = [w for w in shlex.split(command) if w.startswith("data/cache/")]
    assert set(caches) <= set(args.targets or ()), (command, args.targets)
    if caches:
        assert args.force and not args.forcerun, command  # only that target's job

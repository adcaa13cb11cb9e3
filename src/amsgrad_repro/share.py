"""Share finished results through the DVC remote: ``amsgrad-repro share push|pull``.

What is tracked (one ``.dvc`` file per unit, committed to git beside the result):

* a **run**: every folder under ``results/`` holding a ``run.json`` (``runs/<task>/<opt>/
  <seed>/``, ``tuning/runs/.../<seed>/``): the files of one job belong together;
* every **other result file** on its own (``aggregates/<task>.csv``, each figure, each table,
  each tuning selection), so partial results can be shared and two people who add runs
  only ever touch the ``.dvc`` files of what they recomputed.

``results/logs``, ``results/benchmarks`` and ``results/checkpoints`` (resume state, removed
when a run completes) stay on the machine that made them.

``push`` only shares what Snakemake itself calls finished and up to date for the given
configuration (``snakemake --summary``: status ``ok``, plan ``no update``).

``pull`` makes the pipeline see the pulled files as up to date. DVC writes them with the
time of the checkout, in no particular order, and a fresh clone has no ``.snakemake``
metadata, so Snakemake would rerun any job whose output happens to be older than an input.
After ``dvc pull`` this module therefore (1) builds missing prerequisites that are not
shared (the dataset caches under ``data/cache``): were one built later, every pulled run
reading it would be recomputed; (2) drops stale Snakemake metadata of the pulled files;
(3) sets the modification times of the files the pull wrote in the workflow's dependency
order (``snakemake --rulegraph``), all after every local input. See docs/sharing.md.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from amsgrad_repro.data import dvc
from amsgrad_repro.data.dvc import DvcError
from amsgrad_repro.layout import BENCHMARKS, NOT_SHARED, RESULTS, RUN_RECORD
from amsgrad_repro.staleness import STALE_MARK
from amsgrad_repro.staleness import record_pulled as remember
from amsgrad_repro.startup import SKIP_STALE_CHECK_ENV

# Spacing of the restored modification times between dependency levels.
LEVEL_STEP_NS = 10_000_000


class ShareError(RuntimeError):
    """Sharing failed; the message says why and what to do."""


@dataclass(frozen=True)
class Output:
    """One line of ``snakemake --summary``."""

    rule: str
    status: str
    plan: str

    @property
    def up_to_date(self) -> bool:
        return self.status == "ok" and self.plan == "no update"


# --- Snakemake --------------------------------------------------------------------------


def snakemake(
    root: Path, *args: str, check: bool = True, quiet: bool = True, check_stale: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run Snakemake of the running Python in ``root``, its rules finding ``amsgrad-repro``
    of the same environment. Its start-up check of pulled runs (``staleness``) is off
    unless ``check_stale``: a pull checks them once, at its end."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    if not check_stale:
        env[SKIP_STALE_CHECK_ENV] = "1"
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", *args],
        cwd=root,
        env=env,
        capture_output=quiet,
        text=True,
    )
    if check and result.returncode != 0:
        detail = f"\n{result.stdout[-3000:]}{result.stderr[-5000:]}" if quiet else ""
        raise ShareError(f"snakemake {' '.join(args)} failed ({result.returncode}){detail}")
    return result


def workflow_summary(root: Path, snakemake_args: Sequence[str]) -> dict[str, Output]:
    """Every output file of the workflow's DAG (for these arguments) with its rule, status
    and plan."""
    result = snakemake(root, "--summary", *snakemake_args)
    rows: dict[str, Output] = {}
    lines = iter(result.stdout.splitlines())
    for line in lines:
        if line.startswith("output_file\t"):
            break
    for line in lines:
        fields = line.split("\t")
        if len(fields) >= 5:
            rows[fields[0]] = Output(rule=fields[2], status=fields[-2], plan=fields[-1])
    return rows


def rule_levels(root: Path, snakemake_args: Sequence[str]) -> dict[str, int]:
    """Each rule's depth in the rule graph: 0 for rules with no producing rule upstream,
    else one more than the deepest rule it reads from."""
    dot = snakemake(root, "--rulegraph", *snakemake_args).stdout
    names = dict(re.findall(r'^\s*(\d+)\[label = "([^"]+)"', dot, flags=re.M))
    upstream: dict[str, set[str]] = {name: set() for name in names.values()}
    for source, target in re.findall(r"^\s*(\d+) -> (\d+)", dot, flags=re.M):
        upstream[names[target]].add(names[source])
    levels: dict[str, int] = {}

    def level(rule: str, seen: frozenset[str] = frozenset()) -> int:
        if rule not in levels:
            if rule in seen:  # a cycle in the rule graph: no order to respect
                return 0
            inputs = upstream.get(rule, set())
            levels[rule] = 1 + max((level(r, seen | {rule}) for r in inputs), default=-1)
        return levels[rule]

    for rule in upstream:
        level(rule)
    return levels


# --- Units ------------------------------------------------------------------------------


def _contains_run(folder: Path) -> bool:
    return any(folder.rglob(RUN_RECORD))


def _is_result_file(path: Path) -> bool:
    return not path.name.startswith(".") and path.suffix != ".dvc"


def find_units(root: Path, paths: Iterable[str] = ()) -> list[Path]:
    """The shareable units under results/ (relative to ``root``): run folders and single
    files, restricted to those under (or containing) one of ``paths`` when given."""
    units: list[Path] = []

    def visit(path: Path) -> None:
        if path.is_symlink():
            return
        if path.is_dir():
            if (path / RUN_RECORD).is_file():
                units.append(path.relative_to(root))
            else:
                for child in sorted(path.iterdir()):
                    if not child.name.startswith("."):
                        visit(child)
        elif path.is_file() and _is_result_file(path):
            units.append(path.relative_to(root))

    results = root / RESULTS
    if results.is_dir():
        for child in sorted(results.iterdir()):
            if child.name not in NOT_SHARED and not child.name.startswith("."):
                visit(child)
    return [unit for unit in units if _selected(unit, paths)]


def _selected(unit: Path, paths: Iterable[str]) -> bool:
    wanted = [Path(os.path.normpath(p)) for p in paths]
    if not wanted:
        return True
    return any(unit == p or p in unit.parents or unit in p.parents for p in wanted)


def unit_files(root: Path, unit: Path) -> list[str]:
    """The files of a unit, as paths relative to ``root`` (Snakemake's spelling)."""
    path = root / unit
    if path.is_dir():
        return sorted(
            f.relative_to(root).as_posix()
            for f in path.rglob("*")
            if f.is_file() and not f.is_symlink()
        )
    return [unit.as_posix()] if path.is_file() else []


def dvc_file(unit: Path) -> Path:
    return unit.with_name(unit.name + ".dvc")


def tracked_units(root: Path, paths: Iterable[str] = ()) -> list[Path]:
    """Units that have a ``.dvc`` file under results/ (from git), optionally selected."""
    results = root / RESULTS
    if not results.is_dir():
        return []
    units = [
        f.relative_to(root).with_suffix("")
        for f in sorted(results.rglob("*.dvc"))
        if f.is_file() and not (set(f.relative_to(results).parts[:1]) & NOT_SHARED)
    ]
    return [unit for unit in units if _selected(unit, paths)]


# --- push -------------------------------------------------------------------------------


def push(
    root: Path,
    paths: Sequence[str] = (),
    snakemake_args: Sequence[str] = (),
    remote: str | None = None,
) -> list[Path]:
    """Track every finished, up-to-date unit with DVC and push it (and the datasets' raw
    files tracked under data/raw) to the remote. Returns the ``.dvc`` files to commit."""
    summary = workflow_summary(root, snakemake_args)
    # A tracked result that is no longer up to date (a run it reads was recomputed) must
    # not stay committed beside its newer inputs: a pull would date it as up to date.
    for unit in tracked_units(root):
        known = [f for f in unit_files(root, unit) if f in summary]
        if known and not all(summary[f].up_to_date for f in known):
            (root / dvc_file(unit)).unlink()
            print(f"untracked {unit}: it is not up to date any more (commit the removal of "
                  f"{dvc_file(unit)}; run the pipeline and push to share it again)")  # fmt: skip
    shared: list[Path] = []
    for unit in find_units(root, paths):
        files = unit_files(root, unit)
        known = [f for f in files if f in summary]
        if not known:
            print(f"skipped {unit}: not an output of this workflow configuration")
            continue
        stale = [f for f in known if not summary[f].up_to_date]
        if stale:
            output = summary[stale[0]]
            print(f"skipped {unit}: {stale[0]} is not finished or not up to date "
                  f"({output.status}, {output.plan}); run the pipeline first")  # fmt: skip
            continue
        shared.append(unit)
    if not shared:
        raise ShareError(
            "nothing to share: no finished, up-to-date results under results/ for this "
            "configuration (pass the same --config as the run)"
        )
    dvc_files = [dvc_file(unit).as_posix() for unit in shared]
    before = {name: _read_or_none(root / name) for name in dvc_files}
    datasets = [f.relative_to(root).as_posix() for f in sorted(root.glob("data/raw/*.dvc"))]
    try:
        dvc.add(root, [unit.as_posix() for unit in shared])
        dvc.push_to(root, dvc_files + datasets, remote)
    except dvc.DvcError as error:
        _restore(root, before)  # no .dvc file may name data the remote does not hold
        problem = remote_problem(str(error), remote) or "The push failed."
        raise ShareError(
            f"{problem}\nNothing was shared: the .dvc files here are as they were before "
            f"the push.\n\n{error}"
        ) from None
    runs = sum((root / unit).is_dir() for unit in shared)
    print(
        f"pushed {len(shared)} units ({runs} runs, {len(shared) - runs} files)"
        + (f" and {len(datasets)} datasets" if datasets else "")
        + f" to the DVC remote {remote or '(default)'}."
    )
    print(
        "Commit the .dvc files so that others can pull them:\n"
        "  git add results/**/*.dvc data/raw/*.dvc && git commit -m 'Share results'"
    )
    return [Path(f) for f in dvc_files]


def _read_or_none(path: Path) -> bytes | None:
    return path.read_bytes() if path.is_file() else None


def _restore(root: Path, before: dict[str, bytes | None]) -> None:
    """Put the given files back as they were: rewrite changed ones, delete new ones."""
    for name, content in before.items():
        path = root / name
        if content is None:
            path.unlink(missing_ok=True)
        elif _read_or_none(path) != content:
            path.write_bytes(content)


# What DVC's errors mean for a user of an S3 (or other cloud) remote, by the text in them.
REMOTE_PROBLEMS = (
    (
        ("Unable to locate credentials", "NoCredentialsError"),
        "no credentials for the remote: DVC reads them from the environment "
        "(AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE with ~/.aws/credentials) "
        "or from the remote's local settings (dvc remote modify --local NAME access_key_id ...; "
        "docs/sharing.md)",
    ),
    (
        ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "Forbidden", "403"),
        "the remote refused the credentials: check the key pair, and that it may read and "
        "write the bucket",
    ),
    (
        ("NoSuchBucket", "bucket does not exist", "neither locally nor on remote"),
        "the remote does not hold the data: check its URL (`dvc remote list`; a wrong "
        "bucket or path) and that the bucket exists, or push the results there first",
    ),
    (
        ("Could not connect", "Connection refused", "EndpointConnectionError", "timed out"),
        "the remote's endpoint cannot be reached: check `dvc remote list` (endpointurl) and "
        "the network",
    ),
)


def remote_problem(text: str, remote: str | None) -> str | None:
    """One sentence naming what went wrong with the remote and how to fix it, when DVC's
    message shows a remote problem."""
    name = remote or "(the default, core.remote)"
    for needles, meaning in REMOTE_PROBLEMS:
        if any(needle in text for needle in needles):
            return f"DVC remote {name}: {meaning}."
    return None


# --- pull -------------------------------------------------------------------------------


def _snapshot(root: Path, units: Iterable[Path]) -> dict[str, tuple[int, int, int]]:
    state = {}
    for unit in units:
        for name in unit_files(root, unit):
            info = (root / name).stat()
            state[name] = (info.st_ino, info.st_mtime_ns, info.st_size)
    return state


def pull(
    root: Path,
    paths: Sequence[str] = (),
    snakemake_args: Sequence[str] = (),
    remote: str | None = None,
    force: bool = False,
    cores: str = "all",
) -> list[str]:
    """``dvc pull`` the tracked results, then make Snakemake see them as up to date.
    Returns the files the pull wrote."""
    units = tracked_units(root, paths)
    if not units:
        raise ShareError(
            "nothing to pull: no .dvc files under results/ (has the sharer committed "
            "them, and have you pulled that git commit?)"
        )
    before = _snapshot(root, units)
    failure = None
    try:
        dvc.pull_from(root, [dvc_file(unit).as_posix() for unit in units], remote, force)
    except dvc.DvcError as error:
        # DVC may have checked out the other targets: date them all the same.
        problem = remote_problem(str(error), remote)
        failure = ShareError(
            f"{problem}\n\n{error}"
            if problem
            else f"{error}\n\nA result changed here and not pushed is never overwritten: "
            "push it first (share push), or pass --force to replace it by the shared version."
        )
    after = _snapshot(root, units)
    written = sorted(name for name, state in after.items() if before.get(name) != state)
    print(f"pulled {len(units)} units; {len(written)} files written")
    # After a complete pull every selected unit is the sharer's version, and push only
    # commits results that were up to date together: date them all, so that one that was
    # already here is not older than a pulled input. After a failed pull, only what DVC
    # wrote is known to be the sharer's.
    dated = sorted(after) if failure is None else written
    if written:
        summary = workflow_summary(root, snakemake_args)
        build_prerequisites(root, summary, snakemake_args, cores)
        forget_metadata(root, [name for name in written if name in summary], snakemake_args)
        restore_order(root, dated, summary, rule_levels(root, snakemake_args))
        record_pulled(root, [name for name in dated if name.endswith(f"/{RUN_RECORD}")])
        if failure is None:
            report_remaining(workflow_summary(root, snakemake_args))
            check_pulled(root, snakemake_args)
    if failure is not None:
        raise failure
    return written


def record_pulled(root: Path, run_records: Sequence[str]) -> None:
    """Remember the pulled run folders, so that Snakemake's start-up check compares their
    settings with the configuration (``amsgrad_repro.staleness``)."""
    remember(root, sorted({str(Path(name).parent) for name in run_records}))


def check_pulled(root: Path, snakemake_args: Sequence[str]) -> None:
    """Fail the pull when the runs it brought were made with other settings than these
    arguments give them (the same check every Snakemake start makes)."""
    result = snakemake(root, "-n", "--quiet", *snakemake_args, check=False, check_stale=True)
    if result.returncode != 0 and STALE_MARK in result.stderr:
        lines = result.stderr.splitlines()
        first = next(i for i, line in enumerate(lines) if STALE_MARK in line)
        message = "\n".join(lines[first:]).strip()
        raise ShareError(f"pulled, but the runs do not fit this configuration:\n{message}")


def build_prerequisites(
    root: Path, summary: dict[str, Output], snakemake_args: Sequence[str], cores: str
) -> None:
    """Build the missing outputs outside results/ (the dataset caches). If one were built
    after the pull, it would be newer than the pulled runs that read it, and Snakemake
    would recompute them all."""
    missing = sorted(
        path
        for path, output in summary.items()
        if output.status == "missing" and not path.startswith(f"{RESULTS}/")
    )
    if not missing:
        return
    print(f"building what the pulled results were made from: {', '.join(missing)}")
    result = snakemake(
        root, "--cores", cores, "--keep-going", *missing, *snakemake_args, check=False
    )
    if result.returncode != 0:
        print(
            f"warning: could not build all of {', '.join(missing)} (snakemake exit "
            f"{result.returncode}; see results/logs/). When one is built later, Snakemake "
            "recomputes the pulled results that read it.\n" + result.stderr[-3000:],
            file=sys.stderr,
        )


def forget_metadata(root: Path, files: Sequence[str], snakemake_args: Sequence[str]) -> None:
    """Drop what Snakemake recorded here about files the pull replaced (rule code, params,
    input set of the local version): it does not describe the pulled content."""
    metadata = root / ".snakemake" / "metadata"
    if not files or not metadata.is_dir() or not any(metadata.iterdir()):
        return
    result = snakemake(root, "--cleanup-metadata", *files, *snakemake_args, check=False)
    if result.returncode != 0 and "metadata was not present" not in result.stderr:
        raise ShareError(f"snakemake --cleanup-metadata failed:\n{result.stderr[-5000:]}")


def restore_order(
    root: Path, files: Sequence[str], summary: dict[str, Output], levels: dict[str, int]
) -> None:
    """Give the pulled files modification times in the workflow's dependency order, the
    newest now: each output is newer than its inputs (pulled ones and local ones)."""
    top = max(levels.values(), default=0)
    now = time.time_ns()
    for name in files:
        rule = summary[name].rule if name in summary else None
        level = levels.get(rule, top) if rule else top
        stamp = now - (top - level) * LEVEL_STEP_NS
        os.utime(root / name, ns=(stamp, stamp))
    # Snakemake takes a job's benchmark file as one of its outputs when it compares times
    # (the oldest counts); a local one from an earlier run of a job whose outputs were just
    # pulled would make that job look outdated. Benchmarks dated now never do.
    benchmarks = root / RESULTS / BENCHMARKS
    if benchmarks.is_dir():
        for path in benchmarks.rglob("*"):
            if path.is_file() and not path.is_symlink():
                os.utime(path, ns=(now, now))


def report_remaining(summary: dict[str, Output]) -> None:
    pending: dict[str, int] = {}
    for output in summary.values():
        if output.plan != "no update":
            pending[output.rule] = pending.get(output.rule, 0) + 1
    if not pending:
        print("Snakemake is up to date: nothing to run.")
    else:
        listed = ", ".join(f"{rule} ({count} files)" for rule, count in sorted(pending.items()))
        print(f"left to compute by the pipeline: {listed}")


# --- CLI --------------------------------------------------------------------------------


def register(subparsers: argparse._SubParsersAction) -> None:
    share = subparsers.add_parser(
        "share",
        help="push finished results to the DVC remote, or pull them (docs/sharing.md)",
        description="amsgrad-repro share push|pull [PATHS] [options] [-- SNAKEMAKE ARGS]; "
        "see `amsgrad-repro share push --help`.",
    )
    # Parsed by options_parser(): argparse would drop a '--' right after a positional.
    share.add_argument("args", nargs=argparse.REMAINDER, metavar="push|pull ...")
    share.set_defaults(func=_share)


def options_parser() -> argparse.ArgumentParser:
    """``share``'s own arguments; everything after ``--`` is for Snakemake."""
    parser = argparse.ArgumentParser(
        prog="amsgrad-repro share",
        description="Share finished results through the DVC remote (docs/sharing.md).",
        epilog="Arguments after '--' go to every Snakemake call and must match the run's, "
        "e.g. amsgrad-repro share pull -- --config scale=smoke",
    )
    parser.add_argument("action", choices=("push", "pull"))
    parser.add_argument(
        "paths", nargs="*", help="only results under these paths (e.g. results/runs/mlp)"
    )
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="repository root")
    parser.add_argument("--remote", "-r", help="DVC remote (default: core.remote)")
    parser.add_argument(
        "--force", action="store_true", help="pull: replace local results that differ"
    )
    parser.add_argument(
        "--cores", default="all", help="pull: cores for building the dataset caches"
    )
    return parser


def split_snakemake_args(args: Sequence[str]) -> tuple[list[str], list[str]]:
    args = list(args)
    if "--" in args:
        cut = args.index("--")
        return args[:cut], args[cut + 1 :]
    return args, []


def _share(args: argparse.Namespace) -> int:

    own, snakemake_args = split_snakemake_args(args.args)
    options = options_parser().parse_args(own)
    root = options.root.resolve()
    try:
        if options.action == "push":
            push(root, options.paths, snakemake_args, options.remote)
        else:
            pull(
                root,
                options.paths,
                snakemake_args,
                options.remote,
                options.force,
                options.cores,
            )
    except (ShareError, DvcError) as error:
        print(f"amsgrad-repro share: {error}", file=sys.stderr)
        return 1
    return 0

"""``amsgrad-repro report``: Snakemake's self-contained HTML report, without the noise.

In a clone that pulled its results (``make pull``), no result file has Snakemake metadata
(run times, rule code: DVC does not carry ``.snakemake/``), and ``snakemake --report``
prints one "Missing metadata for file ..." warning per file, dozens of them, which reads
like something went wrong. They are expected there: this command passes every other line
through and replaces those with one explanation. ``make report`` runs it.

Snakemake writes the report in place with ``open(path, "w")``: an interrupted report
leaves a truncated file, and a rewritten one keeps whatever mode the old file had. Here it
writes into a hidden folder beside the target, and the finished file is moved over it with
the mode the umask allows (``io.atomic_path``), like every other output.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from amsgrad_repro import layout
from amsgrad_repro.io import atomic_path
from amsgrad_repro.share import split_snakemake_args

MISSING_METADATA = "Missing metadata for file"
DEFAULT_REPORT = layout.REPORT


def explain(count: int) -> str:
    return (
        f"note: {count} result files have no Snakemake metadata in this clone (pulled with "
        "`make pull`, or made in another clone), so the report shows no run times or rule "
        "code for them; their settings and provenance are in each run.json. Expected after "
        "a pull; Snakemake warns once per file."
    )


class _ReportFailed(Exception):
    """Snakemake exited with ``status``: the staged report is discarded."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def filter_lines(lines: Iterable[str], staged: str = "", out: str = "") -> Iterable[str]:
    """Every line except the per-file metadata warnings, then one note counting them; the
    staged path Snakemake writes to is shown as the ``out`` it becomes."""
    missing = 0
    for line in lines:
        if MISSING_METADATA in line:
            missing += 1
            continue
        yield line.replace(staged, out) if staged else line
    if missing:
        yield explain(missing) + "\n"


def build_report(
    root: Path,
    out: str,
    snakemake_args: Sequence[str],
    command: Sequence[str] = (sys.executable, "-m", "snakemake"),
) -> int:
    """Run ``snakemake --report`` (``command``: the interpreter of this process) into a
    staged file that replaces ``out`` only if it succeeds; returns its exit status. Output
    is streamed (filtered) as it comes."""
    target = (Path(root) / out).absolute()  # ``out`` itself when it is absolute
    try:
        with atomic_path(target) as staged:
            argv = [*command, "--report", str(staged), *snakemake_args]
            status = _stream(argv, root, str(staged), out)
            if status:
                raise _ReportFailed(status)
    except _ReportFailed as failed:
        return failed.status
    return 0


def _stream(argv: Sequence[str], root: Path, staged: str, out: str) -> int:
    process = subprocess.Popen(
        argv, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert process.stdout is not None
    for line in filter_lines(process.stdout, staged, out):
        sys.stdout.write(line)
        sys.stdout.flush()
    return process.wait()


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="the HTML report (snakemake --report), explaining missing metadata once",
        description="amsgrad-repro report [--out PATH] [-- SNAKEMAKE ARGS]",
    )
    parser.add_argument("args", nargs=argparse.REMAINDER, metavar="[--out PATH] -- ...")
    parser.set_defaults(func=_report)


def _report(args: argparse.Namespace) -> int:

    own, snakemake_args = split_snakemake_args(args.args)
    options = argparse.ArgumentParser(prog="amsgrad-repro report")
    options.add_argument("--out", default=DEFAULT_REPORT)
    options.add_argument("--root", type=Path, default=Path.cwd())
    parsed = options.parse_args(own)
    return build_report(parsed.root, parsed.out, snakemake_args)

"""Sharing results through DVC (`amsgrad-repro share push|pull`, `make push|pull`): real
git, real dvc with a local remote, real Snakemake on the smoke preset.

Clone A runs the synthetic tasks and logistic regression (two optimizers, one seed) on a
miniature Fashion-MNIST, pushes a partial set of results (commit tagged ``partial``), then
everything. B clones A and pulls everything: identical files, nothing for Snakemake to do,
the report builds. C checks out the partial commit and pulls: the pipeline computes only
the missing runs and what is derived from them, never a pulled run. The miniature's
source folder is deleted after A's push, so B and C get the raw data from the DVC remote.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from amsgrad_repro import share
from amsgrad_repro.data import dvc
from tests.miniatures import write_idx_dataset
from tests.pipeline import (
    PAPER_OPTIMIZERS,
    REPO_ROOT,
    bare_env,
    copy_workflow,
    job_counts,
    run_snakemake,
    snakemake_env,
    with_optimizers,
)

SMOKE = ("--config", "scale=smoke", "seeds=1")
# The partial push: all synthetic runs but Theorem 1 with AMSGrad, logistic regression
# with Adam only, and every derived file (some of which are stale for the partial set).
PARTIAL = (
    "results/runs/synthetic_online",
    "results/runs/synthetic_stochastic",
    "results/runs/synthetic_theorem1/adam",
    "results/runs/synthetic_theorem1/adamnc",
    "results/runs/synthetic_theorem1/torch-amsgrad",
    "results/runs/logreg/adam",
    "results/aggregates",
    "results/figures",
    "results/grids",
    "results/tables",
)
MISSING_IN_PARTIAL = ("results/runs/synthetic_theorem1/amsgrad/0", "results/runs/logreg/amsgrad/0")


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


def share_cli(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "amsgrad_repro.cli", "share", *args],
        cwd=cwd,
        env=snakemake_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"share {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def digests(root: Path) -> dict[str, str]:
    """sha256 of every shared file under results/ (not logs, benchmarks, checkpoints)."""
    results = root / "results"
    return {
        path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(results.rglob("*"))
        if path.is_file()
        and path.relative_to(results).parts[0] not in share.NOT_SHARED
        and path.suffix != ".dvc"
        and not path.name.startswith(".")
    }


def nothing_to_do(workdir: Path) -> bool:
    result = run_snakemake(workdir, "-n", *SMOKE)
    return "Nothing to be done" in result.stdout + result.stderr


def dry_run_jobs(workdir: Path, *args: str) -> dict[str, int]:
    """Jobs per rule that `snakemake -n` would run (its "Job stats" table, less `all`)."""
    result = run_snakemake(workdir, "-n", *(args or SMOKE))
    lines = (result.stdout + result.stderr).splitlines()
    if "Job stats:" not in lines:
        return {}
    jobs = {}
    for line in lines[lines.index("Job stats:") + 3 :]:
        fields = line.split()
        if len(fields) != 2 or fields[0] == "total":
            break
        jobs[fields[0]] = int(fields[1])
    jobs.pop("all", None)
    return job_counts(jobs)


@pytest.fixture(scope="module")
def clone_a(tmp_path_factory) -> Path:
    """A git + DVC repository that ran the smoke pipeline and pushed its results twice."""
    started = time.monotonic()
    root = tmp_path_factory.mktemp("share")
    a = copy_workflow(root / "A")
    shutil.copy(REPO_ROOT / ".gitignore", a / ".gitignore")  # the project's real one
    config = yaml.safe_load((a / "config.yaml").read_text())
    config["datasets"]["fashion_mnist"] = write_idx_dataset(
        root / "mini", num_train=1200, num_test=600
    )
    for name, task in config["tasks"].items():  # synthetic tasks + logreg only
        if task["kind"] != "synthetic" and name != "logreg":
            task["enabled"] = False
    config["tasks"]["logreg"]["optimizers"] = ["adam", "amsgrad"]
    with_optimizers(config, PAPER_OPTIMIZERS)
    (a / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    git(a, "init", "-q")
    for key, value in (("user.email", "t@example.org"), ("user.name", "t")):
        git(a, "config", key, value)
    env = {**os.environ, **dvc.OFFLINE_ENV}
    subprocess.run([dvc.dvc_executable(), "init", "-q"], cwd=a, env=env, check=True)
    shutil.copy(REPO_ROOT / ".dvc/config", a / ".dvc/config")
    dvc.dvc(a, "remote", "modify", "local", "url", str(root / "remote"))
    git(a, "add", ".")
    git(a, "commit", "-qm", "workflow")

    run_snakemake(a, *SMOKE)
    ran = time.monotonic()

    partial = share_cli(a, "push", *PARTIAL, "--", *SMOKE)
    derived = [f for f in digests(a) if not f.startswith("results/runs/")]
    summary = f"pushed {12 + len(derived)} units (12 runs, {len(derived)} files) and 1 datasets"
    assert summary in partial.stdout, partial.stdout
    tracked = git(a, "status", "--porcelain", "--untracked-files=all")
    assert "results/runs/logreg/adam/0.dvc" in tracked, tracked
    assert "results/aggregates/logreg.csv.dvc" in tracked, tracked
    assert "results/runs/logreg/amsgrad/0.dvc" not in tracked
    assert "metrics.csv" not in tracked  # only .dvc files are visible to git
    git(a, "add", "results", "data/raw")
    git(a, "commit", "-qm", "partial results")
    git(a, "tag", "partial")

    full = share_cli(a, "push", "--", *SMOKE)
    git(a, "add", "results", "data/raw")
    git(a, "commit", "-qm", "all results")
    shutil.rmtree(root / "mini")  # from now on the raw data only exists in the DVC remote
    print(
        f"\nclone A: pipeline {ran - started:.1f} s, partial + full push "
        f"{time.monotonic() - ran:.1f} s\n{partial.stdout}{full.stdout}"
    )
    return a


@pytest.mark.slow
def test_push_tracks_each_run_and_file(clone_a: Path) -> None:
    tracked = set(git(clone_a, "ls-files").split())
    runs = {f for f in tracked if f.startswith("results/runs/")}
    # 3 synthetic problems x 4 optimizers + 2 logreg optimizers, one seed each.
    assert len(runs) == 14 and all(f.endswith("/0.dvc") for f in runs), runs
    assert "results/aggregates/logreg.csv.dvc" in tracked
    assert "results/figures/figure1.png.dvc" in tracked
    assert "results/tables/claims.csv.dvc" in tracked
    assert "data/raw/fashion_mnist.dvc" in tracked
    assert not {f for f in tracked if f.startswith(("results/logs", "results/benchmarks"))}
    assert not any(f.startswith("results/checkpoints") for f in tracked)


@pytest.mark.slow
def test_full_pull_is_identical_and_up_to_date(clone_a: Path, tmp_path: Path) -> None:
    b = tmp_path / "B"
    git(tmp_path, "clone", "-q", str(clone_a), str(b))
    started = time.monotonic()
    pulled = share_cli(b, "pull", "--", *SMOKE)
    pull_seconds = time.monotonic() - started
    assert "Snakemake is up to date: nothing to run." in pulled.stdout, pulled.stdout

    assert digests(b) == digests(clone_a)
    assert nothing_to_do(b)
    # Nothing was computed in B except the dataset cache the pulled runs read.
    assert not (b / "results/logs/train").exists()
    assert not (b / "results/logs/synthetic").exists()
    assert (b / "data/cache/fashion_mnist.pt").exists()
    # ... whose raw files came from the DVC remote (the source folder is gone).
    assert "pulled from the DVC remote" in (b / "results/logs/data/fashion_mnist.log").read_text()

    started = time.monotonic()
    built = subprocess.run(
        [sys.executable, "-m", "amsgrad_repro.cli", "report", "--", *SMOKE],
        cwd=b,
        env=snakemake_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )  # what `make report` runs
    assert built.returncode == 0, built.stdout[-3000:]
    report = (b / "results/report.html").read_text()
    assert "figure1.png" in report and "logreg.png" in report and "claims.html" in report
    # No result file has Snakemake metadata here: one note instead of a warning per file.
    assert "Missing metadata" not in built.stdout and built.stdout.count("note: ") == 1
    assert "result files have no Snakemake metadata in this clone" in built.stdout
    print(f"\nB: pull {pull_seconds:.1f} s, report {time.monotonic() - started:.1f} s")
    # The report is a rule-less extra, not shared, and must not disturb the pipeline.
    assert nothing_to_do(b)

    # Another α for logistic regression: the pulled runs were made with the old one, and
    # Snakemake cannot see it (no metadata). Every start stops with the stale runs and the
    # command that recomputes them, instead of "Nothing to be done" and old results.
    changed = (*SMOKE, "tasks={logreg: {hparams: {lr: 1000000.0}}}")
    stopped = run_snakemake(b, "-n", *changed, check=False)
    output = stopped.stdout + stopped.stderr
    assert stopped.returncode != 0 and "Nothing to be done" not in output, output[-3000:]
    assert "2 pulled runs were made with other settings" in output, output[-3000:]
    assert "results/runs/logreg/adam/0: hparams.lr: 0.01 in the run, 1000000.0 now" in output
    # The printed command works as typed: this environment's Snakemake (not one on PATH),
    # --cores, the --config of the call, no copied -n, the run records last.
    printed = re.search(r"^Recompute them .*:\n  (.+)$", output, flags=re.M)
    assert printed, output[-3000:]
    command = shlex.split(printed.group(1))
    assert "-n" not in command and "--cores" in command, command
    fix = (
        "--forcerun",
        "results/runs/logreg/adam/0/run.json", "results/runs/logreg/amsgrad/0/run.json",
    )  # fmt: skip
    assert command[command.index("--config") :] == [*changed, *fix], command
    # It recomputes exactly those runs and what is derived from them.
    assert dry_run_jobs(b, *changed, *fix) == {
        "train_stacked": 2, "aggregate": 1, "train_figure": 1, "analyse": 1, "cross_task": 1
    }  # fmt: skip
    ran = subprocess.run(command, cwd=b, env=bare_env(), capture_output=True, text=True)
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    assert (
        json.loads((b / "results/runs/logreg/adam/0/run.json").read_text())["hparams"]["lr"] == 1e6
    )
    assert "Nothing to be done" in run_snakemake(b, "-n", *changed).stdout


@pytest.mark.slow
def test_partial_pull_computes_only_what_is_missing(clone_a: Path, tmp_path: Path) -> None:
    c = tmp_path / "C"
    git(tmp_path, "clone", "-q", str(clone_a), str(c))
    git(c, "checkout", "-q", "partial")
    started = time.monotonic()
    pulled = share_cli(c, "pull", "--", *SMOKE)
    pull_seconds = time.monotonic() - started
    assert "left to compute by the pipeline" in pulled.stdout, pulled.stdout
    for run in MISSING_IN_PARTIAL:
        assert not (c / run).exists()
    pulled_runs = {
        path: (c / path).stat().st_mtime_ns
        for path in digests(c)
        if path.startswith("results/runs/")
    }
    assert len(pulled_runs) == 11 * 2 + 3  # 11 synthetic runs, logreg/adam: 3 files

    # Exactly the missing runs and what is derived from them.
    assert dry_run_jobs(c) == {
        "synthetic_run": 1,  # theorem1 x amsgrad (all seeds of a problem x optimizer)
        "train_stacked": 1,  # logreg/amsgrad/0 (its stacked job of one seed)
        "aggregate": 2,  # theorem1, logreg
        "figure1": 1,
        "train_figure": 1,
        "analyse": 1,
        "cross_task": 1,
    }, dry_run_jobs(c)

    # A push from C shares only what is finished and up to date here, and stops tracking
    # the pulled results that are not (they would look up to date after a pull).
    pushed = share_cli(c, "push", "--", *SMOKE)
    assert "untracked results/aggregates/logreg.csv" in pushed.stdout, pushed.stdout
    assert "skipped results/aggregates/logreg.csv" in pushed.stdout
    assert "skipped results/tables/claims.csv" in pushed.stdout
    assert "skipped results/aggregates/synthetic_online.csv" not in pushed.stdout
    assert not (c / "results/aggregates/logreg.csv.dvc").exists()
    assert (c / "results/aggregates/synthetic_online.csv.dvc").exists()

    started = time.monotonic()
    run_snakemake(c, *SMOKE)
    run_seconds = time.monotonic() - started
    for path, mtime in pulled_runs.items():
        assert (c / path).stat().st_mtime_ns == mtime, f"{path} was recomputed"
    assert not (c / "results/logs/train/logreg/adam/stacked.log").exists()
    assert (c / "results/logs/train/logreg/amsgrad/stacked.log").exists()
    synthetic_logs = {p.name for p in (c / "results/logs/synthetic").rglob("*.log")}
    assert synthetic_logs == {"amsgrad.log"}, synthetic_logs
    # The runs computed here equal A's (bit-identical on CPU for a given seed; only the
    # wall time differs), and so does everything derived from them.
    for run in MISSING_IN_PARTIAL:
        mine = pd.read_csv(c / run / "metrics.csv").drop(columns="wall_time", errors="ignore")
        theirs = pd.read_csv(clone_a / run / "metrics.csv")
        pd.testing.assert_frame_equal(mine, theirs.drop(columns="wall_time", errors="ignore"))
    for task in ("synthetic_theorem1", "logreg"):
        aggregate = f"results/aggregates/{task}.csv"
        pd.testing.assert_frame_equal(pd.read_csv(c / aggregate), pd.read_csv(clone_a / aggregate))
    assert nothing_to_do(c)
    print(f"\nC: partial pull {pull_seconds:.1f} s, pipeline for the rest {run_seconds:.1f} s")

    # Then the sharer's full set arrives. C's own versions of the two runs differ from A's
    # (wall time) and were never pushed, so a pull refuses to overwrite them; --force takes
    # the shared ones and forgets the metadata Snakemake recorded here for C's versions.
    git(c, "checkout", "-q", "-f", "-")  # A's full commit, dropping C's .dvc changes
    assert "results/runs/logreg/amsgrad/0.dvc" in git(c, "ls-files")
    refused = share_cli(c, "pull", "--", *SMOKE, check=False)
    assert refused.returncode == 1 and "--force" in refused.stderr, refused.stderr
    share_cli(c, "pull", "--force", "--", *SMOKE)
    assert digests(c) == digests(clone_a)
    assert nothing_to_do(c)


def test_pull_without_tracked_results_says_so(tmp_path: Path) -> None:
    result = share_cli(tmp_path, "pull", check=False)
    assert result.returncode == 1
    assert "nothing to pull: no .dvc files under results/" in result.stderr


def test_cli_keeps_snakemake_arguments_after_double_dash() -> None:
    from amsgrad_repro.cli import build_parser

    args = build_parser().parse_args(["share", "push", "--", "--config", "scale=smoke"])
    own, rest = share.split_snakemake_args(args.args)
    assert own == ["push"] and rest == ["--config", "scale=smoke"]
    args = build_parser().parse_args(["share", "pull", "results/runs", "-r", "s3", "--", "-n"])
    own, rest = share.split_snakemake_args(args.args)
    options = share.options_parser().parse_args(own)
    assert options.paths == ["results/runs"] and options.remote == "s3" and rest == ["-n"]


# --- A real S3 remote: moto's server on 127.0.0.1, credentials from the environment -------

BUCKET = "amsgrad-results"
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def hermetic_aws_env(**credentials: str) -> dict[str, str]:
    """The test environment with only the given AWS credentials: no profile or config file
    of the machine, no instance-metadata lookups."""
    env = {k: v for k, v in snakemake_env().items() if not k.startswith("AWS_")}
    nowhere = "/nonexistent/aws"  # botocore refuses /dev/null ("could not be found")
    env.update(
        AWS_CONFIG_FILE=nowhere,
        AWS_SHARED_CREDENTIALS_FILE=nowhere,
        AWS_EC2_METADATA_DISABLED="true",
        **credentials,
    )
    return env


@pytest.fixture(scope="module")
def s3_endpoint():
    """A real S3 API (moto's server, a separate process) with one empty bucket."""
    import socket
    import urllib.request

    import boto3

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(url, timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        client = boto3.client("s3", endpoint_url=url, **{
            "aws_access_key_id": "testing", "aws_secret_access_key": "testing",
            "region_name": "us-east-1",
        })  # fmt: skip
        client.create_bucket(Bucket=BUCKET)
        yield url, client
    finally:
        server.terminate()
        server.wait(timeout=30)


def use_s3_remote(root: Path, endpoint: str, bucket: str = BUCKET, default: bool = False) -> None:
    """An S3 remote `s3store` in this clone's .dvc/config.local (as docs/sharing.md shows),
    optionally the default, with the folder remote of the project made unreachable."""
    dvc.dvc(root, "remote", "add", "--local", "--force", "s3store", f"s3://{bucket}/amsgrad-repro")
    dvc.dvc(root, "remote", "modify", "--local", "s3store", "endpointurl", endpoint)
    if default:
        dvc.dvc(root, "remote", "default", "--local", "s3store")
        dvc.dvc(root, "remote", "modify", "--local", "local", "url", str(root / "no-remote"))


def share_with_env(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "amsgrad_repro.cli", "share", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip


@pytest.mark.slow
def test_s3_remote_push_pull_and_clear_errors(clone_a: Path, s3_endpoint, tmp_path: Path) -> None:
    endpoint, client = s3_endpoint
    env = hermetic_aws_env(**S3_ENV)
    use_s3_remote(clone_a, endpoint)
    pushed = share_with_env(clone_a, env, "push", "--remote", "s3store", "--", *SMOKE)
    assert pushed.returncode == 0, pushed.stderr
    stored = client.list_objects_v2(Bucket=BUCKET).get("Contents", [])
    assert len(stored) > 20 and all(o["Key"].startswith("amsgrad-repro/") for o in stored)

    # A clone that reaches only the S3 remote (the folder remote is gone for it) pulls
    # everything, the raw data included, and Snakemake has nothing to do.
    d = tmp_path / "D"
    git(tmp_path, "clone", "-q", str(clone_a), str(d))
    use_s3_remote(d, endpoint, default=True)
    pulled = share_with_env(d, env, "pull", "--", *SMOKE)
    assert pulled.returncode == 0, pulled.stderr[-3000:]
    assert digests(d) == digests(clone_a)
    assert nothing_to_do(d)
    assert "pulled from the DVC remote" in (d / "results/logs/data/fashion_mnist.log").read_text()

    # Missing credentials and a wrong bucket: a clear error, and nothing written.
    e = tmp_path / "E"
    git(tmp_path, "clone", "-q", str(clone_a), str(e))
    use_s3_remote(e, endpoint, default=True)
    before = sorted(p.relative_to(e) for p in e.rglob("*") if ".git" not in p.parts)
    failed = share_with_env(e, hermetic_aws_env(), "pull", "--", *SMOKE)
    assert failed.returncode == 1 and "no credentials for the remote" in failed.stderr, (
        failed.stderr
    )
    assert "AWS_ACCESS_KEY_ID" in failed.stderr and "Traceback" not in failed.stderr
    use_s3_remote(e, endpoint, bucket="no-such-bucket", default=True)
    failed = share_with_env(e, env, "pull", "--", *SMOKE)
    assert failed.returncode == 1 and "does not hold the data" in failed.stderr, failed.stderr
    after = sorted(p.relative_to(e) for p in e.rglob("*") if ".git" not in p.parts)
    written = [p for p in after if p not in before and not str(p).startswith(".dvc")]
    assert written == [] and digests(e) == {}, written

    # A push to a wrong bucket leaves no .dvc file naming data the remote does not hold.
    unit = clone_a / "results/aggregates/logreg.csv.dvc"
    unit.unlink()
    use_s3_remote(clone_a, endpoint, bucket="no-such-bucket")
    failed = share_with_env(clone_a, env, "push", "--remote", "s3store", "--", *SMOKE)
    assert failed.returncode == 1 and "does not hold the data" in failed.stderr, failed.stderr
    assert "Nothing was shared" in failed.stderr and not unit.exists()
    git(clone_a, "checkout", "--", "results/aggregates/logreg.csv.dvc")

"""Write the analysis outputs: tidy CSVs, the claims table as HTML for the report, a
provenance page, and a plain-text summary a person can read in a terminal."""

from __future__ import annotations

import html
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from amsgrad_repro.analysis.claims import evaluate_claims
from amsgrad_repro.analysis.finals import finals_table, load_finals, paired_table, time_to_target
from amsgrad_repro.io import atomic_open, write_csv

CLAIM_FIELDS = ("id", "source", "statement", "task", "metric", "rule")


def load_claims(path: str | Path) -> list[dict[str, Any]]:
    with open(path) as handle:
        claims = yaml.safe_load(handle) or []
    for index, claim in enumerate(claims):
        missing = [field for field in CLAIM_FIELDS if field not in claim]
        if missing:
            raise ValueError(f"{path}: claim #{index} lacks {', '.join(missing)}")
    return claims


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape(str(value))


def html_table(frame: pd.DataFrame, title: str) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = "\n".join(
        "<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in row) + "</tr>"
        for row in frame.itertuples(index=False)
    )
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<style>table{border-collapse:collapse;font:13px sans-serif}"
        "td,th{border:1px solid #bbb;padding:3px 6px}th{background:#eee}</style></head>"
        f"<body><h2>{html.escape(title)}</h2><table><tr>{head}</tr>\n{body}</table></body></html>\n"
    )


def write_text(path: Path, text: str) -> None:
    with atomic_open(path) as handle:
        handle.write(text)


def provenance_table(run_files: Iterable[str | Path]) -> pd.DataFrame:
    """What produced the runs: package versions, commit, device, dataset checksums."""
    rows = {}
    for path in map(Path, run_files):
        info = json.loads(path.read_text())
        key = (info["task"], info.get("git_commit"), info.get("device", "cpu"))
        rows[key] = {
            "task": info["task"],
            "git_commit": info.get("git_commit"),
            "device": info.get("device", "cpu"),
            "dataset_md5": info.get("dataset_md5", "—"),
            "versions": ", ".join(f"{k} {v}" for k, v in sorted(info["versions"].items())),
        }
    return pd.DataFrame(list(rows.values()))


def settings_page(settings: dict[str, Any]) -> str:
    """The resolved configuration the runs used (after the scale preset)."""
    text = html.escape(yaml.safe_dump(settings, sort_keys=False, allow_unicode=True))
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Settings</title></head>"
        f"<body><h2>Settings used (scale: {html.escape(str(settings.get('scale')))})</h2>"
        f"<pre>{text}</pre></body></html>\n"
    )


def summary_text(claims: pd.DataFrame, finals: pd.DataFrame) -> str:
    lines = ["Claims of Reddi, Kale & Kumar (ICLR 2018), checked", ""]
    for row in claims.itertuples(index=False):
        interval = (
            ""
            if row.verdict == "not run"
            else (
                f" — {row.effect}: {row.estimate:.4g} [{row.lo:.4g}, {row.hi:.4g}], "
                f"{row.n_seeds} seeds, threshold {row.threshold}"
            )
        )
        lines.append(f"[{row.verdict.upper()}] {row.id}: {row.claim}{interval}")
    lines += ["", "Final values (mean [95% bootstrap interval], seeds):"]
    for row in finals.itertuples(index=False):
        lines.append(
            f"  {row.task:22s} {row.optimizer:14s} {row.metric:14s} {row.mean:.4g} "
            f"[{row.lo:.4g}, {row.hi:.4g}] n={row.n} diverged={row.diverged}"
        )
    return "\n".join(lines) + "\n"


def analyse(
    run_files: list[Path],
    aggregates: list[Path],
    claims_path: Path,
    settings: dict[str, Any],
    out_dir: Path,
) -> pd.DataFrame:
    finals = load_finals(run_files)
    finals_summary = finals_table(finals)
    analysis = settings.get("analysis", {})
    pairs = analysis.get("pairs", [["amsgrad", "adam"]])
    targets = analysis.get("targets", {})
    ttt = [
        time_to_target(pd.read_csv(path), path.stem, targets[path.stem])
        for path in aggregates
        if path.stem in targets
    ]
    claims = evaluate_claims(load_claims(claims_path), finals)
    write_csv(out_dir / "finals.csv", finals_summary)
    write_csv(out_dir / "paired.csv", paired_table(finals, pairs))
    write_csv(out_dir / "time_to_target.csv", pd.concat(ttt) if ttt else pd.DataFrame())
    write_csv(out_dir / "claims.csv", claims)
    write_text(out_dir / "claims.html", html_table(claims, "The paper's claims, checked"))
    write_text(out_dir / "provenance.html", html_table(provenance_table(run_files), "Provenance"))
    write_text(out_dir / "summary.txt", summary_text(claims, finals_summary))
    write_text(out_dir / "settings.html", settings_page(settings))
    return claims

"""Write the analysis outputs: tidy CSVs (results/tables/), the claims, statistics,
settings and provenance pages the report embeds, and a plain-text summary a person can read
in a terminal."""

from __future__ import annotations

import html
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from amsgrad_repro.analysis.claims import evaluate_claims
from amsgrad_repro.analysis.claims_spec import load_claims_file
from amsgrad_repro.analysis.grid_claims import GridData
from amsgrad_repro.analysis.verdicts import (
    DEFAULT_MIN_SEEDS,
    NOT_RUN,
    decided,
)
from amsgrad_repro.formatting import plural
from amsgrad_repro.io import atomic_open, write_csv
from amsgrad_repro.optimizers import catalogue
from amsgrad_repro.reduction import reduction
from amsgrad_repro.summaries.finals import (
    FINAL,
    FINALS_COLUMNS,
    TTT_COLUMNS,
    finals_table,
    load_finals,
    paired_table,
    time_to_target,
)
from amsgrad_repro.synthetic.grid_spec import grid_spec
from amsgrad_repro.tuning.grid import spoken_grid, tuned_tasks, tuning_seeds

TTT_TITLE = (
    "Time to target (first logged step from which the seed-mean curve stays at or past "
    "the target until the end; a brief earlier crossing does not count)"
)
TABLE_STYLE = (
    "<style>table{border-collapse:collapse;font:13px sans-serif}"
    "td,th{border:1px solid #bbb;padding:3px 6px}th{background:#eee}</style>"
)


def load_claims(path: str | Path) -> list[dict[str, Any]]:
    """The claims of ``path``, schema-checked (``analysis.claims_spec``; start-up has
    already checked their names against the configuration)."""
    return load_claims_file(path)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape(str(value))


def table_fragment(frame: pd.DataFrame, title: str) -> str:
    """A heading and an HTML table of ``frame`` (values escaped, floats to 4 digits)."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = "\n".join(
        "<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in row) + "</tr>"
        for row in frame.itertuples(index=False)
    )
    return f"<h2>{html.escape(title)}</h2><table><tr>{head}</tr>\n{body}</table>"


def html_page(title: str, body: str) -> str:
    """A standalone page: the report embeds each table page as it is."""
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"{TABLE_STYLE}</head><body>{body}</body></html>\n"
    )


def html_table(frame: pd.DataFrame, title: str) -> str:
    return html_page(title, table_fragment(frame, title))


def write_text(path: Path, text: str) -> None:
    with atomic_open(path) as handle:
        handle.write(text)


def provenance_table(run_files: Iterable[str | Path]) -> pd.DataFrame:
    """What produced the runs: package versions, commit, device, dataset checksums; one
    row per distinct combination, with how many runs it covers."""
    rows: dict[tuple, dict[str, Any]] = {}
    for path in map(Path, run_files):
        info = json.loads(path.read_text())
        row = {
            "task": info["task"],
            "git_commit": info.get("git_commit"),
            "device": info.get("device", "cpu"),
            "dataset": (info.get("data") or {}).get("dataset") or "—",
            "dataset_sha256": info.get("dataset_sha256") or "—",
            "cache_sha256": info.get("cache_sha256") or "—",
            "versions": ", ".join(f"{k} {v}" for k, v in sorted(info["versions"].items())),
        }
        key = tuple(row.values())
        rows.setdefault(key, {**row, "runs": 0})["runs"] += 1
    return pd.DataFrame(list(rows.values()))


def hparams_table(run_files: Iterable[str | Path]) -> pd.DataFrame:
    """The optimizer settings each task × optimizer actually ran with (after overrides and
    any tuning selection), from the runs' own records."""
    rows: dict[tuple, dict[str, Any]] = {}
    for path in map(Path, run_files):
        info = json.loads(path.read_text())
        hparams = json.dumps(info.get("hparams", {}), sort_keys=True)
        key = (info["task"], info["optimizer"], hparams)
        rows.setdefault(key, {"task": key[0], "optimizer": key[1], "hparams": hparams, "seeds": 0})[
            "seeds"
        ] += 1
    return pd.DataFrame(list(rows.values()))


def settings_page(settings: dict[str, Any], hparams: pd.DataFrame) -> str:
    """The resolved configuration the runs used (after the scale preset), and the optimizer
    settings each run recorded (which include any tuning selection)."""
    text = html.escape(yaml.safe_dump(settings, sort_keys=False, allow_unicode=True))
    used = table_fragment(hparams, "Optimizer settings used (from each run's run.json)")
    scale = html.escape(str(settings.get("scale")))
    return html_page(
        "Settings",
        f"{used}{tuning_section(settings)}<h2>Configuration used (scale: {scale})</h2>"
        f"<pre>{text}</pre>",
    )


def tuning_section(settings: dict[str, Any]) -> str:
    """The tuning protocol of the run in words: grids, seeds, budget, selection rule."""
    grids = tuned_tasks(settings)
    if not grids:
        return "<h2>Tuning</h2><p>Off: every run used the configured hyper-parameters.</p>"
    tuning = settings.get("tuning") or {}
    metric = html.escape(str(tuning.get("metric", "val_loss")))
    items = "".join(
        f"<li>{html.escape(task)}: {html.escape(spoken_grid(grid))}, "
        f"{plural(grid['epochs'], 'epoch')} per point</li>"
        for task, grid in grids.items()
    )
    return (
        f"<h2>Tuning (the paper's protocol)</h2><ul>{items}</ul><p>Each point trains on the "
        f"tuning seeds {tuning_seeds(tuning)} and is scored by the mean of {metric} over them "
        "at its last log point, on the validation split (never the test set); a diverged "
        "seed scores +inf; the lowest score is selected (ties: the first point in grid "
        "order), and the seed-replicated runs of that optimizer train with its selected point "
        "(the table above shows what each run used).</p>"
    )


def _interval(mean: float, lo: float, hi: float) -> str:
    return f"{mean:.4g} [{lo:.4g}, {hi:.4g}]"


CONTEXT_COLUMNS = ["scale", "run_length", "shortened", "reductions"]


def claim_context(
    claims: pd.DataFrame, settings: dict[str, Any], records: list[dict[str, Any]]
) -> pd.DataFrame:
    """Each verdict's setting: the preset, the epochs or steps run against the task's full
    setting, whether that is shorter, and every reduction (other data, a subset), so that a
    smoke-run verdict never reads like a finding about the paper's setting."""
    tasks = settings.get("tasks", {})
    grids = {
        name: {"kind": "synthetic", "steps": grid["steps"], "paper": grid.get("paper")}
        for name, grid in settings.get("grids", {}).items()
    }
    rows = []
    for task, verdict in zip(claims["task"], claims["verdict"], strict=True):
        config = tasks.get(task) or grids.get(task)
        if config is None or verdict == NOT_RUN:  # no setting was run: none to state
            rows.append({"run_length": "", "shortened": False, "reductions": ""})
            continue
        mine = [r for r in records if r.get("task") == task]
        found = reduction(config, mine)
        rows.append(
            {"run_length": found.length, "shortened": found.shortened,
             "reductions": "; ".join(found.notes)}
        )  # fmt: skip
    context = pd.DataFrame(rows, index=claims.index).assign(scale=settings.get("scale", "?"))
    return pd.concat([claims, context[CONTEXT_COLUMNS]], axis=1)


def _setting(row: Any) -> str:
    reduced = f"; {row.reductions}" if row.reductions else ""
    return f"{row.scale}: {row.run_length}{reduced}" if row.run_length else str(row.scale)


def verdict_tag(row: Any) -> str:
    """``REPRODUCED``, or ``REPRODUCED, SHORTENED`` for a verdict the data decided on a run
    shorter than the task's full setting (a deterministic problem decides at any seed
    count, so a smoke run gives such verdicts): the tag a reader's eye lands on says it."""
    shortened = bool(getattr(row, "shortened", False)) and decided(row.verdict)
    return row.verdict.upper() + (", SHORTENED" if shortened else "")


def summary_text(
    claims: pd.DataFrame, finals: pd.DataFrame, paired: pd.DataFrame, ttt: pd.DataFrame
) -> str:
    """The claims with verdicts, then the paired comparisons, time-to-target and final
    values, as plain text for a terminal (the same numbers as the CSVs)."""
    scales = ", ".join(sorted(set(claims["scale"]))) if "scale" in claims else "?"
    lines = [f"Claims of Reddi, Kale & Kumar (ICLR 2018), checked at scale {scales}"]
    if "shortened" in claims and (claims["shortened"] | (claims["reductions"] != "")).any():
        lines.append(
            "A REDUCED run: verdicts marked SHORTENED, DATA or SUBSET describe that reduced "
            "setting, not the paper's."
        )
    lines.append("")
    for row in claims.itertuples(index=False):
        detail = ""
        if row.verdict != "not run":
            detail = (
                f"\n      {row.effect}: {_interval(row.estimate, row.lo, row.hi)}, "
                f"{row.n_seeds} seeds, claimed {row.threshold}; diverged: {row.diverged or '0'}"
            )
        lines.append(f"[{verdict_tag(row)}] {row.id} ({_setting(row)}): {row.claim}{detail}")
    lines += ["", "Paired comparisons, final values (candidate − baseline, same seeds):"]
    for row in paired[paired["statistic"] == FINAL].itertuples(index=False):
        lines.append(
            f"  {row.task:20s} {row.metric:18s} {row.candidate} − {row.baseline}: "
            f"{_interval(row.mean_diff, row.lo, row.hi)} n={row.n} "
            f"P(improvement)={row.p_improvement:.2f}{_moving(row.unsettled)}"
        )
    lines += ["", f"{TTT_TITLE}:"]
    for row in ttt.itertuples(index=False):
        reached = f"step {row.stays_from_step}" if row.reached else f"missed (budget {row.budget})"
        lines.append(
            f"  {row.task:20s} {row.optimizer:14s} {row.metric} → {row.target:g}: {reached}"
        )
    lines += ["", "Final and best values (mean [95% Student-t interval]):"]
    for row in finals.itertuples(index=False):
        lines.append(
            f"  {row.task:20s} {row.optimizer:14s} {row.statistic:5s} {row.metric:18s} "
            f"{_interval(row.mean, row.lo, row.hi)} n={row.n} diverged={row.diverged}"
        )
    return "\n".join(lines) + "\n"


def _moving(unsettled: int) -> str:
    """A paired line's note of the seeds left out because a run was still moving."""
    return f" ({unsettled} seeds unsettled, left out)" if unsettled else ""


def statistics_page(finals: pd.DataFrame, paired: pd.DataFrame, ttt: pd.DataFrame) -> str:
    """The tidy tables as one HTML page for the report."""
    sections = [
        (paired, "Paired comparisons (candidate − baseline, per seed)"),
        (ttt, TTT_TITLE),
        (finals, "Final and best values per task × optimizer"),
    ]
    return html_page("Statistics", "".join(table_fragment(f, t) for f, t in sections))


def time_to_target_table(aggregates: list[Path], targets: dict[str, Any]) -> pd.DataFrame:
    frames = [
        time_to_target(pd.read_csv(path), path.stem, targets[path.stem])
        for path in aggregates
        if path.stem in targets
    ]
    frames = [frame for frame in frames if not frame.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=TTT_COLUMNS)


def load_sensitivity(paths: Iterable[Path]) -> pd.DataFrame:
    """Per-seed robustness values of tuned tasks, as rows of the finals table."""
    frames = [pd.read_csv(path) for path in paths]
    frames = [frame.reindex(columns=FINALS_COLUMNS) for frame in frames if not frame.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=FINALS_COLUMNS)


def load_grids(paths: Iterable[Path], settings: dict[str, Any]) -> dict[str, Any]:
    """``{grid: GridData}`` of the given tables, each with its declaration from the
    resolved configuration (the grid's name is the table's folder)."""
    # here, not at the top: it loads numba (the grids' runner)
    from amsgrad_repro.synthetic.grids import read_table

    specs = catalogue(settings.get("plugins"))
    grids = {}
    for path in map(Path, paths):
        name = path.parent.name
        spec = grid_spec(name, settings["grids"][name], settings["seeds"], specs)
        grids[name] = GridData(spec, read_table(path))
    return grids


def analyse(
    run_files: list[Path],
    aggregates: list[Path],
    claims_path: Path,
    settings: dict[str, Any],
    out_dir: Path,
    sensitivity_files: Iterable[Path] = (),
    grid_tables: Iterable[Path] = (),
) -> pd.DataFrame:
    """Every table of the analysis stage, written under ``out_dir``; returns the claims.
    ``grid_tables`` are the grids' tables (``results/grids/<grid>/table.csv``) that the
    claims about grids read."""
    records = [json.loads(Path(path).read_text()) for path in run_files]
    finals = load_finals(run_files)
    robustness = load_sensitivity(sensitivity_files)
    if not robustness.empty:
        finals = pd.concat([finals, robustness], ignore_index=True)
    analysis = settings.get("analysis", {})
    finals_summary = finals_table(finals)
    paired = paired_table(finals, analysis.get("pairs", [["amsgrad", "adam"]]))
    ttt = time_to_target_table(aggregates, analysis.get("targets", {}))
    claims = evaluate_claims(
        load_claims(claims_path),
        finals,
        analysis.get("min_seeds", DEFAULT_MIN_SEEDS),
        load_grids(grid_tables, settings),
    )
    claims = claim_context(claims, settings, records)
    write_csv(out_dir / "finals.csv", finals_summary)
    write_csv(out_dir / "paired.csv", paired)
    write_csv(out_dir / "time_to_target.csv", ttt)
    write_csv(out_dir / "claims.csv", claims)
    write_text(out_dir / "claims.html", html_table(claims, "The paper's claims, checked"))
    write_text(out_dir / "statistics.html", statistics_page(finals_summary, paired, ttt))
    write_text(out_dir / "provenance.html", html_table(provenance_table(run_files), "Provenance"))
    write_text(out_dir / "summary.txt", summary_text(claims, finals_summary, paired, ttt))
    write_text(out_dir / "settings.html", settings_page(settings, hparams_table(run_files)))
    return claims

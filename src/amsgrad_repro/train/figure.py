"""Figure 2 style panels for a training task, and the samples of its final models.

Curves: one line per optimizer (the mean over seeds) with its 95% Student-t band, read from
the aggregate table (``results/aggregates/<task>.csv``); columns are the train and test
splits, rows the kind's quantities (a classifier: loss and accuracy; a VAE: the negative
ELBO and its reconstruction and KL terms). The title says what was run: dataset, model, α
schedule, betas, epochs and seeds; a red note says when the run is smaller than the task's
full setting (the ``paper`` block: fewer epochs, other data), cut to a subset, or some seeds
diverged, so a reduced run is never mistaken for the real one. A language model's panels
carry a second x-axis in tokens seen.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd

from amsgrad_repro.formatting import plural
from amsgrad_repro.kinds import SAMPLES, Samples
from amsgrad_repro.plots import (
    band_plot,
    footer,
    integer_iterations,
    legend_beside,
    legend_labels,
    message_panel,
    save_figure,
    styles_for,
    themed,
    titled,
)
from amsgrad_repro.reduction import reduction
from amsgrad_repro.summaries.aggregate import curve
from amsgrad_repro.train.text_samples import parse_page

SPLITS: tuple[tuple[str, str], ...] = (("train", "train"), ("test", "test"))
# Columns of the curve figure per task kind where they differ from SPLITS: the language
# model's validation plays are its held-out curve of record (the test plays beside it).
KIND_SPLITS: dict[str, tuple[tuple[str, str], ...]] = {
    "lm": (("train", "train"), ("val", "validation"), ("test", "test")),
}


def figure_splits(kind: str | None) -> tuple[tuple[str, str], ...]:
    """The (split, title) columns of a kind's curve figure."""
    return KIND_SPLITS.get(kind or "", SPLITS)


# Rows of the curve figure per task kind: (metric suffix, axis label).
ROWS: dict[str, tuple[tuple[str, str], ...]] = {
    "classifier": (("loss", "cross-entropy loss"), ("accuracy", "accuracy")),
    "vae": (
        ("loss", "negative ELBO (nats/image)"),
        ("recon", "reconstruction −log p(x|z)"),
        ("kl", "KL(q(z|x) ‖ N(0, I))"),
    ),
    "lm": (("bpc", "bits per character"),),
}
DEFAULT_ROWS: tuple[tuple[str, str], ...] = (("loss", "loss"),)
MAX_LISTED = 6  # diverged runs named one by one; more are counted per optimizer


def describe(task: Mapping[str, Any], seeds: int, common: str) -> str:
    """The run's setting; ``common`` is what every optimizer's recorded hyper-parameters
    share (plots.legend_labels), the rest is in each legend entry."""
    model = task.get("model", {}).get("arch", "?")
    shared = f", {common}" if common else ""
    if task.get("grad_clip_norm"):
        shared += f", ‖g‖ clipped at {task['grad_clip_norm']:g}"
    return (
        f"{model} on {task.get('dataset')}, batch {task.get('batch_size')}{shared}, "
        f"{plural(task.get('epochs', 0), 'epoch')}, {plural(seeds, 'seed')}"
    )


def warnings_line(task: Mapping[str, Any], records: Sequence[Mapping[str, Any]]) -> str:
    """What makes this run smaller or less complete than the configured experiment."""
    notes = list(reduction(task).notes)
    diverged = [r for r in records if r["status"] == "diverged"]
    if 0 < len(diverged) <= MAX_LISTED:
        runs = ", ".join(f"{r['optimizer']}/{r['seed']}" for r in diverged)
        notes.append(f"diverged (stopped early): {runs}")
    elif diverged:
        counts = {}
        for r in records:
            ran, stopped = counts.get(r["optimizer"], (0, 0))
            counts[r["optimizer"]] = (ran + 1, stopped + (r["status"] == "diverged"))
        per = ", ".join(f"{o} {d}/{n}" for o, (n, d) in counts.items() if d)
        notes.append(f"diverged (stopped early): {len(diverged)} of {len(records)} runs ({per})")
    return "; ".join(notes)


def tokens_per_step(settings: Mapping[str, Any]) -> int | None:
    """The tokens a language model's step trains on (batch × context predicted tokens),
    for its figure's second x-axis; None for the other kinds, whose steps are batches of
    images."""
    if settings.get("kind") != "lm":
        return None
    return int(settings["batch_size"]) * int(settings["model"]["context"])


def tokens_axis(ax, per_step: int) -> None:  # noqa: ANN001
    """A top x-axis in tokens seen (steps × tokens per step): a language model's budget
    is spoken of in tokens, and the steps alone hide a batch or context change."""
    top = ax.secondary_xaxis(
        "top", functions=(lambda step: step * per_step, lambda tokens: tokens / per_step)
    )
    top.set_xlabel(f"tokens seen ({per_step:,} per step)", fontsize=7)
    top.tick_params(labelsize=7)


def curve_rows(kind: str | None, metrics: Sequence[str]) -> list[tuple[str, str]]:
    """The kind's rows that the aggregate has data for (train or test)."""
    rows = ROWS.get(kind or "", DEFAULT_ROWS)
    present = set(metrics)
    splits = figure_splits(kind)
    kept = [row for row in rows if {f"{s}_{row[0]}" for s, _ in splits} & present]
    return kept or list(DEFAULT_ROWS)


def training_figure(
    task_name: str,
    aggregate: str | Path,
    settings: Mapping[str, Any],
    run_files: Sequence[str | Path],
    outputs: Sequence[str | Path],
    log_y: bool = False,
) -> None:
    table = pd.read_csv(aggregate)
    records = [json.loads(Path(p).read_text()) for p in run_files]
    fig = build_training_figure(task_name, table, settings, records, log_y)
    save_figure(fig, outputs)


def empty_panel_text(metric: str, records: Sequence[Mapping[str, Any]]) -> str:
    """What a panel without a finite value says: all runs diverged, or no such metric."""
    if records and all(r.get("status") == "diverged" for r in records):
        steps = sorted({r.get("diverged_at_step") for r in records} - {None})
        where = f" at steps {steps[0]}–{steps[-1]}" if len(steps) > 1 else ""
        where = f" at step {steps[0]}" if len(steps) == 1 else where
        return f"all {len(records)} runs diverged{where}\n(stopped early: nothing to plot)"
    return f"no {metric}"


def build_training_figure(
    task_name: str,
    table: pd.DataFrame,
    settings: Mapping[str, Any],
    records: Sequence[Mapping[str, Any]],
    log_y: bool = False,
):
    """The figure (returned open, for tests and :func:`training_figure` to save)."""
    themed()
    seeds = len({r["seed"] for r in records}) if records else int(table["n"].max())
    styles = styles_for(table["optimizer"].unique())
    common, labels = legend_labels(records)
    rows = curve_rows(settings.get("kind"), table["metric"].unique())
    splits = figure_splits(settings.get("kind"))
    per_step = tokens_per_step(settings)
    fig, axes = plt.subplots(
        len(rows), len(splits), figsize=(5.0 * len(splits), 3.3 * len(rows) + 0.5), squeeze=False
    )
    for r, (quantity, label) in enumerate(rows):
        for c, (split, split_label) in enumerate(splits):
            ax = axes[r][c]
            metric = f"{split}_{quantity}"
            data = curve(table, metric)
            ax.set_title(f"{split_label} {label}", fontsize=9)
            ax.set_xlabel("iteration")
            ax.set_ylabel(label, fontsize=8)
            if data.empty or not data["mean"].notna().any():
                message_panel(ax, empty_panel_text(metric, records))
                continue
            clipped = band_plot(ax, data, styles, labels)
            ax.set_title(titled(f"{split_label} {label}", clipped), fontsize=9)
            integer_iterations(ax)
            if per_step:
                tokens_axis(ax, per_step)
            if log_y and quantity != "accuracy":
                ax.set_yscale("log")
    title = (
        f"{task_name}: mean over seeds with 95% Student-t band\n{describe(settings, seeds, common)}"
    )
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    row = next((row for row in axes if any(ax.get_legend_handles_labels()[0] for ax in row)), None)
    if row is not None:
        legend_beside(fig, row, title="optimizer", fontsize=7)
    footer(fig, warnings_line(settings, records))
    return fig


def samples_figure(
    task_name: str,
    settings: Mapping[str, Any],
    run_files: Sequence[str | Path],
    outputs: Sequence[str | Path],
) -> None:
    """The samples of the first seed of each optimizer side by side, as the task's kind
    declares them (``kinds.SAMPLES``): image grids in a row of panels, or text pages in a
    row per optimizer (greedy beside the drawn continuation). The same seed means the same
    test images, prompt and random draws for every optimizer."""
    themed()
    samples = SAMPLES[settings["kind"]]
    records = [(Path(p), json.loads(Path(p).read_text())) for p in run_files]
    first: dict[str, tuple[Path, dict[str, Any]]] = {}
    for path, record in sorted(records, key=lambda item: item[1]["seed"]):
        first.setdefault(record["optimizer"], (path, record))
    order = [o for o in settings.get("optimizers", []) if o in first] or sorted(first)
    if not order:
        raise ValueError(f"{task_name}: no runs to show samples of")
    panels = [
        (_panel_title(o, *first[o][1:], samples), first[o][0].parent / samples.file) for o in order
    ]
    draw = {"image": _image_panels, "text": _text_panels}[samples.medium]
    fig, heading = draw(panels)
    seeds = len({r["seed"] for _, r in records})
    common = legend_labels([r for _, r in records])[0]
    fig.suptitle(
        f"{task_name}: {samples.title}{heading}\n{describe(settings, seeds, common)}",
        fontsize=9,
    )
    fig.tight_layout(rect=(0, 0, 1, 1 - HEADING_INCHES / fig.get_figheight()))
    footer(fig, warnings_line(settings, [r for _, r in records]))
    save_figure(fig, outputs)


HEADING_INCHES = 0.75  # the samples figure's three-line heading, kept clear of the panels


def _panel_title(optimizer: str, record: Mapping[str, Any], samples: Samples) -> str:
    """``<optimizer>, seed <s> [status]`` over the declared final score."""
    metric, label, spec = samples.score
    value = (record.get("final") or {}).get(metric)
    score = f"{label} {value:{spec}}" if isinstance(value, float) else ""
    status = "" if record["status"] == "completed" else f" [{record['status']}]"
    return f"{optimizer}, seed {record['seed']}{status}\n{score}"


def _image_panels(panels: Sequence[tuple[str, Path]]) -> tuple[plt.Figure, str]:
    """One image grid per optimizer, in a row."""
    from PIL import Image

    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 5.0), squeeze=False)
    for ax, (title, file) in zip(axes[0], panels, strict=True):
        image = Image.open(file)
        ax.imshow(image, cmap="gray" if image.mode == "L" else None, interpolation="nearest")
        ax.set_axis_off()
        ax.set_title(title, fontsize=8)
    return fig, ""


TEXT_COLUMNS = 64  # characters per line of a text panel (wrapped, newlines kept)
TEXT_LINE_INCHES = 0.12  # the height of a line of 6-point monospace text, and some leading


def _text_panels(panels: Sequence[tuple[str, Path]]) -> tuple[plt.Figure, str]:
    """A row per optimizer: its title, then each continuation of the page (the prompt,
    the same on every page, goes into the heading once)."""
    pages = [parse_page(file.read_text(encoding="utf-8")) for _, file in panels]
    (prompt_what, prompt), *_ = pages[0]
    texts = [[_wrapped(text) for _, text in page[1:]] for page in pages]
    columns = max(len(row) for row in texts)
    lines = [max(text.count("\n") + 1 for text in row) for row in texts]
    fig, axes = plt.subplots(
        len(panels),
        columns,
        figsize=(4.6 * columns, sum(TEXT_LINE_INCHES * n + 0.6 for n in lines) + 0.8),
        gridspec_kw={"height_ratios": [TEXT_LINE_INCHES * n + 0.6 for n in lines]},
        squeeze=False,
    )
    for (title, _), page, row, ax_row in zip(panels, pages, texts, axes, strict=True):
        for column, ax in enumerate(ax_row):
            ax.set_axis_off()
            if column >= len(row):
                continue
            ax.set_title(f"{title} · {page[column + 1][0]}", fontsize=7, loc="left")
            ax.text(0, 1, row[column], family="monospace", fontsize=6, va="top",
                    transform=ax.transAxes, parse_math=False)  # fmt: skip
    shown = _wrapped(prompt).replace("\n", " ⏎ ")
    return fig, f"\n{prompt_what}: {shown[: 2 * TEXT_COLUMNS]}…"


def _wrapped(text: str) -> str:
    """``text`` with each line broken at TEXT_COLUMNS characters, any character that is not
    printable (a tab, a carriage return, a control byte a model drew) shown as ``·`` so
    that each character takes one cell, and a run of more than two empty lines (a model
    that only draws newlines) shown as one ``[N empty lines]`` line."""
    shown = "".join(c if c == "\n" or c.isprintable() else "·" for c in text)
    lines = [
        line[i : i + TEXT_COLUMNS]
        for line in shown.split("\n")
        for i in range(0, max(len(line), 1), TEXT_COLUMNS)
    ]
    kept: list[str] = []
    empty = 0
    for line in [*lines, None]:  # None: the end, which flushes a last run
        if line == "":
            empty += 1
            continue
        kept += [""] * empty if empty <= 2 else [f"[{empty} empty lines]"]
        empty = 0
        if line is not None:
            kept.append(line)
    return "\n".join(kept)

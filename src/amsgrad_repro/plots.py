"""Shared seaborn plotting: mean curves with 95% Student-t bands, saved as PNG and PDF.

Every optimizer gets a colour, a line style and a marker (:func:`optimizer_styles`), so
that curves which coincide (the paper-form ``adam`` and ``amsgrad`` in the first epochs,
``torch-adam`` and ``torch-amsgrad``) stay visible and tell apart in the legend; iteration
axes get integer ticks; a panel whose runs all diverged says so instead of staying empty.
A band is clipped to what its metric can be (``metric_ranges``) and the panel says where;
legends sit beside the panels (:func:`legend_beside`), never on one; notes under a figure
wrap at its width (:func:`footer`) instead of widening it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from amsgrad_repro.io import atomic_open  # noqa: E402
from amsgrad_repro.metric_ranges import metric_range  # noqa: E402
from amsgrad_repro.optimizers import BUILTINS
from amsgrad_repro.optimizers.labels import run_label_parts

LINESTYLES = ("-", "--", "-.", ":")
MARKERS = ("o", "s", "^", "D", "v", "P", "X")
GREY = 7  # the colour-blind palette's grey is left to reference lines
MARKS_PER_LINE = 8
DPI = 150  # of the PNGs


def colours() -> list[tuple[float, float, float]]:
    """18 distinct colours: seaborn's colour-blind palette, then its dark one, both without
    their grey (reference lines are grey)."""
    return [
        colour
        for name in ("colorblind", "dark")
        for i, colour in enumerate(sns.color_palette(name, 10))
        if i != GREY
    ]


@dataclass(frozen=True)
class Style:
    """How one optimizer is drawn in every figure; ``index`` is its place in the list the
    styles were derived from (it staggers the markers of coinciding curves)."""

    colour: tuple[float, float, float]
    linestyle: str
    marker: str
    index: int


def optimizer_styles(names: Sequence[str]) -> dict[str, Style]:
    """A stable style per name from the ordered list ``names``: the i-th name gets colour
    i mod 18, line style i mod 4 and marker i mod 7, so neighbours differ in all three and
    no two of the first 252 names share all three (15+ optimizers are no problem). Pass the
    same list
    everywhere (:func:`style_order`) and a name looks the same in every figure."""
    palette = colours()
    return {
        name: Style(
            colour=tuple(palette[i % len(palette)]),
            linestyle=LINESTYLES[i % len(LINESTYLES)],
            marker=MARKERS[i % len(MARKERS)],
            index=i,
        )
        for i, name in enumerate(dict.fromkeys(names))
    }


def optimizer_order() -> list[str]:
    """The catalogue's order (``optimizers.BUILTINS``): legends and styles follow it."""
    return list(BUILTINS)


def ordered(optimizers: Sequence[str]) -> list[str]:
    """Distinct names in catalogue order, plug-ins after the built-ins by name."""
    order = optimizer_order()
    rank = {name: i for i, name in enumerate(order)}
    return sorted(set(optimizers), key=lambda n: (rank.get(n, len(order)), n))


def style_order(present: Sequence[str]) -> list[str]:
    """Every optimizer the catalogue knows, in its order, then any other name present
    (sorted): the list to derive styles from, the same for every figure."""
    known = optimizer_order()
    return known + sorted(set(present) - set(known))


def styles_for(present: Sequence[str]) -> dict[str, Style]:
    """The styles of the optimizers in one figure, consistent with every other figure."""
    return optimizer_styles(style_order(present))


def legend_labels(records: Sequence[dict]) -> tuple[str, dict[str, str]]:
    """What the runs' recorded hyper-parameters have in common (for a title) and what is
    particular to each optimizer (for its legend entry), e.g. ``("α=0.5/√t, β1=0.9",
    {"adopt": "adopt (β2=0.9999, ε=1e-06)", ...})``. Read from the runs, not the config,
    so tuned or overridden values show as they were run."""
    parts: dict[str, dict[str, str]] = {}
    for record in records:
        parts.setdefault(
            record["optimizer"], run_label_parts(record["optimizer"], record.get("hparams") or {})
        )
    if not parts:
        return "", {}
    shared = (
        set.intersection(*(set(p.items()) for p in parts.values())) if len(parts) > 1 else set()
    )
    first = next(iter(parts.values()))
    common = ", ".join(text for key, text in first.items() if (key, text) in shared)
    labels = {}
    for name, own in parts.items():
        rest = ", ".join(text for key, text in own.items() if (key, text) not in shared)
        labels[name] = f"{name} ({rest})" if rest else name
    return common, labels


def clipped_band(metric: str, lo: Sequence[float], hi: Sequence[float]):  # noqa: ANN201
    """``(lo, hi, note)``: the band clipped to the metric's range, and which bounds it
    crossed (``"band clipped at 1"``; empty when it crossed none)."""
    low, high = metric_range(metric)
    lo, hi = np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)
    crossed = [f"{b:g}" for b, hit in ((low, np.any(lo < low)), (high, np.any(hi > high))) if hit]
    note = f"band clipped at {' and '.join(crossed)}" if crossed else ""
    return np.clip(lo, low, high), np.clip(hi, low, high), note


def band_plot(
    ax: plt.Axes,
    curves: pd.DataFrame,
    styles: dict[str, Style],
    labels: dict[str, str] | None = None,
) -> str:
    """One line per optimizer (the mean over seeds) with its 95% Student-t band, in
    catalogue order; markers are staggered per optimizer so that identical curves still
    show each one. The bands of one metric (``curves``: one ``metric``) are clipped to its
    range; returns the note saying so, for the panel's title ("" if none was)."""
    metrics = set(curves["metric"]) if "metric" in curves else set()
    if len(metrics) > 1:
        raise ValueError(f"band_plot draws one metric per panel, got {sorted(metrics)}")
    lo, hi, note = clipped_band(next(iter(metrics), ""), curves["lo"], curves["hi"])
    curves = curves.assign(lo=lo, hi=hi)
    groups = dict(tuple(curves.groupby("optimizer", sort=False)))
    for optimizer in ordered(list(groups)):
        group = groups[optimizer]
        style = styles[optimizer]
        spacing = 1.0 / MARKS_PER_LINE
        offset = (style.index * 0.37 * spacing) % spacing
        ax.plot(
            group["step"],
            group["mean"],
            label=(labels or {}).get(optimizer, optimizer),
            color=style.colour,
            linestyle=style.linestyle,
            marker=style.marker,
            markevery=(offset, spacing),
            markersize=4,
            markerfacecolor="none",
            lw=1.4,
        )
        ax.fill_between(
            group["step"], group["lo"], group["hi"], color=style.colour, alpha=0.2, lw=0
        )
    return note


def titled(title: str, note: str) -> str:
    """A panel title with a band's clipping note on a line of its own."""
    return f"{title}\n({note})" if note else title


def legend_beside(
    fig: plt.Figure,
    panels: Sequence[plt.Axes],
    anchor: plt.Axes | None = None,
    **options,  # noqa: ANN003
) -> None:
    """The legend of the curves in ``panels``, as a figure legend to the right of
    ``anchor`` (default: the last of ``panels``; the last panel of their row), its top
    level with the anchor's: outside every panel, so it hides no curve
    (``bbox_inches="tight"`` widens the image for it). Call after the layout is final."""
    entries: dict[str, Any] = {}  # label -> handle, the first panel's for a shared label
    for ax in panels:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            entries.setdefault(label, handle)
    if not entries:
        return
    box = (anchor or panels[-1]).get_position()
    fig.legend(
        list(entries.values()),
        list(entries),
        loc="upper left",
        bbox_to_anchor=(box.x1 + 0.01, box.y1),
        bbox_transform=fig.transFigure,
        borderaxespad=0.0,
        **options,
    )


def footer(fig: plt.Figure, text: str, colour: str = "firebrick", fontsize: float = 8) -> None:
    """A note under the panels, centred on them, its lines broken between words at the
    width the panels and their labels take, so that a long note adds lines, never width
    (``bbox_inches="tight"`` crops the image to its content). Call after the layout is
    final."""
    if not text:
        return
    renderer = fig.canvas.get_renderer()
    boxes = [ax.get_tightbbox(renderer) for ax in fig.axes if ax.get_visible()]
    left = max(min(box.x0 for box in boxes), 0.0)
    right = min(max(box.x1 for box in boxes), fig.bbox.width)
    bottom = min(box.y0 for box in boxes) - 0.5 * fontsize * fig.dpi / 72  # half a line
    note = fig.text(
        (left + right) / 2 / fig.bbox.width,
        bottom / fig.bbox.height,
        "",
        ha="center",
        va="top",
        color=colour,
        fontsize=fontsize,
    )
    limit = 0.95 * (right - left)  # a margin for text metrics at the saving dpi
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split(" "):
            note.set_text(f"{line} {word}".strip())
            if line and note.get_window_extent(renderer).width > limit:
                lines.append(line)
                line = word
            else:
                line = f"{line} {word}".strip()
        lines.append(line)
    note.set_text("\n".join(lines))


def integer_iterations(ax: plt.Axes) -> None:
    """Iteration counts are integers: no 2.5-th step on a short run's axis."""
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def message_panel(ax: plt.Axes, text: str, alarming: bool = True) -> None:
    """A panel with nothing to draw says why, in the middle of the axes."""
    ax.text(
        0.5,
        0.5,
        text,
        ha="center",
        va="center",
        transform=ax.transAxes,
        color="firebrick" if alarming else "dimgray",
        fontsize=9,
        wrap=True,
    )
    ax.set_xticks([])
    ax.set_yticks([])


def save_figure(fig: plt.Figure, outputs: Sequence[str | Path]) -> None:
    """Write the figure to each path (format from the suffix), atomically."""
    for path in map(Path, outputs):
        with atomic_open(path, "wb") as handle:
            fig.savefig(handle, format=path.suffix.lstrip("."), bbox_inches="tight", dpi=DPI)
    plt.close(fig)


def themed() -> None:
    sns.set_theme(context="paper", style="whitegrid")

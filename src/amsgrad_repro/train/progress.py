"""Progress output: a tqdm bar on a terminal, one concise line per epoch in job logs.

The bar is updated once per step from the host (no device sync); loss values are only
shown at log points, when the engine has synced anyway.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

from tqdm import tqdm


def interactive(stream: TextIO | None = None) -> bool:
    stream = stream or sys.stderr
    return hasattr(stream, "isatty") and stream.isatty()


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _format_metrics(row: Mapping[str, Any], names: list[str]) -> str:
    return " ".join(f"{name} {row[name]:.4g}" for name in names if name in row)


class Progress:
    """Per-epoch lines on ``stream`` (stdout: the Snakemake log) and an optional bar."""

    def __init__(
        self,
        label: str,
        total_steps: int,
        start_step: int,
        bar: bool,
        stream: TextIO | None = None,
        show: tuple[str, ...] = ("train_loss", "test_loss", "test_accuracy"),
    ) -> None:
        self.label = label
        self.total_steps = total_steps
        self.stream = stream or sys.stdout  # looked up now: tests and loggers swap it
        self.show = list(show)
        self.epoch_started = time.perf_counter()
        self.epoch_start_step = start_step
        self.run_started = self.epoch_started
        self.run_start_step = start_step
        self.bar = None
        if bar:
            self.bar = tqdm(total=total_steps, initial=start_step, desc=label, leave=False)

    def step(self, count: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(count)

    def log_point(self, row: Mapping[str, Any]) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(_format_metrics(row, self.show[:2]), refresh=False)

    def epoch_end(self, epoch: int, epochs: int, step: int, row: Mapping[str, Any]) -> None:
        now = time.perf_counter()
        rate = (step - self.epoch_start_step) / max(now - self.epoch_started, 1e-9)
        overall = (step - self.run_start_step) / max(now - self.run_started, 1e-9)
        eta = (self.total_steps - step) / max(overall, 1e-9)
        line = (
            f"{self.label} epoch {epoch}/{epochs} step {step}/{self.total_steps} "
            f"{_format_metrics(row, self.show)} | {rate:.3g} steps/s | "
            f"elapsed {_duration(now - self.run_started)} ETA {_duration(eta)}"
        )
        self.write(line)
        self.epoch_started, self.epoch_start_step = now, step

    def write(self, line: str) -> None:
        if self.bar is not None:
            self.bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

"""When a training run writes a metrics row and when it evaluates its held-out sets.

The running train loss is cheap to log (it is summed on the device anyway); evaluating
the validation and test sets costs about as much as training a logistic regression, so
the two have separate periods: ``log_every`` steps for train rows, ``eval_every`` steps for
evaluations (default: ``log_every``), 0 meaning epoch ends only. Every epoch end logs and
evaluates; a row written between evaluations leaves the held-out columns empty.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class LogSchedule:
    log_every: int
    eval_every: int

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> LogSchedule:
        log_every = int(settings.get("log_every") or 0)
        eval_every = settings.get("eval_every")
        return cls(log_every, log_every if eval_every is None else int(eval_every))

    def evaluates(self, step: int, epoch_end: bool) -> bool:
        return epoch_end or bool(self.eval_every and step % self.eval_every == 0)

    def logs(self, step: int, epoch_end: bool) -> bool:
        periodic = bool(self.log_every and step % self.log_every == 0)
        return periodic or self.evaluates(step, epoch_end)

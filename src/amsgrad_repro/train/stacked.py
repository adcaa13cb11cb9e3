"""Many runs in one model: the members of a stacked job train together.

A stacked job trains several *members* of one task × optimizer (same model, data and
optimizer; different seeds and, for a native optimizer, different tunable
hyper-parameters: the points of a tuning grid) as one :class:`StackedNetwork`. Every
member keeps exactly what a separate run of it has:

- its initial weights (its model is built right after ``torch.manual_seed(seed)``, as a
  separate run builds it) and its batch order (its own generator, seeded as a separate
  run's), so it sees the same batches in the same order;
- its own folder with ``metrics.csv``, ``run.json`` (which records the job's members) and
  ``checkpoint.pt`` (its weights in the module's own layout);
- its own outcome: a member whose loss is non-finite at a log point is recorded
  ``diverged`` at that step and frozen (it leaves the stack, its state kept), while the
  others go on.

Per step there is one forward, one backward and one optimizer step for all members, and
no host sync; the job checkpoints every epoch and resumes bit-identically after a kill.
Numerically a member equals its separate run up to the summation order of batched
matrix products: tested over two epochs for every built-in optimizer to 1e-12 relative in
float64 (``performance.dtype``) and in float32 to ten times the rounding the separate run
itself shows (tests/test_stacked.py derives both).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from amsgrad_repro.io import provenance, write_csv, write_json
from amsgrad_repro.optimizers import hparams, task_settings
from amsgrad_repro.optimizers.schedules import lr_factor, with_horizon
from amsgrad_repro.optimizers.torch_optimizer import build
from amsgrad_repro.run_settings import job_settings
from amsgrad_repro.settings_base import deep_merge
from amsgrad_repro.train.batches import _derived_seed
from amsgrad_repro.train.clipping import clipper
from amsgrad_repro.train.device import autocast, synchronize
from amsgrad_repro.train.engine import (
    MemberState,
    RunningMeans,
    TrainingJob,
    _atomic_binary,
    run_record,
    update,
    wide,
)
from amsgrad_repro.train.models.stacked import StackedNetwork
from amsgrad_repro.train.progress import Progress
from amsgrad_repro.train.runlock import run_lock


@dataclass(frozen=True)
class Member:
    """One run of a stacked job: its seed, output folder and any tunable hyper-parameters
    of its own (a tuning grid point's ``{"lr": ..., "beta2": ...}``)."""

    seed: int
    out_dir: Path
    hparams: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class StackedRequest:
    """One stacked job: a task × optimizer and its members."""

    task: str
    optimizer: str
    members: list[Member]
    settings: Mapping[str, Any]
    dataset_cache: Path
    checkpoint_dir: Path
    device: str = "auto"
    progress_bar: bool = False
    plugins: Mapping[str, Any] = field(default_factory=dict)
    lock_wait_s: float = 0.0  # how long to wait for another trainer of the same job


def member_values(
    spec: Any,
    task: str,
    settings: Mapping[str, Any],
    members: Sequence[Member],
    total_steps: int = 0,
):
    """Each member's resolved optimizer settings (a warmup_* schedule's horizon set to
    ``total_steps``), the settings the job builds its optimizer with (the first member's)
    and ``{field: tensor of per-member values}`` for the tunable fields in which members
    differ. Members differing in anything else, or in anything at all for an optimizer
    that cannot take per-member values, are an error."""
    resolved = [
        with_horizon(
            task_settings(spec, task, deep_merge(settings, {"overrides": {spec.name: m.hparams}})),
            total_steps,
        )
        for m in members
    ]
    rules = hparams.rules(type(resolved[0]))
    differing = {
        f.name
        for f in fields(resolved[0])
        if any(getattr(r, f.name) != getattr(resolved[0], f.name) for r in resolved)
    }
    for name in differing:
        if not rules[name].tunable:
            raise ValueError(f"members of a stacked job differ in {name}, which is not tunable")
    if differing and spec.native is None:
        raise ValueError(f"{spec.name} cannot take per-member hyper-parameters ({differing})")
    per_member = {
        name: torch.tensor([float(getattr(r, name)) for r in resolved], dtype=torch.float64)
        for name in sorted(differing)
    }
    return resolved, resolved[0], per_member


class StackedTrainer(TrainingJob):
    """State and loop of a stacked job; ``run()`` writes every member's outputs."""

    def __init__(self, request: StackedRequest) -> None:
        super().__init__(request)
        if not self.kind.stackable:
            raise ValueError(f"task kind {self.kind.name!r} cannot be stacked")
        self.member_settings, settings, self.per_member = member_values(
            self.spec, request.task, self.settings, request.members, self.total_steps
        )
        self.states = [
            MemberState(m.seed, hparams.as_record(s), [])
            for m, s in zip(request.members, self.member_settings, strict=True)
        ]
        self.active = list(range(len(request.members)))
        self.frozen: dict[int, dict[str, Any]] = {}
        self._build(settings)

    # --- set-up -------------------------------------------------------------------------

    def _build(self, settings: Any) -> None:
        models = []
        for member in self.request.members:
            torch.manual_seed(member.seed)
            models.append(self.kind.build_model(self.settings, self.data.meta))
        self.model = StackedNetwork.from_models(models).to(self.device, self.dtype)
        self.optimizer_settings = settings
        self._build_optimizer()
        self.order_gens = [
            torch.Generator().manual_seed(_derived_seed(m.seed, 1)) for m in self.request.members
        ]

    def _build_optimizer(self) -> None:
        members = {k: v[self.active].to(self.device) for k, v in self.per_member.items()}
        self.optimizer, self.scheduler = build(
            self.spec, self.model.parameters(), self.optimizer_settings, members=members or None
        )
        self.clip = clipper(self.settings, list(self.model.parameters()), stacked=True)

    def own_identity(self) -> dict[str, Any]:
        return {
            "members": [(m.seed, dict(m.hparams)) for m in self.request.members],
            "hparams": [s.hparams for s in self.states],
        }

    # --- freezing a member --------------------------------------------------------------

    def freeze(self, positions: Sequence[int]) -> list[int]:
        """Take the members at these positions of the active stack out of it: their
        weights and optimizer state are kept for their outputs, the rest trains on.
        Returns the positions kept."""
        for position in positions:
            index = self.active[position]
            self.frozen[index] = self._member_snapshot(position)
        keep = [p for p in range(len(self.active)) if p not in set(positions)]
        old = self.optimizer.state_dict()
        scheduler = self.scheduler.state_dict() if self.scheduler else None
        self.model = self.model.select(keep)
        self.active = [self.active[p] for p in keep]
        if not self.active:
            return keep
        self._build_optimizer()
        self.optimizer.load_state_dict(_slice_state(old, keep, len(keep) + len(positions)))
        if self.scheduler is not None:
            self.scheduler.load_state_dict(scheduler)
        return keep

    def _member_snapshot(self, position: int) -> dict[str, Any]:
        state = self.optimizer.state_dict()["state"]
        params = list(self.model.parameters())
        optimizer = {
            f"param{i}": {
                k: StackedNetwork.member_tensor(v, position)
                if isinstance(v, torch.Tensor) and v.dim() and v.shape[0] == len(self.active)
                else v
                for k, v in state.get(i, {}).items()
                if k != "carry"
            }
            for i in range(len(params))
        }
        return {
            "model": self.model.member_state_dict(position),
            "optimizer": optimizer,
            "step": self.step,
            "epoch": self.epoch,
        }

    # --- checkpoint ---------------------------------------------------------------------

    def own_state(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict() if self.active else None,
            "scheduler": self.scheduler.state_dict() if self.scheduler else None,
            "order_gens": [g.get_state() for g in self.order_gens],
            "states": self.states,
            "active": self.active,
            "frozen": self.frozen,
        }

    def restore_own_state(self, state: Mapping[str, Any]) -> None:
        keep = state["active"]
        if keep != self.active:
            self.model = self.model.select(keep)
            self.active = list(keep)
            self._build_optimizer()
        self.model.load_state_dict(state["model"])
        if state["optimizer"] is not None:
            self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        for generator, saved in zip(self.order_gens, state["order_gens"], strict=True):
            generator.set_state(saved)
        self.states, self.frozen = state["states"], state["frozen"]

    # --- evaluation and logging ---------------------------------------------------------

    @torch.no_grad()
    def evaluate(self, split: str) -> dict[str, torch.Tensor]:
        """Per-member means over a whole evaluation set (one batch feeds every member)."""
        x_all, y_all = self.inputs.evals[split]
        sums: dict[str, torch.Tensor] = {}
        for start in range(0, x_all.shape[0], self.eval_batch_size):
            x = self.inputs.transform(x_all[start : start + self.eval_batch_size], False, None)
            y = y_all[start : start + self.eval_batch_size]
            with autocast(self.device, self.performance):
                loss, extras = self.kind.member_losses(self.model(x, shared=True), y)
            for name, value in {"loss": loss, **extras}.items():
                sums[name] = sums.get(name, 0.0) + wide(value) * x.shape[0]
        return {f"{split}_{name}": total / x_all.shape[0] for name, total in sums.items()}

    def log_point(self, running: RunningMeans, evaluate: bool) -> list:
        """Read the running sums back (one host sync) and append each active member's row;
        returns the positions (in the active stack) of members that diverged."""
        values = running.means()
        if evaluate:
            for split in self.splits.evals:
                values.update(self.evaluate(split))
        names = list(values)
        table = torch.stack([wide(values[n]) for n in names], dim=1).cpu().tolist()
        synchronize(self.device)
        wall = self.elapsed + (time.perf_counter() - self._started)
        diverged = []
        splits = ("train", *self.splits.evals) if evaluate else ("train",)
        for position, numbers in enumerate(table):
            index = self.active[position]
            row = {"step": self.step, "epoch": round(self.step / self.steps_per_epoch, 6)}
            row.update(zip(names, numbers, strict=True))
            settings = self.member_settings[index]
            row["lr"] = settings.lr * lr_factor(settings, self.step)
            row["wall_time"] = wall
            member = self.states[index]
            member.rows.append({c: row.get(c, math.nan) for c in self.columns})
            computed = {k: v for k, v in row.items() if k.split("_")[0] in splits}
            member.diverged_reason = self.divergence.reason(computed, member.initial_loss)
            if member.diverged_reason:
                member.status, member.diverged_at = "diverged", self.step
                member.steps, member.epochs = self.step, self.epoch
                diverged.append(position)
        return diverged

    # --- the loop -----------------------------------------------------------------------

    def train_epoch(self, progress: Progress) -> bool:
        """One pass over the training set for every active member; False once every
        member has diverged."""
        if not self.active:
            return False
        size = self.splits.sizes["train"]
        orders = torch.stack(
            [torch.randperm(size, generator=self.order_gens[i]) for i in self.active]
        ).to(self.device)
        orders = self.splits.train_index[orders]
        running = RunningMeans()
        for b in range(self.steps_per_epoch):
            index = orders[:, b * self.batch_size : (b + 1) * self.batch_size]
            flat = index.flatten()
            # index_select: a plain gather, several times faster than advanced indexing.
            images = self.inputs.train_x.index_select(0, flat)
            x = self.inputs.transform(images.view(*index.shape, *images.shape[1:]), True, None)
            y = self.data.train_y.index_select(0, flat).view(index.shape)
            with autocast(self.device, self.performance):
                loss, extras = self.kind.member_losses(self.model(x), y)
            if self.states[self.active[0]].initial_loss is None:  # one sync, first step
                for position, value in enumerate(loss.detach().tolist()):
                    self.states[self.active[position]].initial_loss = value
            update(self.optimizer, self.scheduler, loss.sum(), self.clip)
            running.add({"loss": loss, **extras}, index.shape[1])
            self.step += 1
            progress.step()
            last = b == self.steps_per_epoch - 1
            if self.schedule.logs(self.step, last):
                evaluate = self.schedule.evaluates(self.step, last)
                diverged = self.log_point(running, evaluate)
                progress.log_point(self.states[self.active[0]].rows[-1])
                running = RunningMeans()
                if diverged:
                    seeds = [self.request.members[self.active[p]].seed for p in diverged]
                    progress.write(f"seeds {seeds}: diverged at step {self.step}, frozen")
                    keep = self.freeze(diverged)
                    if not self.active:
                        return False
                    orders = orders[keep]
        return True

    def label(self) -> str:
        seeds = ",".join(str(m.seed) for m in self.request.members)
        return f"{self.request.task}/{self.request.optimizer}/[{seeds}]"

    def latest_row(self) -> dict[str, float]:
        return self.states[self.active[0]].rows[-1]

    # --- outputs ------------------------------------------------------------------------

    def write_outputs(self) -> list[dict[str, Any]]:
        import pandas as pd

        for position in range(len(self.active)):
            self.frozen[self.active[position]] = self._member_snapshot(position)
        meta = provenance()
        seeds = [m.seed for m in self.request.members]
        records = []
        for index, member in enumerate(self.request.members):
            out = Path(member.out_dir)
            state = self.states[index]
            write_csv(out / "metrics.csv", pd.DataFrame(state.rows, columns=self.columns))
            final = {**self.frozen[index], "seed": member.seed, "settings": self.settings}
            with _atomic_binary(out / "checkpoint.pt") as handle:
                torch.save(final, handle)
            record = {**run_record(self, state, []), **meta}
            # The member's own settings, as a separate run of it would be given them (a
            # tuning point's α and β2 included): what the check of pulled runs compares.
            own = deep_merge(self.settings, {"overrides": {self.spec.name: member.hparams}})
            record["settings"] = job_settings(self.request.task, own, self.spec)
            record["stacked"] = {
                "members": seeds,
                "member_hparams": [dict(m.hparams) for m in self.request.members],
            }
            write_json(out / "run.json", record)
            records.append(record)
        self.checkpoint_path.unlink(missing_ok=True)
        return records


def _slice_state(state: dict[str, Any], keep: Sequence[int], members: int) -> dict[str, Any]:
    """An optimizer ``state_dict`` with every per-member value cut to the ``keep`` rows."""
    index = torch.as_tensor(list(keep))

    def cut(value: Any) -> Any:
        if isinstance(value, torch.Tensor) and value.dim() and value.shape[0] == members:
            return value[index.to(value.device)].clone()
        if isinstance(value, tuple):
            return tuple(cut(v) for v in value)
        return value

    return {
        "state": {p: {k: cut(v) for k, v in s.items()} for p, s in state["state"].items()},
        "param_groups": state["param_groups"],
    }


def train_stacked(request: StackedRequest) -> list[dict[str, Any]]:
    """Run (or resume) one stacked job and write every member's outputs, holding the job's
    lock (``train.runlock``) so that a second trainer of it never runs alongside."""
    with run_lock(request.checkpoint_dir, request.lock_wait_s):
        return StackedTrainer(request).run()

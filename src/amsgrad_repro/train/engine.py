"""The training loop every neural task runs (kinds plug in through ``train.api``).

Why it looks the way it does:

- Speed: the dataset sits on the device as uint8 tensors; a batch is a gather by index plus
  the kind's batched transform. Per step there is no host sync: the running train loss and
  metrics are summed on the device and read back only at log points (every ``log_every``
  steps and at each epoch end), where the test and validation sets are evaluated too.
- Fair comparisons: the seed alone fixes the initial weights (the model is built right after
  ``torch.manual_seed(seed)``, before the optimizer exists), the batch order (a CPU
  ``torch.Generator``, so CPU and GPU runs see the same order) and the kind's randomness
  (augmentation, VAE noise), so every optimizer starts from the same point and sees the same
  batches. On CPU, the same seed gives bit-identical metrics.
- Robustness: a checkpoint with model, optimizer, RNG states and the metrics so far is
  written after every epoch outside the declared outputs; a rerun resumes from it and ends
  with the same results as an uninterrupted run. A non-finite loss, or one far above the
  initial loss (``train.divergence``), stops the run, which is recorded as ``diverged``
  (exit status 0, so the pipeline carries on).
"""

from __future__ import annotations

import math
import os
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from amsgrad_repro.data import load_cache
from amsgrad_repro.io import atomic_open, provenance, write_csv, write_json
from amsgrad_repro.optimizers import catalogue, hparams, task_settings
from amsgrad_repro.optimizers.schedules import lr_factor, with_horizon
from amsgrad_repro.optimizers.torch_optimizer import build
from amsgrad_repro.run_settings import NOT_IDENTITY  # what does not change a run's numbers
from amsgrad_repro.train import checkpoint
from amsgrad_repro.train.api import TaskKind, load_kind, metric_columns
from amsgrad_repro.train.batches import BatchSource, ModelInputs, Splits, _derived_seed
from amsgrad_repro.train.clipping import clipper
from amsgrad_repro.train.device import (
    autocast,
    compute_dtype,
    configure_backends,
    device_description,
    performance_options,
    resolve_device,
    synchronize,
)
from amsgrad_repro.train.divergence import DivergenceRule
from amsgrad_repro.train.progress import Progress
from amsgrad_repro.train.runlock import run_lock
from amsgrad_repro.train.schedule import LogSchedule
from amsgrad_repro.train.spikes import SPIKE_METRIC, SpikeRule

# Test hook: SIGKILL the process right after the checkpoint of this (1-based) epoch, to
# test resumption with a real kill rather than a simulated one.
KILL_AFTER_EPOCH_ENV = "AMSGRAD_REPRO_TEST_KILL_AFTER_EPOCH"
EVAL_SEED_OFFSET = 7  # the kinds' evaluation randomness (VAE noise) uses its own stream


@dataclass
class RunRequest:
    """One job: task × optimizer × seed, with the task's resolved settings."""

    task: str
    optimizer: str
    seed: int
    settings: Mapping[str, Any]
    dataset_cache: Path
    out_dir: Path
    checkpoint_dir: Path
    device: str = "auto"
    progress_bar: bool = False
    plugins: Mapping[str, Any] = field(default_factory=dict)  # plug-in declarations
    lock_wait_s: float = 0.0  # how long to wait for another trainer of the same run


def wide(value: torch.Tensor) -> torch.Tensor:
    """A metric as the float the sums keep: float32, or float64 in a float64 run (so that
    its metrics are not rounded to float32)."""
    return value if value.dtype == torch.float64 else value.float()


class RunningMeans:
    """Batch metrics summed on the device between two log points, so that no step syncs
    with the host: a 0-d tensor per metric for one run, a value per member for a stacked
    job."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.count = 0

    def add(self, metrics: Mapping[str, torch.Tensor], batch: int) -> None:
        for name, value in metrics.items():
            self.sums[name] = self.sums.get(name, 0.0) + wide(value.detach()) * batch
        self.count += batch

    def means(self) -> dict[str, torch.Tensor]:
        """The interval's ``train_<metric>`` means."""
        return {f"train_{name}": total / self.count for name, total in self.sums.items()}


def update(
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    objective: torch.Tensor,
    clip: Callable[[], None] | None = None,
) -> None:
    """The one parameter update per batch of every training loop (single and stacked),
    with the task's gradient clipping (``train.clipping``) between backward and step."""
    optimizer.zero_grad(set_to_none=True)
    objective.backward()
    if clip is not None:
        clip()
    optimizer.step()
    if scheduler is not None:
        scheduler.step()


class TrainingJob:
    """What a single run and a stacked job share: the task kind, the device and its speed
    switches, the dataset resident on the device with its splits and model inputs, the
    batch, log and divergence rules, the optimizer's declaration, the metrics columns, the
    progress counters and the checkpoint's place and identity."""

    def __init__(self, request: Any) -> None:

        self.request = request
        self.settings = dict(request.settings)
        self.kind: TaskKind = load_kind(self.settings["kind"])
        self.device = resolve_device(request.device)
        self.performance = performance_options(self.settings)
        self.dtype = compute_dtype(self.performance)
        configure_backends(self.device, self.performance)
        self.data = load_cache(request.dataset_cache, device=str(self.device))
        self.batch_size = int(self.settings["batch_size"])
        self.epochs = int(self.settings["epochs"])
        self.source: BatchSource = self.kind.batch_source(
            self.data, self.settings, self.device, self.dtype, self.performance
        )
        self.schedule = LogSchedule.from_settings(self.settings)
        self.divergence = DivergenceRule.from_settings(self.settings)
        self.eval_batch_size = int(self.settings.get("eval_batch_size") or 1000)
        self.steps_per_epoch = self.source.steps_per_epoch
        self.total_steps = self.epochs * self.steps_per_epoch  # a warmup_* schedule's T
        self.spec = catalogue(request.plugins)[request.optimizer]
        self.columns = self._columns()
        self.step = 0
        self.epoch = 0
        self.elapsed = 0.0
        self.resumed_from_epoch: int | None = None

    @property
    def splits(self) -> Splits:
        """The image source's splits (the stacked trainer reads them)."""
        return self.source.splits  # type: ignore[attr-defined]

    @property
    def inputs(self) -> ModelInputs:
        """The image source's model inputs (the stacked trainer reads them)."""
        return self.source.inputs  # type: ignore[attr-defined]

    def _columns(self) -> list[str]:
        columns = ["step", "epoch"] + metric_columns(self.kind, "train")
        for split in ("val", "test"):
            if split in self.source.eval_splits:
                columns += metric_columns(self.kind, split)
        return columns + ["lr", "wall_time"]

    def identity(self) -> dict[str, Any]:
        """What defines the job; a checkpoint must match it to be resumed."""
        return {
            "task": self.request.task,
            "optimizer": self.request.optimizer,
            "settings": {k: v for k, v in self.settings.items() if k not in NOT_IDENTITY},
            "optimizer_source": self.spec.source,
            "dataset": self.data.meta,
            "device_type": self.device.type,
            **self.own_identity(),
        }

    def own_identity(self) -> dict[str, Any]:
        """The seeds and hyper-parameters that make this job's identity its own."""
        raise NotImplementedError

    @property
    def checkpoint_path(self) -> Path:
        return Path(self.request.checkpoint_dir) / "last.pt"

    def save_checkpoint(self) -> None:
        """Everything a resumed job needs to continue bit-identically, written atomically."""
        state = {
            **self.own_state(),
            "rng": checkpoint.rng_states(self.device),
            "step": self.step,
            "epoch": self.epoch,
            "elapsed": self.elapsed,
        }
        checkpoint.save(self.checkpoint_path, state, checkpoint.fingerprint(self.identity()))

    def try_resume(self) -> bool:
        """Continue from the checkpoint of this very job, if there is one."""
        state = checkpoint.load(self.checkpoint_path, checkpoint.fingerprint(self.identity()))
        if state is None:
            return False
        self.restore_own_state(state)
        checkpoint.restore_rng_states(state["rng"], self.device)
        self.step, self.epoch, self.elapsed = state["step"], state["epoch"], state["elapsed"]
        self.resumed_from_epoch = self.epoch
        return True

    def own_state(self) -> dict[str, Any]:
        """The model, optimizer, generators and rows of this kind of job."""
        raise NotImplementedError

    def restore_own_state(self, state: Mapping[str, Any]) -> None:
        raise NotImplementedError

    # --- the loop -----------------------------------------------------------------------

    def run(self) -> Any:
        """Train (or resume) to the last epoch or until nothing is left to train,
        checkpointing after every epoch, and write the outputs."""
        resumed = self.try_resume()
        self.model.train()
        progress = Progress(
            self.label(), self.total_steps, self.step, bar=self.request.progress_bar
        )
        if resumed:
            progress.write(f"{self.label()}: resuming after epoch {self.epoch} (step {self.step})")
        self._started = time.perf_counter()
        try:
            while self.epoch < self.epochs and self.train_epoch(progress):
                self.epoch += 1
                progress.epoch_end(self.epoch, self.epochs, self.step, self.latest_row())
                self.elapsed += time.perf_counter() - self._started
                self._started = time.perf_counter()
                self.save_checkpoint()
                _maybe_kill_for_test(self.epoch)
        finally:
            progress.close()
        self.elapsed += time.perf_counter() - self._started
        return self.write_outputs()

    def train_epoch(self, progress: Progress) -> bool:
        """One pass over the training set; False when nothing is left to train."""
        raise NotImplementedError

    def label(self) -> str:
        """The job's name in progress lines."""
        raise NotImplementedError

    def latest_row(self) -> dict[str, float]:
        """The metrics row the epoch line shows."""
        raise NotImplementedError

    def write_outputs(self) -> Any:
        raise NotImplementedError


class Trainer(TrainingJob):
    """State and loop of one run; ``run()`` returns the run record for run.json."""

    def __init__(self, request: RunRequest) -> None:
        super().__init__(request)
        self.optimizer_settings = with_horizon(
            task_settings(self.spec, request.task, self.settings), self.total_steps
        )
        self.hparams = hparams.as_record(self.optimizer_settings)
        self._build()
        self.rows: list[dict[str, float]] = []
        self.status = "completed"
        self.diverged_at: int | None = None
        self.initial_loss: float | None = None  # the first batch's, before any update
        self.diverged_reason: str | None = None
        # Every step's batch loss, on the device, when the task counts loss spikes.
        self.spike_rule = SpikeRule.from_settings(self.settings)
        self.step_losses = (
            torch.full((self.total_steps,), math.nan, device=self.device)
            if self.spike_rule
            else None
        )

    # --- set-up -------------------------------------------------------------------------

    def _build(self) -> None:
        request = self.request
        torch.manual_seed(request.seed)
        model = self.kind.build_model(self.settings, self.data.meta)
        if self.performance["channels_last"]:
            model = model.to(memory_format=torch.channels_last)
        self.model = model.to(self.device, self.dtype)
        self.forward_model = torch.compile(self.model) if self.performance["compile"] else model
        self.optimizer, self.scheduler = build(
            self.spec, self.parameter_groups(), self.optimizer_settings
        )
        self.clip = clipper(self.settings, list(self.model.parameters()), stacked=False)
        self.order_gen = torch.Generator().manual_seed(_derived_seed(request.seed, 1))
        self.kind_gen = torch.Generator(self.device).manual_seed(_derived_seed(request.seed, 2))

    def parameter_groups(self) -> Any:
        """The kind's parameter groups; all parameters as one when the optimizer has no
        weight decay to exempt any from (a plug-in that declares none)."""
        if not hasattr(self.optimizer_settings, "weight_decay"):
            return self.model.parameters()
        return self.kind.parameter_groups(self.model)

    def own_identity(self) -> dict[str, Any]:
        return {"seed": self.request.seed, "hparams": self.hparams}

    # --- checkpoint ---------------------------------------------------------------------

    def own_state(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler else None,
            "order_gen": self.order_gen.get_state(),
            "kind_gen": self.kind_gen.get_state(),
            "rows": self.rows,
            "initial_loss": self.initial_loss,
            "step_losses": None if self.step_losses is None else self.step_losses.cpu(),
        }

    def restore_own_state(self, state: Mapping[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.order_gen.set_state(state["order_gen"])
        self.kind_gen.set_state(state["kind_gen"])
        self.rows = state["rows"]
        self.initial_loss = state.get("initial_loss")
        if self.step_losses is not None:
            self.step_losses.copy_(state["step_losses"])

    # --- evaluation and logging ---------------------------------------------------------

    @torch.no_grad()
    def evaluate(self, split: str) -> dict[str, torch.Tensor]:
        """Means over a whole evaluation set, still on the device."""
        generator = torch.Generator(self.device).manual_seed(
            _derived_seed(self.request.seed, EVAL_SEED_OFFSET)
        )
        self.model.eval()
        sums: dict[str, torch.Tensor] = {}
        count = 0
        for x, y in self.source.eval_batches(split, self.eval_batch_size, generator):
            with autocast(self.device, self.performance):
                loss, extras = self.kind.batch_loss(self.forward_model, x, y, generator)
            for name, value in {"loss": loss, **extras}.items():
                sums[name] = sums.get(name, 0.0) + wide(value.detach()) * x.shape[0]
            count += x.shape[0]
        self.model.train()
        return {f"{split}_{name}": total / count for name, total in sums.items()}

    def log_point(self, running: RunningMeans, evaluate: bool) -> dict[str, float]:
        """Read the running sums back (the one host sync of an interval) and, at an
        evaluation point, evaluate the held-out sets (else their columns stay NaN)."""
        values = running.means()
        if evaluate:
            for split in self.source.eval_splits:
                values.update(self.evaluate(split))
        names = list(values)
        numbers = torch.stack([wide(values[n]) for n in names]).cpu().tolist()
        row: dict[str, float] = {"step": self.step}
        row["epoch"] = round(self.step / self.steps_per_epoch, 6)
        row.update(zip(names, numbers, strict=True))
        row["lr"] = self.optimizer_settings.lr * lr_factor(self.optimizer_settings, self.step)
        synchronize(self.device)
        row["wall_time"] = self.elapsed + (time.perf_counter() - self._started)
        self.rows.append({c: row.get(c, math.nan) for c in self.columns})
        return self.rows[-1]

    def computed(self, row: Mapping[str, float], evaluated: bool) -> dict[str, float]:
        """The row's values that were computed at it (held-out ones only at evaluations),
        which the divergence rule judges."""
        splits = ("train", *self.source.eval_splits) if evaluated else ("train",)
        return {k: v for k, v in row.items() if k.split("_")[0] in splits}

    # --- the loop -----------------------------------------------------------------------

    def train_epoch(self, progress: Progress) -> bool:
        """One pass over the training set; False when the run diverged."""
        running = RunningMeans()
        batches = self.source.epoch(self.steps_per_epoch, self.order_gen, self.kind_gen)
        for b, (x, y) in enumerate(batches):
            with autocast(self.device, self.performance):
                loss, extras = self.kind.batch_loss(self.forward_model, x, y, self.kind_gen)
            if self.initial_loss is None:  # one host sync, at the first step only
                self.initial_loss = float(loss.detach())
            update(self.optimizer, self.scheduler, loss, self.clip)
            running.add({"loss": loss, **extras}, x.shape[0])
            if self.step_losses is not None:  # a device write, no sync
                self.step_losses[self.step] = loss.detach()
            self.step += 1
            progress.step()
            last = b == self.steps_per_epoch - 1
            if self.schedule.logs(self.step, last):
                evaluate = self.schedule.evaluates(self.step, last)
                row = self.log_point(running, evaluate)
                progress.log_point(row)
                running = RunningMeans()
                computed = self.computed(row, evaluate)
                self.diverged_reason = self.divergence.reason(computed, self.initial_loss)
                if self.diverged_reason:
                    self.status, self.diverged_at = "diverged", self.step
                    progress.write(
                        f"{self.label()}: diverged at step {self.step} ({self.diverged_reason})"
                    )
                    return False
        return True

    def label(self) -> str:
        return f"{self.request.task}/{self.request.optimizer}/{self.request.seed}"

    def latest_row(self) -> dict[str, float]:
        return self.rows[-1]

    # --- outputs ------------------------------------------------------------------------

    def write_outputs(self) -> dict[str, Any]:
        import pandas as pd

        out = Path(self.request.out_dir)
        write_csv(out / "metrics.csv", pd.DataFrame(self.rows, columns=self.columns))
        final_state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "step": self.step,
            "epoch": self.epoch,
            "seed": self.request.seed,
            "settings": self.settings,
        }
        with _atomic_binary(out / "checkpoint.pt") as handle:
            torch.save(final_state, handle)
        extra = self.kind.artifacts(self.model, self.data, out, self.request.seed)
        record = {**self.record([str(p) for p in extra]), **provenance()}
        write_json(out / "run.json", record)
        self.checkpoint_path.unlink(missing_ok=True)
        return record

    def record(self, artifacts: list[str]) -> dict[str, Any]:
        member = MemberState(
            self.request.seed,
            self.hparams,
            self.rows,
            self.status,
            self.diverged_at,
            diverged_reason=self.diverged_reason,
            initial_loss=self.initial_loss,
        )
        if self.spike_rule is None:
            return run_record(self, member, artifacts)
        steps = self.spike_steps()
        member.final_extras[SPIKE_METRIC] = len(steps)
        record = run_record(self, member, artifacts)
        record["loss_spikes"] = {**self.spike_rule.record(), "steps": steps}
        return record

    def spike_steps(self) -> list[int]:
        """The steps (numbered as in metrics.csv: 1 is the first update) that were loss
        spikes, over the steps run (the task has a ``spike_rule``)."""
        losses = self.step_losses[: self.step].cpu().numpy()
        return [int(i) + 1 for i in self.spike_rule.spikes(losses)]


@dataclass
class MemberState:
    """What is a run's own in a job: its seed, settings, metrics and outcome (a stacked
    job has several; a member frozen early keeps its own step and epoch counts)."""

    seed: int
    hparams: dict[str, Any]
    rows: list[dict[str, float]]
    status: str = "completed"
    diverged_at: int | None = None
    steps: int | None = None
    epochs: int | None = None
    diverged_reason: str | None = None
    initial_loss: float | None = None  # the first batch's loss, before any update
    # Run-wide metrics computed at the end, beside the last row's (loss spikes).
    final_extras: dict[str, float] = field(default_factory=dict)


def run_record(run: Any, member: MemberState, artifacts: list[str]) -> dict[str, Any]:
    """The run.json record of ``member`` of ``run`` (a Trainer or a StackedTrainer)."""
    last = member.rows[-1] if member.rows else {}
    final = {k: v for k, v in last.items() if k not in ("step", "epoch", "wall_time")}
    final.update(member.final_extras)
    meta = run.data.meta
    return {
        "task": run.request.task,
        "optimizer": run.request.optimizer,
        "seed": member.seed,
        "status": member.status,
        "diverged_at_step": member.diverged_at,
        "diverged_reason": member.diverged_reason,
        "divergence": run.divergence.record(member.initial_loss),
        "final": final,
        "steps": run.step if member.steps is None else member.steps,
        "epochs_completed": run.epoch if member.epochs is None else member.epochs,
        "steps_per_epoch": run.steps_per_epoch,
        "elapsed_s": run.elapsed,
        "resumed_from_epoch": run.resumed_from_epoch,
        "settings": dict(run.settings),
        "hparams": member.hparams,
        "optimizer_info": {"summary": run.spec.summary, "source": run.spec.source},
        "device": _device_label(run.device),
        "device_info": device_description(run.device),
        "performance": run.performance,
        "dataset_md5": meta.get("md5"),
        "dataset_sha256": meta.get("sha256"),
        # The hash of the tensors trained on, verified when the cache was loaded.
        "cache_sha256": run.data.content_sha256,
        "data": {
            "dataset": meta.get("name"),
            "checksum": meta.get("sha256") or meta.get("md5"),
            "cache_sha256": run.data.content_sha256,
            "cache_check": run.data.check,
            "sizes": run.source.sizes,
            "subset": run.settings.get("subset") or None,
            "holdout_val": bool(run.settings.get("holdout_val", True)),
            "meta": meta,
        },
        "artifacts": artifacts,
    }


def _device_label(device: torch.device) -> str:
    """A short hashable label (the report groups runs by it), e.g. ``cuda:0 (NVIDIA H200)``."""
    info = device_description(device)
    if device.type == "cuda":
        return f"cuda:{info['index']} ({info['name']})"
    return "cpu"


def _atomic_binary(path: Path):

    return atomic_open(path, "wb")


def _maybe_kill_for_test(epoch: int) -> None:
    if os.environ.get(KILL_AFTER_EPOCH_ENV) == str(epoch):
        os.kill(os.getpid(), signal.SIGKILL)


def train(request: RunRequest) -> dict[str, Any]:
    """Run (or resume) one training job and write its outputs; returns the run record.
    The run's lock is taken before anything is read, so a second trainer of the same run
    (an orphan left by a killed snakemake) is never run alongside (``train.runlock``)."""
    with run_lock(request.checkpoint_dir, request.lock_wait_s):
        return Trainer(request).run()

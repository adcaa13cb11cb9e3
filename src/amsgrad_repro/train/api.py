"""The interface a task kind implements so the training engine can run it.

The engine (``amsgrad_repro.train.engine``) knows nothing about classifiers or VAEs: it
keeps the dataset as uint8 tensors on the device, draws batches by index, and asks the task
kind four things, all as batched tensor operations on the device:

0. ``batch_source(data, settings, device, dtype, performance)``: where batches come from
   (``batches.BatchSource``): by default images by index (``batches.ImageBatches``), or
   random windows of a token stream (``batches.TokenWindows``, the language model).
1. ``build_model(settings, meta)``: the network for the task's ``model`` block and the
   dataset's meta (``image_shape``, ``num_classes``). The engine seeds the global RNG right
   before calling it, so a seed fixes the initial weights for every optimizer.
2. ``input_transform(train_x, settings)``: an :class:`InputTransform`, turning a uint8
   batch [B, C, H, W] into the model's float input. It is built once from the training
   images (already on the device) so statistics such as per-pixel means cost nothing per
   step. Random augmentation draws from the ``generator`` the engine passes, so it is
   seeded and checkpointed with the run. A transform that is ``pointwise`` (each image's
   output depends on that image alone, with no randomness) is applied once to the whole
   dataset when the float copy is small (``batches.resident_inputs``), not to every batch.
3. ``batch_loss(model, inputs, targets, generator)``: the scalar loss to minimise (a mean
   over the batch) and a dict of extra per-batch metrics, each a 0-d tensor that is also a
   batch mean (``accuracy`` for a classifier, ``recon`` and ``kl`` for a VAE). The same
   function evaluates the model (under ``torch.no_grad`` and ``model.eval()``), so train
   and test metrics are computed identically. Nothing here may call ``.item()`` or
   otherwise sync with the host: the engine accumulates on the device and syncs only at
   log points.
4. ``artifacts(model, data, out_dir, seed)``: optional extra outputs written at the end of
   a run (the VAE's image grid, the language model's text samples); the default writes
   nothing. They are declared in :data:`amsgrad_repro.kinds.SAMPLES` under the kind's
   name (a torch-free table, so the workflow can declare them as outputs of that kind's
   train jobs without importing torch); a test checks that every kind writes exactly
   what it declares.

Metric names in ``metrics.csv`` are ``<split>_loss`` and ``<split>_<extra>`` for the splits
``train``, ``val`` and ``test``, so ``metric_names`` must list the extras a kind reports.

A kind lives in a module named in :data:`KIND_MODULES` that exposes ``KIND``, an
instance of a :class:`TaskKind` subclass. Architectures are looked up by the task's
``model.arch`` in :data:`amsgrad_repro.train.models.MODELS`, so adding a task is adding a
model there plus a config entry.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from amsgrad_repro.kinds import KIND_MODULES, SAMPLES
from amsgrad_repro.train.models import build_model
from amsgrad_repro.train.transform import InputTransform

if TYPE_CHECKING:  # torch is imported lazily at run time (the CLI must start fast)
    import torch
    from torch import nn

    from amsgrad_repro.data.cache import DatasetTensors
    from amsgrad_repro.train.batches import BatchSource

Settings = Mapping[str, Any]
BatchLoss = tuple["torch.Tensor", dict[str, "torch.Tensor"]]

# Files each kind's ``artifacts`` writes into the run folder, by kind name (its samples).
ARTIFACT_FILES: dict[str, tuple[str, ...]] = {k: (s.file,) for k, s in SAMPLES.items()}
# The extra metrics each kind's ``batch_loss`` reports besides the loss, in CSV order (its
# ``metric_names``; a torch-free table, so that start-up checks the claims' metrics).
KIND_METRICS: dict[str, tuple[str, ...]] = {
    "classifier": ("accuracy",),
    "vae": ("recon", "kl"),
    "lm": ("bpc",),  # bits per character: the loss (nats per character) over ln 2
    "quadratic": (),  # the loss is the whole story
}
# The splits every training run evaluates (``val`` with ``holdout_val``).
SPLITS: tuple[str, ...] = ("train", "val", "test")


def unit_scale(batch: torch.Tensor, training: bool, generator: torch.Generator | None):
    """Pixel intensities scaled to [0, 1]."""
    return batch.float().div_(255.0)


class TaskKind:
    """Base class of a task kind; subclasses override the methods that differ."""

    name: str = ""
    # Extra per-batch metrics ``batch_loss`` returns besides the loss, in CSV order.
    metric_names: tuple[str, ...] = ()
    # Whether ``member_losses`` exists: seeds of a stackable model can then train as one
    # stacked model (``train.stacked``), given a loss without randomness.
    stackable: bool = False

    @property
    def artifact_files(self) -> tuple[str, ...]:
        """The files ``artifacts`` writes (names inside the run folder)."""
        return ARTIFACT_FILES.get(self.name, ())

    def build_model(self, settings: Settings, meta: Mapping[str, Any]) -> nn.Module:
        """The model for ``settings["model"]`` (default: look ``arch`` up in MODELS)."""
        return build_model(settings.get("model") or {}, meta)

    def input_transform(self, train_x: torch.Tensor, settings: Settings) -> InputTransform:
        """Default: pixel intensities scaled to [0, 1]."""
        return InputTransform(unit_scale, pointwise=True)

    def batch_source(
        self,
        data: Any,
        settings: Settings,
        device: torch.device,
        dtype: torch.dtype,
        performance: Mapping[str, Any],
    ) -> BatchSource:
        """Where the engine's batches come from (default: images drawn by index,
        ``batches.ImageBatches``; a token stream's kind returns ``batches.TokenWindows``)."""
        from amsgrad_repro.train.batches import ImageBatches  # imports torch

        return ImageBatches(
            self, data, settings, device, dtype, bool(performance.get("channels_last"))
        )

    def parameter_groups(self, model: nn.Module) -> Any:
        """What the optimizer updates: all parameters alike (default), or param groups,
        where a group's ``weight_decay`` overrides the optimizer's (the language model
        exempts biases, norms and embeddings)."""
        return model.parameters()

    def batch_loss(
        self,
        model: nn.Module,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        generator: torch.Generator,
    ) -> BatchLoss:
        raise NotImplementedError

    def artifacts(
        self, model: nn.Module, data: DatasetTensors, out_dir: Path, seed: int
    ) -> list[Path]:
        """Extra per-run outputs; returns the paths written."""
        return []


def kind_metric_names(kind: str) -> list[str]:
    """Every metric a run of the training kind ``kind`` can record, e.g. ``train_loss``,
    ``test_accuracy`` (the ``metrics.csv`` columns of :func:`metric_columns`)."""
    extras = KIND_METRICS[kind]
    return [f"{split}_{name}" for split in SPLITS for name in ("loss", *extras)]


def metric_columns(kind: TaskKind, split: str) -> list[str]:
    """The metrics.csv columns one split contributes, e.g. test_loss, test_accuracy."""
    return [f"{split}_loss"] + [f"{split}_{name}" for name in kind.metric_names]


def load_kind(name: str) -> TaskKind:
    """The ``KIND`` object of the module ``KIND_MODULES[name]`` names."""
    if name not in KIND_MODULES:
        raise KeyError(f"unknown task kind {name!r} (known: {', '.join(sorted(KIND_MODULES))})")
    kind = importlib.import_module(KIND_MODULES[name]).KIND
    if not isinstance(kind, TaskKind):
        raise TypeError(f"{KIND_MODULES[name]}.KIND is not a TaskKind")
    return kind


__all__ = [
    "ARTIFACT_FILES",
    "KIND_MODULES",
    "BatchLoss",
    "InputTransform",
    "Settings",
    "TaskKind",
    "load_kind",
    "metric_columns",
    "unit_scale",
]

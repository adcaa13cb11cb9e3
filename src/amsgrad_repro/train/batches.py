"""Where the training loop's batches come from (``BatchSource``): images drawn by index from
tensors on the device (``ImageBatches``) or random windows of a token stream
(``TokenWindows``, the language model). A kind chooses one in ``TaskKind.batch_source``.

Kept apart from ``train.engine`` so that a kind can name its source without importing the
loop (and the loop's imports: checkpoints, staleness, the optimizers).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from amsgrad_repro.train.transform import InputTransform

if TYPE_CHECKING:  # annotations only: train.api imports this module for its default source
    from amsgrad_repro.train.api import TaskKind


@dataclass
class Splits:
    """Training indices into ``train_x`` and the evaluation sets, all on the device."""

    train_index: torch.Tensor
    evals: dict[str, tuple[torch.Tensor, torch.Tensor]]
    sizes: dict[str, int] = field(default_factory=dict)


def _derived_seed(seed: int, stream: int) -> int:
    return seed * 1000 + stream


def make_splits(data: Any, settings: Mapping[str, Any], device: torch.device) -> Splits:
    """Hold the validation split out of training (``holdout_val``, default true) and cut
    the training and evaluation sets to ``subset`` sizes (smoke runs), first items first,
    so every seed and optimizer sees the same subset."""
    subset = settings.get("subset") or {}
    n_train = data.train_x.shape[0]
    val_index = data.val_index.to(device)
    train_index = torch.arange(n_train, device=device)
    if settings.get("holdout_val", True) and val_index.numel():
        keep = torch.ones(n_train, dtype=torch.bool, device=device)
        keep[val_index] = False
        train_index = train_index[keep]
    if subset.get("train"):
        train_index = train_index[: subset["train"]]
    evals = {"val": (data.train_x[val_index], data.train_y[val_index])}
    evals["test"] = (data.test_x, data.test_y)
    if subset.get("eval"):
        evals = {k: (x[: subset["eval"]], y[: subset["eval"]]) for k, (x, y) in evals.items()}
    evals = {k: v for k, v in evals.items() if v[0].shape[0] > 0}
    sizes = {"train": int(train_index.numel()), **{k: int(v[0].shape[0]) for k, v in evals.items()}}
    return Splits(train_index=train_index, evals=evals, sizes=sizes)


# The largest float copy of a dataset's images kept resident in place of per-batch
# conversion: Fashion-MNIST's 60,000 images take 188 MB, CIFAR-10's 614 MB, CelebA's 8 GB.
RESIDENT_BYTES = 1 << 30


@dataclass
class ModelInputs:
    """The training images as the model reads them (float, transformed once) or as stored
    (uint8, transformed per batch), the evaluation sets likewise, and the per-batch
    transform still to apply."""

    train_x: torch.Tensor
    evals: dict[str, tuple[torch.Tensor, torch.Tensor]]
    transform: InputTransform


def resident_inputs(
    transform: InputTransform,
    train_x: torch.Tensor,
    splits: Splits,
    epochs: int,
    dtype: torch.dtype = torch.float32,
) -> ModelInputs:
    """Apply a pointwise transform once to every image, when the float copies fit in
    :data:`RESIDENT_BYTES`: the uint8-to-float conversion and scaling per batch cost as much
    as a layer of the MLP (about 20% of a stacked step on a CPU). Values are bit-identical
    to the per-batch transform (an elementwise function of each image); later batches are
    gathered from the float copy and passed through unchanged. Converting 75,000 28×28
    images takes about 0.2 s, so a job that reads fewer training images than are stored
    (a smoke run's subset for an epoch) keeps the per-batch transform."""
    images = train_x.shape[0] + sum(x.shape[0] for x, _ in splits.evals.values())
    size = images * train_x[0].numel() * dtype.itemsize
    reads = epochs * splits.sizes["train"]
    if not transform.pointwise or size > RESIDENT_BYTES or reads < train_x.shape[0]:
        return ModelInputs(train_x, splits.evals, transform)

    def converted(x: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
        out = torch.empty(x.shape, dtype=dtype, device=x.device)
        for start in range(0, x.shape[0], chunk):
            out[start : start + chunk] = transform(x[start : start + chunk], False, None)
        return out

    evals = {name: (converted(x), y) for name, (x, y) in splits.evals.items()}
    return ModelInputs(converted(train_x), evals, InputTransform(_unchanged, pointwise=True))


def _unchanged(batch: torch.Tensor, training: bool, generator: torch.Generator | None):
    return batch


def in_dtype(transform: InputTransform, dtype: torch.dtype) -> InputTransform:
    """The kind's transform with its float32 output cast to ``dtype``
    (``performance.dtype``); the float32 transform itself, unwrapped, when that is the
    dtype (no extra work per batch)."""
    if dtype == torch.float32:
        return transform

    def cast(batch: torch.Tensor, training: bool, generator: torch.Generator | None):
        return transform(batch, training, generator).to(dtype)

    return InputTransform(cast, pointwise=transform.pointwise)


Batch = tuple[torch.Tensor, torch.Tensor]  # (model input, targets), on the device


class BatchSource:
    """Where a run's batches come from: the seam between the loop and the kind's data.

    The loop asks a source for its training batches one epoch at a time (drawn with the
    run's ``order_gen``, transformed with its ``kind_gen``: both seeded by the run's seed
    and saved in its checkpoint) and for the batches of each evaluation split. A kind names
    its source (:meth:`TaskKind.batch_source`); images use :class:`ImageBatches`, a token
    stream :class:`TokenWindows`.
    """

    sizes: dict[str, int]
    eval_splits: tuple[str, ...]
    steps_per_epoch: int

    def epoch(
        self, steps: int, order_gen: torch.Generator, kind_gen: torch.Generator
    ) -> Iterator[Batch]:
        """The ``steps`` training batches of one epoch."""
        raise NotImplementedError

    def eval_batches(
        self, split: str, batch_size: int, generator: torch.Generator | None
    ) -> Iterator[Batch]:
        """The whole evaluation set ``split`` in batches of at most ``batch_size``."""
        raise NotImplementedError


class ImageBatches(BatchSource):
    """Images as uint8 (or resident float) tensors on the device, batches drawn by index
    from a fresh permutation each epoch (exactly the loop's former own code: the image
    tasks' metrics are bit-identical through this seam, tested)."""

    def __init__(
        self,
        kind: TaskKind,
        data: Any,
        settings: Mapping[str, Any],
        device: torch.device,
        dtype: torch.dtype,
        channels_last: bool = False,
    ) -> None:
        self.data = data
        self.splits = make_splits(data, settings, device)
        self.batch_size = int(settings["batch_size"])
        self.inputs = resident_inputs(
            in_dtype(kind.input_transform(data.train_x, settings), dtype),
            data.train_x,
            self.splits,
            int(settings["epochs"]),
            dtype,
        )
        self.channels_last = channels_last
        self.device = device
        self.sizes = self.splits.sizes
        self.eval_splits = tuple(self.splits.evals)
        self.steps_per_epoch = math.ceil(self.sizes["train"] / self.batch_size)

    def model_input(
        self, batch: torch.Tensor, training: bool, generator: torch.Generator | None
    ) -> torch.Tensor:
        x = self.inputs.transform(batch, training, generator)
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def epoch(
        self, steps: int, order_gen: torch.Generator, kind_gen: torch.Generator
    ) -> Iterator[Batch]:
        order = self.splits.train_index[
            torch.randperm(self.sizes["train"], generator=order_gen).to(self.device)
        ]
        for b in range(steps):
            index = order[b * self.batch_size : (b + 1) * self.batch_size]
            # index_select: a plain gather, several times faster than advanced indexing.
            x = self.model_input(self.inputs.train_x.index_select(0, index), True, kind_gen)
            yield x, self.data.train_y.index_select(0, index)

    def eval_batches(
        self, split: str, batch_size: int, generator: torch.Generator | None
    ) -> Iterator[Batch]:
        x_all, y_all = self.inputs.evals[split]
        for start in range(0, x_all.shape[0], batch_size):
            x = self.model_input(x_all[start : start + batch_size], False, generator)
            yield x, y_all[start : start + batch_size]


class TokenWindows(BatchSource):
    """A token stream's batches: ``batch_size`` windows of ``context`` + 1 tokens at
    random offsets of the training stream (input: the first ``context``, targets: the last
    ``context``), drawn from the run's ``order_gen``, so a seed fixes them for every
    optimizer and a resumed run draws what an uninterrupted one would. An "epoch" is
    ``epoch_steps`` steps, the checkpoint period (not a pass over the text).

    Evaluation reads a fixed set of ``eval_windows`` windows per held-out split, evenly
    spaced over its stream (no randomness: the same windows at every evaluation of every
    run), so the mean loss is comparable across optimizers, seeds and steps.
    """

    def __init__(self, data: Any, settings: Mapping[str, Any], device: torch.device) -> None:
        self.context = int(settings["model"]["context"])
        self.batch_size = int(settings["batch_size"])
        self.device = device
        self.streams = {split: data.tokens(split).to(device) for split in ("train", "val", "test")}
        span = self.context + 1
        for split, stream in self.streams.items():
            if stream.numel() < span:
                raise ValueError(
                    f"the {split} text has {stream.numel()} tokens, fewer than context + 1 ="
                    f" {span}: lower the task's context or use a longer text"
                )
        self.offsets = torch.arange(span, device=device)
        windows = int(settings.get("eval_windows") or 256)
        self.eval_starts = {
            split: self.even_starts(self.streams[split].numel(), windows)
            for split in ("val", "test")
        }
        self.eval_splits = tuple(s for s in ("val", "test") if self.streams[s].numel())
        self.sizes = {
            "train": int(self.streams["train"].numel()),
            **{f"{s}": int(self.streams[s].numel()) for s in ("val", "test")},
            **{f"{s}_windows": int(self.eval_starts[s].numel()) for s in ("val", "test")},
        }
        self.steps_per_epoch = int(settings["epoch_steps"])

    def even_starts(self, length: int, windows: int) -> torch.Tensor:
        """``windows`` window starts spread evenly from the first to the last full window
        (fewer when the stream holds fewer distinct starts)."""
        last = length - (self.context + 1)
        count = min(windows, last + 1)
        if count <= 1:
            return torch.zeros(1, dtype=torch.long, device=self.device)
        return torch.arange(count, device=self.device) * last // (count - 1)

    def windows(self, split: str, starts: torch.Tensor) -> Batch:
        """Token ids (int64) of the windows at ``starts``: inputs and next-token targets."""
        block = self.streams[split][starts[:, None] + self.offsets].long()
        return block[:, :-1], block[:, 1:]

    def draw(self, generator: torch.Generator) -> torch.Tensor:
        """One batch's random window starts over the training stream (a CPU generator,
        so CPU and GPU runs draw the same windows)."""
        high = self.sizes["train"] - self.context  # starts 0 .. N - context - 1
        return torch.randint(high, (self.batch_size,), generator=generator).to(self.device)

    def epoch(
        self, steps: int, order_gen: torch.Generator, kind_gen: torch.Generator
    ) -> Iterator[Batch]:
        for _ in range(steps):
            yield self.windows("train", self.draw(order_gen))

    def eval_batches(
        self, split: str, batch_size: int, generator: torch.Generator | None
    ) -> Iterator[Batch]:
        starts = self.eval_starts[split]
        for first in range(0, starts.numel(), batch_size):
            yield self.windows(split, starts[first : first + batch_size])

"""Character-level language modelling: next-token cross-entropy in nats per character,
reported in bits per character too (``bpc`` = loss / ln 2, the unit of the tables and
figures).

Batches are random windows of the training plays' token stream (``batches.TokenWindows``,
seeded by the run's seed, so every optimizer sees the same windows); evaluation is the mean
loss over a fixed set of windows of the validation and test plays. The parameters split in
two groups as today's recipe has it: weight matrices decay (decoupled, the optimizer's
``weight_decay``), biases, LayerNorm gains and embeddings do not.

At its end a run writes ``samples.txt`` (``kinds.SAMPLES``): after a prompt of one
context's worth of the test plays (the same for every optimizer), the final model's greedy
continuation and one drawn at temperature 0.8 from a generator seeded with the run's seed,
so a reader sees what each optimizer's model learned beside its loss.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from amsgrad_repro.io import atomic_open
from amsgrad_repro.train.api import KIND_METRICS, BatchLoss, Settings, TaskKind
from amsgrad_repro.train.batches import TokenWindows
from amsgrad_repro.train.models.gpt import continue_text
from amsgrad_repro.train.text_samples import format_page

LN2 = math.log(2.0)
# The samples page: characters per continuation, and the temperature of the drawn one
# (greedy is temperature 0), as the issue that added the task asks.
SAMPLE_LENGTH = 500
SAMPLE_TEMPERATURES = (0.0, 0.8)


class LanguageModel(TaskKind):
    name = "lm"
    metric_names = KIND_METRICS["lm"]

    def batch_source(self, data: Any, settings: Settings, device, dtype, performance):
        return TokenWindows(data, settings, device)

    def parameter_groups(self, model: nn.Module) -> list[dict[str, Any]]:
        """Decayed weight matrices, then the undecayed rest (``weight_decay`` 0)."""
        exempt = {id(p) for p in model.no_decay_parameters()}
        decayed = [p for p in model.parameters() if id(p) not in exempt]
        rest = [p for p in model.parameters() if id(p) in exempt]
        return [{"params": decayed}, {"params": rest, "weight_decay": 0.0}]

    def batch_loss(
        self,
        model: nn.Module,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        generator: torch.Generator,
    ) -> BatchLoss:
        logits = model(inputs)
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten())
        return loss, {"bpc": loss.detach() / LN2}

    def artifacts(self, model: nn.Module, data: Any, out_dir: Path, seed: int) -> list[Path]:
        """``samples.txt``: the prompt, then a continuation per temperature."""
        (name,) = self.artifact_files
        path = Path(out_dir) / name
        with atomic_open(path, "w") as handle:
            handle.write(samples_page(model, data, seed))
        return [path]


def samples_page(model: nn.Module, data: Any, seed: int) -> str:
    """The text of ``samples.txt`` (``text_samples.format_page``)."""
    prompt = data.tokens("test")[: model.spec.context].long()
    sections = [("prompt: the first characters of the test plays", data.decode(prompt))]
    for temperature in SAMPLE_TEMPERATURES:
        generator = torch.Generator().manual_seed(seed)
        ids = continue_text(model, prompt, SAMPLE_LENGTH, temperature, generator)
        what = "greedy" if temperature == 0 else f"temperature {temperature}, seed {seed}"
        sections.append((what, data.decode(ids)))
    return format_page(sections)


KIND = LanguageModel()

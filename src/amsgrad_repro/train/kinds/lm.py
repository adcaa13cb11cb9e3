"""Character-level language modelling: next-token cross-entropy in nats per character,
reported in bits per character too (``bpc`` = loss / ln 2, the unit of the tables and
figures).

Batches are random windows of the training plays' token stream (``batches.TokenWindows``,
seeded by the run's seed, so every optimizer sees the same windows); evaluation is the mean
loss over a fixed set of windows of the validation and test plays. The parameters split in
two groups as today's recipe has it: weight matrices decay (decoupled, the optimizer's
``weight_decay``), biases, LayerNorm gains and embeddings do not.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from amsgrad_repro.train.api import KIND_METRICS, BatchLoss, Settings, TaskKind
from amsgrad_repro.train.batches import TokenWindows

LN2 = math.log(2.0)


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


KIND = LanguageModel()

"""A GPT-style decoder for character-level language modelling (``arch: gpt``).

The usual small transformer of today's practice, as in nanoGPT: learned token and position
embeddings, ``layers`` pre-LayerNorm blocks (causal multi-head self-attention through
``torch.nn.functional.scaled_dot_product_attention``, then a GELU MLP of 4x width), a final
LayerNorm, and an output layer tied to the token embedding. No dropout: a seed alone fixes
a run. Weights start from N(0, 0.02), the residual projections from N(0, 0.02/sqrt(2 L))
(GPT-2), biases from zero.

:meth:`Gpt.no_decay_parameters` lists the parameters that today's recipe exempts from
weight decay (biases, LayerNorm gains and the embeddings), the kind's second param group.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

OPTIONS = ("arch", "layers", "heads", "dim", "context")


@dataclass(frozen=True)
class GptSpec:
    vocab_size: int
    context: int = 128
    layers: int = 4
    heads: int = 4
    dim: int = 128

    @classmethod
    def from_settings(cls, model: Mapping[str, Any], meta: Mapping[str, Any]) -> GptSpec:
        unknown = sorted(set(model) - set(OPTIONS))
        if unknown:
            raise ValueError(f"model options {unknown} are not gpt's (known: {list(OPTIONS)})")
        spec = cls(
            vocab_size=int(meta["vocab_size"]),
            **{k: int(v) for k, v in model.items() if k != "arch"},
        )
        if spec.dim % spec.heads:
            raise ValueError(f"model.dim {spec.dim} must be a multiple of model.heads {spec.heads}")
        return spec


class Block(nn.Module):
    """x + attention(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, spec: GptSpec) -> None:
        super().__init__()
        self.heads = spec.heads
        self.ln1 = nn.LayerNorm(spec.dim)
        self.qkv = nn.Linear(spec.dim, 3 * spec.dim)
        self.attn_proj = nn.Linear(spec.dim, spec.dim)
        self.ln2 = nn.LayerNorm(spec.dim)
        self.fc = nn.Linear(spec.dim, 4 * spec.dim)
        self.mlp_proj = nn.Linear(4 * spec.dim, spec.dim)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, dim = x.shape
        q, k, v = self.qkv(x).split(dim, dim=2)
        shape = (batch, length, self.heads, dim // self.heads)
        q, k, v = (t.view(shape).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.attn_proj(y.transpose(1, 2).reshape(batch, length, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.ln1(x))
        return x + self.mlp_proj(F.gelu(self.fc(self.ln2(x))))


class Gpt(nn.Module):
    """Token ids [B, T] (T <= context) -> next-token logits [B, T, vocab]."""

    def __init__(self, spec: GptSpec) -> None:
        super().__init__()
        self.spec = spec
        self.tokens = nn.Embedding(spec.vocab_size, spec.dim)
        self.positions = nn.Embedding(spec.context, spec.dim)
        self.blocks = nn.ModuleList(Block(spec) for _ in range(spec.layers))
        self.ln_f = nn.LayerNorm(spec.dim)
        self.apply(self._init)
        for block in self.blocks:
            for proj in (block.attn_proj, block.mlp_proj):
                nn.init.normal_(proj.weight, std=0.02 / math.sqrt(2 * spec.layers))

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.02)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        length = ids.shape[1]
        if length > self.spec.context:
            raise ValueError(f"{length} tokens exceed the model's context {self.spec.context}")
        where = torch.arange(length, device=ids.device)
        x = self.tokens(ids) + self.positions(where)
        for block in self.blocks:
            x = block(x)
        return self.ln_f(x) @ self.tokens.weight.T  # tied output layer

    def no_decay_parameters(self) -> list[nn.Parameter]:
        """Biases, LayerNorm weights and the embeddings (the output layer is the token
        embedding): every parameter that is not a Linear layer's weight matrix."""
        decayed = {id(m.weight) for m in self.modules() if isinstance(m, nn.Linear)}
        return [p for p in self.parameters() if id(p) not in decayed]


def build_gpt(model: Mapping[str, Any], meta: Mapping[str, Any]) -> nn.Module:
    return Gpt(GptSpec.from_settings(model, meta))


@torch.no_grad()
def continue_text(
    model: Gpt,
    prompt: torch.Tensor,
    length: int,
    temperature: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``length`` token ids after ``prompt`` (int64 [T], T <= context): each the most likely
    next token (``temperature`` 0) or one drawn from the softmax at ``temperature`` with
    ``generator`` (on the host, so a seed gives the same text on every device). The model
    sees the last ``context`` tokens at every step; its train/eval mode is restored."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    window = prompt.to(device=device, dtype=torch.long)[-model.spec.context :]
    drawn = []
    for _ in range(length):
        logits = model(window[None])[0, -1].float().cpu()
        if temperature == 0:
            token = logits.argmax()
        else:
            probabilities = torch.softmax(logits / temperature, dim=0)
            token = torch.multinomial(probabilities, 1, generator=generator)[0]
        drawn.append(int(token))
        window = torch.cat([window, token.view(1).to(device)])[-model.spec.context :]
    model.train(was_training)
    return torch.tensor(drawn, dtype=torch.long)

"""Several seeds of one flattened feed-forward model as one stacked model.

Member m's layer weights live in slice m of a stacked tensor, weights as ``[members, in,
out]`` (so the forward pass is one ``baddbmm`` with no transposed operands: on CPU the
transposed layout runs the MLP slower than ten separate models) and biases as ``[members,
1, out]``. Built from the members' own modules, so each member starts from exactly the
weights a separate run of its seed starts from; :meth:`member_state_dict` gives a member's
weights back in the original module's layout, and :meth:`select` keeps a subset of members
(a diverged member is frozen by leaving the stack).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class StackedNetwork(nn.Module):
    """Linear and ReLU layers of ``M`` members."""

    def __init__(
        self,
        weights: Sequence[torch.Tensor],
        biases: Sequence[torch.Tensor],
        kinds: Sequence[str],
        names: Sequence[str],
    ) -> None:
        super().__init__()
        self.kinds = list(kinds)  # "linear" or "relu", in order
        self.names = list(names)  # each linear layer's name in the member modules
        self.weights = nn.ParameterList(nn.Parameter(w) for w in weights)
        self.biases = nn.ParameterList(nn.Parameter(b) for b in biases)

    @classmethod
    def from_models(cls, models: Sequence[nn.Module]) -> StackedNetwork:
        layers = [model.stack_layers() for model in models]
        kinds, names, weights, biases = [], [], [], []
        module_names = {id(m): name for name, m in models[0].named_modules()}
        for position, layer in enumerate(layers[0]):
            if isinstance(layer, nn.ReLU):
                kinds.append("relu")
                continue
            if not isinstance(layer, nn.Linear):
                raise TypeError(f"cannot stack a {type(layer).__name__} layer")
            kinds.append("linear")
            names.append(module_names[id(layer)])
            column = [member[position] for member in layers]
            weights.append(torch.stack([m.weight.detach().t() for m in column]).contiguous())
            biases.append(torch.stack([m.bias.detach()[None, :] for m in column]).contiguous())
        return cls(weights, biases, kinds, names)

    @property
    def members(self) -> int:
        return self.weights[0].shape[0]

    def forward(self, x: torch.Tensor, shared: bool = False) -> torch.Tensor:
        """Logits ``[M, B, classes]`` of ``x``: ``[M, B, ...]``, one batch per member, or
        with ``shared`` ``[B, ...]``, the same batch for every member."""
        h = x.flatten(1) if shared else x.flatten(2)
        layer = 0
        for kind in self.kinds:
            if kind == "relu":
                h = torch.relu(h)
                continue
            weight, bias = self.weights[layer], self.biases[layer]
            h = torch.matmul(h, weight) + bias if h.dim() == 2 else torch.baddbmm(bias, h, weight)
            layer += 1
        return h

    def member_state_dict(self, member: int) -> dict[str, torch.Tensor]:
        """Member ``member``'s weights as its own module's ``state_dict``."""
        state = {}
        for name, weight, bias in zip(self.names, self.weights, self.biases, strict=True):
            state[f"{name}.weight"] = self.member_tensor(weight, member)
            state[f"{name}.bias"] = self.member_tensor(bias, member)
        return state

    @staticmethod
    def member_tensor(stacked: torch.Tensor, member: int) -> torch.Tensor:
        """A member's slice of a weight- or bias-shaped stacked tensor, in module layout
        (also for optimizer state shaped like a parameter)."""
        piece = stacked[member].detach()
        return piece.t().contiguous() if piece.shape[0] != 1 else piece[0].clone()

    def select(self, keep: Sequence[int]) -> StackedNetwork:
        """A new stacked model of the members ``keep`` (new parameter tensors)."""
        index = torch.as_tensor(list(keep), dtype=torch.long, device=self.weights[0].device)
        return StackedNetwork(
            [w.detach()[index].clone() for w in self.weights],
            [b.detach()[index].clone() for b in self.biases],
            self.kinds,
            self.names,
        )

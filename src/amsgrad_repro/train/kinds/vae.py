"""Variational auto-encoder: the negative ELBO (Bernoulli likelihood + KL), in nats per
image, split into ``recon`` and ``kl``; labels are ignored. A model whose ``spec`` says
``likelihood = "squared_error"`` (DeepOBS's ``fmnist_vae``) gets DeepOBS's loss instead:
summed squared error of the sigmoid image plus the same KL.

The reparameterisation noise is drawn from the engine's generator, so a seed fixes it and
a resumed run draws the same noise as an uninterrupted one. Test and validation ELBOs use
sampled z too (from a generator the engine reseeds at each evaluation), the usual
single-sample estimate.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from amsgrad_repro.train.api import KIND_METRICS, BatchLoss, TaskKind
from amsgrad_repro.train.models.vae import negative_elbo, save_reconstructions


class Vae(TaskKind):
    name = "vae"
    metric_names = KIND_METRICS["vae"]

    def batch_loss(
        self,
        model: nn.Module,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        generator: torch.Generator,
    ) -> BatchLoss:

        noise = torch.randn(
            inputs.shape[0], model.spec.latent, generator=generator, device=generator.device
        ).to(inputs.device)
        logits, mu, logvar = model(inputs, noise)
        likelihood = getattr(model.spec, "likelihood", "bernoulli")
        terms = negative_elbo(logits, inputs, mu, logvar, likelihood)
        return terms.loss, {"recon": terms.recon.detach(), "kl": terms.kl.detach()}

    def artifacts(self, model: nn.Module, data, out_dir: Path, seed: int) -> list[Path]:
        """The reconstructions-and-samples grid of the final model (``samples.png``): test
        images over their reconstructions, then samples from the prior."""
        (name,) = self.artifact_files
        path = Path(out_dir) / name
        save_reconstructions(model, data.test_x[:32], path, seed)
        return [path]


KIND = Vae()

"""Adapters from a task's ``model`` block and the dataset meta to the CIFARNET and VAE
classes, so those modules keep their own constructors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from amsgrad_repro.train.models.cifarnet import CifarNet, CifarNetSpec
from amsgrad_repro.train.models.vae import ConvVAE, VaeSpec


def build_cifarnet(model: Mapping[str, Any], meta: Mapping[str, Any]) -> nn.Module:

    return CifarNet(CifarNetSpec.from_settings(model), image_shape=tuple(meta["image_shape"]))


def build_vae(model: Mapping[str, Any], meta: Mapping[str, Any]) -> nn.Module:

    return ConvVAE(VaeSpec.from_settings(model, meta["image_shape"]))

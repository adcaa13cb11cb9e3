"""The resumable checkpoint: everything a killed run needs to continue bit-identically.

It lives outside Snakemake's declared outputs (``results/checkpoints/<task>/<opt>/<seed>/
last.pt``): Snakemake deletes the declared outputs of a failed job, and a rerun after a kill
or a SLURM preemption must find the checkpoint. It carries a fingerprint of what defines
the run (settings, optimizer, seed, dataset checksum); a checkpoint from different settings
is ignored rather than silently continued.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from amsgrad_repro.io import atomic_open
from amsgrad_repro.supervision import interrupts_deferred

FORMAT_VERSION = 1


def fingerprint(identity: Mapping[str, Any]) -> str:
    """A stable hash of the run's defining settings."""
    text = json.dumps(identity, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def save(path: Path, state: Mapping[str, Any], run_fingerprint: str) -> None:
    """Write atomically: a kill during the write leaves the previous checkpoint intact, and
    a Ctrl-C or SIGTERM waits for the write to finish (``supervision.interrupts_deferred``)."""
    payload = {"format": FORMAT_VERSION, "fingerprint": run_fingerprint, **state}
    with interrupts_deferred(), atomic_open(path, "wb") as handle:
        torch.save(payload, handle)


def load(path: Path, run_fingerprint: str) -> dict[str, Any] | None:
    """The saved state if it belongs to this run, else None (with a note on stdout)."""
    if not path.exists():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # a corrupt file is a reason to restart, not to crash
        print(f"ignoring unreadable checkpoint {path}: {error}", flush=True)
        return None
    if payload.get("format") != FORMAT_VERSION or payload.get("fingerprint") != run_fingerprint:
        print(f"ignoring checkpoint {path}: it belongs to different settings", flush=True)
        return None
    return payload


def rng_states(device: torch.device) -> dict[str, Any]:
    """The global RNG states (dropout draws from them)."""
    states: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(device)
    return states


def restore_rng_states(states: Mapping[str, Any], device: torch.device) -> None:
    torch.set_rng_state(states["cpu"])
    if device.type == "cuda" and "cuda" in states:
        torch.cuda.set_rng_state(states["cuda"], device)

"""Device choice and the speed switches.

``device: auto`` picks CUDA when PyTorch sees a GPU (under SLURM or a local multi-GPU
profile, ``CUDA_VISIBLE_DEVICES`` narrows what it sees), else the CPU. The task's
``performance`` block can allow TF32 matmuls (off by default, so GPU results match a CPU
run closely), channels-last layout and ``torch.compile``; what was used goes to run.json.

One switch is on by default: ``flush_denormal`` (CPU only) makes float32 values below the
smallest normal number, 1.2e-38, compute as zero. Adam's moments of a coordinate whose
gradient has stopped (a dead ReLU unit, a rarely lit pixel) decay into that subnormal
range, where every multiply takes the CPU's slow microcoded path: measured on the MLP
(10 stacked seeds, Fashion-MNIST), steps/s fell from 75 to 48 within 6 epochs without it
and stayed at 76-94 with it, with equal losses (benchmarks/README.md). A GPU keeps
IEEE subnormals. A second moment v that flushes to 0 while its m does not is what the
ε = 0 rule (``optimizers.scalar.guarded``) is built for: with the old floor of the
smallest normal, such coordinates stepped by m/1.2e-38 and one logistic-regression seed
diverged at step 400.

``dtype`` (``float32``, the default, or ``float64``) is the precision of the model's
parameters, its inputs, the optimizer's state and the metrics. float64 exists for tests
of algebraic equalities (a stacked member equals its separate run, the compiled kernel
equals the tensor update): in float32 a different summation order moves a trajectory by
rounding amplified through the optimizer, in float64 those equalities hold to ~1e-12, so a
real difference cannot hide behind rounding nor rounding fake one. The float32 path
does no extra work per step.

``autocast`` (``none``, the default, or ``bfloat16``) runs the forward pass and the loss
under ``torch.autocast``: matmuls and convolutions in bfloat16, the loss and the reductions
in float32, the weights, gradients and optimizer state in float32. It is today's GPU
recipe for transformers (the language model's ``deep`` preset); on a CPU it works but is
rarely faster. run.json records it with the other switches.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Mapping
from typing import Any

import torch
import torch.optim

PERFORMANCE_DEFAULTS: dict[str, Any] = {
    "tf32": False,
    "channels_last": False,
    "compile": False,
    "cudnn_benchmark": False,
    "flush_denormal": True,
    "dtype": "float32",
    "autocast": "none",
}
# The precisions ``performance.dtype`` may name (declared once; the schema lists the same).
DTYPES = ("float32", "float64")
# The mixed precisions ``performance.autocast`` may name: the forward pass and the loss run
# under ``torch.autocast`` in that type (parameters, gradients and the optimizer's state
# stay in ``dtype``); ``none`` is off. bfloat16 has float32's exponent range, so no loss
# scaling is needed (float16 would need a GradScaler: not offered).
AUTOCASTS = ("none", "bfloat16")


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` → ``cuda`` if available else ``cpu``; an explicit CUDA request without a
    GPU is an error rather than a silent fall-back to hours of CPU time."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} requested but PyTorch sees no CUDA device")
    return device


def performance_options(settings: Mapping[str, Any]) -> dict[str, Any]:
    options = dict(PERFORMANCE_DEFAULTS)
    options.update(settings.get("performance") or {})
    unknown = set(options) - set(PERFORMANCE_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown performance option(s): {sorted(unknown)}")
    for key, allowed in (("dtype", DTYPES), ("autocast", AUTOCASTS)):
        if options[key] not in allowed:
            raise ValueError(
                f"performance.{key}: expected one of {', '.join(allowed)}, got {options[key]!r}"
            )
    if options["autocast"] != "none" and options["dtype"] != "float32":
        raise ValueError(
            f"performance.autocast {options['autocast']} needs dtype float32 (the master "
            f"weights' precision), not {options['dtype']}"
        )
    return options


def autocast(device: torch.device, options: Mapping[str, Any]) -> Any:
    """The context the forward pass and the loss run in: ``torch.autocast`` in the type
    ``performance.autocast`` names, or a context that does nothing (``nullcontext``: a
    disabled ``torch.autocast`` still costs a few microseconds per step, measurable on
    DeepOBS's 100-parameter quadratic)."""
    kind = options["autocast"]
    if kind == "none":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=getattr(torch, kind))


def compute_dtype(options: Mapping[str, Any]) -> torch.dtype:
    """The torch dtype of ``performance.dtype`` (see the module docstring)."""
    return getattr(torch, options["dtype"])


def configure_backends(device: torch.device, options: Mapping[str, Any]) -> None:
    """Apply the switches process-wide (each training job is its own process)."""
    if not options["compile"]:
        optimizers_without_dynamo()
    if device.type == "cpu":
        torch.set_flush_denormal(bool(options["flush_denormal"]))
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = bool(options["tf32"])
        torch.backends.cudnn.allow_tf32 = bool(options["tf32"])
        torch.backends.cudnn.benchmark = bool(options["cudnn_benchmark"])
        torch.backends.cudnn.deterministic = not options["cudnn_benchmark"]
        torch.set_float32_matmul_precision("high" if options["tf32"] else "highest")


def optimizers_without_dynamo() -> None:
    """Spare a job that compiles nothing the import of ``torch._dynamo`` (2.3 s of CPU per
    process on this project's 2-core machine, a quarter of a smoke-sized training job).

    ``torch.optim.Optimizer``'s ``add_param_group``, ``zero_grad``, ``state_dict`` and
    ``load_state_dict`` are wrapped by ``torch._disable_dynamo``, which imports dynamo at
    their first call to build a "do not trace this" wrapper and caches it on the wrapped
    function as ``__dynamo_disable``. Without ``torch.compile`` nothing is ever traced,
    so the wrapper may be the function itself: this fills that cache. It changes no
    computation, only what is imported (``tests/test_train.py`` checks both). The
    ``torch.optim`` classes' own ``step`` still imports dynamo (``torch._dynamo.
    graph_break`` inside ``_use_grad_for_differentiable``); the project's native
    optimizers do not. Once dynamo is loaded (``performance.compile``, or another part of
    the process) this does nothing, and if a torch release changes the wrapper the
    ``__code__`` test below matches nothing and torch imports dynamo as before."""
    if "torch._dynamo" in sys.modules:
        return
    wrapper_code = torch._compile._disable_dynamo(lambda: None).__code__
    for attribute in vars(torch.optim.Optimizer).values():
        wrapped = getattr(attribute, "__wrapped__", None)
        if wrapped is not None and getattr(attribute, "__code__", None) is wrapper_code:
            setattr(wrapped, "__dynamo_disable", wrapped)


def device_description(device: torch.device) -> dict[str, Any]:
    """What run.json records about where the run happened."""
    info: dict[str, Any] = {"type": device.type, "torch_threads": torch.get_num_threads()}
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        info["name"] = torch.cuda.get_device_name(index)
        info["index"] = index
        info["cuda"] = torch.version.cuda
    return info


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so timings measure work done, not work queued."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)

"""What an optimizer is, as data: its name, source, hyper-parameters and implementations.

An :class:`OptimizerSpec` names one selectable optimizer. Its hyper-parameters are the
fields of its ``settings`` dataclass (``optimizers.hparams``), with this name's own
``defaults`` on top and ``fixed`` values that the name implies (AMSGrad's max of the
second moment). It runs in one of two ways:

* :class:`NativeFamily`: an update written here, as a functional tensor update with a
  single-tensor and a multi-tensor path (``torch/optim/adam.py``'s shape) plus a scalar
  step that the compiled 1-D kernel of the synthetic problems runs; both read their
  per-step scalars from the family's ``coefficients``, the same shared scalar code;
* :class:`TorchClass`: a ``torch.optim.Optimizer`` subclass (PyTorch's own, or a plug-in
  named by import path), built from the settings; on the 1-D problems it runs the generic
  tensor path unless it declares a native ``twin`` that computes the same update.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from amsgrad_repro.optimizers import hparams
from amsgrad_repro.optimizers.schedules import StepSize
from amsgrad_repro.optimizers.tensor_ops import uses_tensors

# The step-size fields a torch.optim class does not take (a LambdaLR applies them).
SCHEDULE_FIELDS = frozenset(f.name for f in fields(StepSize)) - {"lr"}


@dataclass(frozen=True)
class NativeFamily:
    """An update implemented in this package.

    ``coefficients(hp, t, carry) -> (coeffs, carry)`` computes the scalars of step t from
    the packed hyper-parameters and the carried running values (products of β for bias
    corrections); ``single_tensor`` and ``multi_tensor``, each
    ``(params, grads, state, hp, coeffs)``, apply the step to lists of tensors (``state``
    maps each name of ``state_names(hp)`` to its list), one tensor at a time or with the
    ``torch._foreach_*`` kernels, and :meth:`update` chooses between them for every family;
    ``scalar_init(hp)`` and ``scalar_step(state, hp, g, t) -> (state, dx)`` are the same
    algorithm on one float for the compiled kernel (``x ← Π(x − dx)``).
    """

    name: str
    state_names: Callable[[Any], tuple[str, ...]]  # packed hp -> per-parameter state names
    carry: tuple[float, ...]
    coefficients: Callable[..., Any]
    single_tensor: Callable[..., None]
    multi_tensor: Callable[..., None]
    scalar_init: Callable[..., Any]
    scalar_step: Callable[..., Any]
    # (state name, parameter, packed hp) -> initial tensor; None: zeros like the parameter.
    init_state: Callable[..., Any] | None = None
    # Hyper-parameters the scalar step cannot apply (it sees no x, e.g. decoupled weight
    # decay): with any of them non-zero a 1-D run takes the generic tensor path.
    scalar_zero_only: tuple[str, ...] = ()
    # The dispatch applies the settings' decoupled ``weight_decay`` (x ← x·(1 − α_t·λ))
    # before the update, for families whose coefficients do not fold it in (the
    # successors; Adam's and ADOPT's updates apply their own).
    decoupled_decay: bool = False

    @property
    def scalar_unsupported(self) -> tuple[str, ...]:
        """Hyper-parameters that must be 0 for the compiled 1-D kernel to run this family
        (``scalar_zero_only``, and the dispatch's decoupled decay, which it cannot apply)."""
        return self.scalar_zero_only + (("weight_decay",) if self.decoupled_decay else ())

    def update(self, params: list, grads: list, state: dict, hp: Any, coeffs: tuple, foreach: bool):
        """One step on lists of tensors: the multi-tensor path when ``foreach`` asks for
        it and every coefficient is one number (a ``_foreach`` kernel takes one scalar for
        a whole list), else the single-tensor path, which also takes per-member
        coefficients (a stacked job's tensors), as ``torch/optim/adam.py`` chooses."""
        if foreach and not uses_tensors(*coeffs):
            self.multi_tensor(params, grads, state, hp, coeffs)
        else:
            self.single_tensor(params, grads, state, hp, coeffs)


@dataclass(frozen=True)
class Twin:
    """A native family that computes exactly what a ``torch.optim`` class computes, so that
    the compiled kernel can run it on the 1-D problems (tested equal). ``fixed`` are the
    twin's values the class implies; hyper-parameters in ``zero_only`` must be 0 there."""

    spec: str
    fixed: Mapping[str, Any] = field(default_factory=dict)
    zero_only: tuple[str, ...] = ()


@dataclass(frozen=True)
class TorchClass:
    """A ``torch.optim.Optimizer`` subclass: ``load()`` returns the class (an import
    deferred so declarations stay free of torch), ``kwargs(settings)`` its arguments."""

    load: Callable[[], type]
    kwargs: Callable[[Any], dict[str, Any]]
    twin: Twin | None = None


@dataclass(frozen=True)
class OptimizerSpec:
    """One optimizer selectable by ``name`` in config.yaml."""

    name: str
    summary: str
    source: str
    settings: type
    impl: NativeFamily | TorchClass
    defaults: Mapping[str, Any] = field(default_factory=dict)
    fixed: Mapping[str, Any] = field(default_factory=dict)
    # Every operation acts coordinate by coordinate, so seeds stacked in one tensor (the
    # 1-D generic path, stacked training) do not interact.
    elementwise: bool = True
    plugin: Mapping[str, Any] | None = None  # the config declaration of a plug-in
    # "paper": the paper's algorithms and their framework forms; "other": the successors,
    # baselines and plug-ins. Figure 1 draws the two groups in separate rows.
    group: str = "other"

    def __post_init__(self) -> None:
        declared = hparams.rules(self.settings)
        for key, value in {**self.defaults, **self.fixed}.items():
            if key not in declared:
                raise ValueError(f"{self.name}: {key!r} is not a field of {self.settings}")
            declared[key].check(f"{self.name}.{key}", value)

    @property
    def native(self) -> NativeFamily | None:
        return self.impl if isinstance(self.impl, NativeFamily) else None

    @property
    def hparam_rules(self) -> dict[str, hparams.Rule]:
        """The hyper-parameters a configuration may set for this optimizer."""
        return hparams.user_rules(self.settings)

    def default_values(self) -> dict[str, Any]:
        values = hparams.field_defaults(self.settings)
        values.update(self.defaults)
        values.update(self.fixed)
        return values

    def resolve(self, *layers: tuple[str, Mapping[str, Any]]) -> Any:
        """The frozen settings of one run: declaration defaults, this name's defaults, then
        each ``(where, values)`` layer (e.g. the task's shared hparams, then its overrides
        for this optimizer). Errors name ``where.key``."""
        return hparams.resolve(
            self.settings,
            [("", self.defaults), *layers],
            fixed=self.fixed,
            owner=self.name,
        )

    def shared_keys(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The part of a task's shared hparams that this optimizer declares."""
        return {k: v for k, v in values.items() if k in self.hparam_rules}


def torch_kwargs(settings: Any) -> dict[str, Any]:
    """A ``torch.optim`` class's keyword arguments from our settings: every field but the
    step-size schedule (applied by a LambdaLR), with β1 and β2 as PyTorch's ``betas``."""
    values = {k: v for k, v in hparams.as_record(settings).items() if k not in SCHEDULE_FIELDS}
    if "beta1" in values:
        values["betas"] = (values.pop("beta1"), values.pop("beta2"))
    return values

"""The predictive network: a backbone whose chosen layers are updated by pcoders over time.

At t = 0 the backbone runs feed-forward and every pcoder keeps its layer's output. At each later
timestep the backbone runs once, bottom-up, and the output of each pcoder's module is replaced by
the updated representation e_n(t) (see [`predify.pcoder`][predify.pcoder]), so the layers above and
the logits
at t consume e_n(t). After the pass every decoder predicts the layer below from e_n(t), and the
error gradients for t + 1 are computed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, cast

import torch
from torch import Tensor, nn

from ._tracing import StructureKey, TracedBackbone, hooks_bypassed, structure_key, trace_backbone
from .config import Hyperparameters, PNetConfig
from .errors import ConfigError, DataError
from .pcoder import PCoder
from .submodules import forward_hooks

__all__ = ["PCoderList", "PNetOutput", "PNetState", "PredictiveNet"]


@dataclass
class PNetOutput:
    """What an unrolled forward pass returns.

    Attributes:
        logits: [T+1, B, ...] the backbone's output at t = 0..T (t = 0: plain feed-forward).
        reps: with ``record=True``, per pcoder (bottom first) [T+1, B, C, H, W]: e_n(t) after
            its update at t.
        preds: with ``record=True``, per pcoder [T+1, B, ...]: d_n(t), the decoder's prediction of
            the layer below (the input for the first pcoder).
        errors: with ``record=True``, [T+1, n_pcoders]: MSE(d_n(t), e_{n-1}(t)).
    """

    logits: Tensor
    reps: list[Tensor] | None = None
    preds: list[Tensor] | None = None
    errors: Tensor | None = None

    @property
    def timesteps(self) -> int:
        """T, the number of timesteps after the feed-forward pass."""
        return self.logits.shape[0] - 1


@dataclass
class PNetState:
    """The dynamics' state after a timestep, for custom loops
    ([`PredictiveNet.step()`][predify.network.PredictiveNet.step]).

    Attributes:
        input: the input batch [B, C, H, W].
        timestep: t of the last completed step (0 after
            [`PredictiveNet.start()`][predify.network.PredictiveNet.start]).
        logits: the backbone's output at t.
        reps: per pcoder, e_n(t).
        preds: per pcoder, d_n(t) (None where it was not computed: the last step of a pass that
            records nothing).
        error_terms: per pcoder, pc * s * g_n(t), subtracted at t + 1.
        errors: [n_pcoders] MSE of each prediction at t, when computed.
    """

    input: Tensor
    timestep: int
    logits: Tensor
    reps: list[Tensor]
    preds: list[Tensor | None] = field(default_factory=list)
    error_terms: list[Tensor | None] = field(default_factory=list)
    errors: Tensor | None = None


_NAMES = ("feedforward", "feedback", "pc")


def _from_mapping(value: Mapping[str, float], where: str) -> Hyperparameters:
    """``{"feedforward", "feedback", "pc"}`` as values; the original package's names are refused
    with the function that reads them."""
    if set(value) != set(_NAMES):
        raise ConfigError(
            f"{where}: expected the keys 'feedforward', 'feedback', 'pc', got "
            f"{sorted(map(str, value))} (the original Predify package's dicts are read by "
            "predify.original.hyperparameters_from_original)"
        )
    numbers = {name: value[name] for name in _NAMES}
    return Hyperparameters(
        **{
            name: float(number.item())
            if isinstance(number, Tensor) and number.numel() == 1
            else number
            for name, number in numbers.items()
        }
    )


class PCoderList(nn.ModuleList):
    """An ``nn.ModuleList`` of [`PCoder`][predify.network.PCoder], bottom first, typed as such."""

    def __getitem__(self, index: int) -> PCoder:  # type: ignore[override]
        return cast(PCoder, super().__getitem__(index))

    def __iter__(self) -> Iterator[PCoder]:
        return cast(Iterator[PCoder], super().__iter__())


class PredictiveNet(nn.Module):
    """A backbone with predictive-coding feedback; build it with
    [`predify.predify()`][predify.predify].

    Args:
        backbone: the feed-forward network (kept as given: no hook or attribute is left on it).
        pcoders: bottom first, one per chosen module.
        modules: the backbone submodules whose outputs the pcoders update, in the same order.
        config: the config the network was built from.
        clone_outputs: per pcoder, whether a later in-place op would overwrite its representation.
    """

    def __init__(
        self,
        backbone: nn.Module,
        pcoders: Sequence[PCoder],
        modules: Sequence[nn.Module],
        config: PNetConfig,
        clone_outputs: Sequence[bool] | None = None,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.pcoders = PCoderList(pcoders)
        # A plain tuple: these modules are already registered under self.backbone.
        self._modules_to_update: tuple[nn.Module, ...] = tuple(modules)
        self._clone_outputs = tuple(clone_outputs or (False,) * len(pcoders))
        self.config = config
        #: ``{"mean": [...], "std": [...]}`` that images in [0, 1] get before this network (the
        #: pretrained weights' normalisation; set by the zoo builders and by load_run), or None.
        self.normalization: dict[str, list[float]] | None = None
        # Per state of the backbone's plain attributes: the traced backbone (or None), clone_all.
        self._traces: dict[StructureKey, tuple[TracedBackbone | None, bool]] = {}
        self._trace_for(structure_key(backbone))

    # ------------------------------------------------------------------ introspection
    @property
    def num_pcoders(self) -> int:
        return len(self.pcoders)

    @property
    def input_size(self) -> tuple[int, ...]:
        return self.config.input_size

    @property
    def updated_modules(self) -> tuple[nn.Module, ...]:
        """The backbone modules whose outputs the pcoders update, bottom first."""
        return self._modules_to_update

    def feedforward_activations(self, x: Tensor) -> list[Tensor]:
        """The outputs of the pcoder modules in one plain feed-forward pass, bottom first.

        Args:
            x: input batch [B, *input_size].

        Returns:
            Per pcoder [B, C_n, H_n, W_n] (no decoder runs; safe from later in-place ops).
        """
        self.check_input(x)
        return self._pass(x, None, with_predictions=False, with_errors=False).reps

    def hyperparameter_values(self) -> list[Hyperparameters]:
        """The hyperparameters each pcoder uses, bottom first (the top one's feedback is 0)."""
        values = []
        for pcoder in self.pcoders:
            value = pcoder.hyperparameters.values()
            values.append(value if pcoder.has_feedback else replace(value, feedback=0.0))
        return values

    def set_hyperparameters(
        self,
        values: Hyperparameters
        | Mapping[str, float]
        | Sequence[Hyperparameters | Mapping[str, float]],
    ) -> None:
        """Set one value for every pcoder, or one per pcoder (bottom first).

        One value for all gives the top pcoder feedback 0; a list must already say 0 there. With
        shared hyperparameters the list's entries must agree. Everything is validated before
        anything changes. A mapping takes this package's names (``feedforward``, ``feedback``,
        ``pc``); the original package's ``{"ffm", "fbm", "erm"}`` dicts go through
        [`hyperparameters_from_original()`][predify.original.hyperparameters_from_original]
        first.
        """
        given: Hyperparameters | list[Hyperparameters]
        if isinstance(values, Mapping):
            given = _from_mapping(values, "hyperparameters")
        elif isinstance(values, Hyperparameters):
            given = values
        else:
            given = [
                _from_mapping(value, f"hyperparameters[{index}]")
                if isinstance(value, Mapping)
                else value
                for index, value in enumerate(values)
            ]
        if isinstance(given, Hyperparameters):
            per_pcoder = [
                given if pcoder.has_feedback else replace(given, feedback=0.0)
                for pcoder in self.pcoders
            ]
        else:
            per_pcoder = given
        if len(per_pcoder) != self.num_pcoders:
            raise ValueError(
                f"expected {self.num_pcoders} hyperparameter sets, got {len(per_pcoder)}"
            )
        for index, (pcoder, value) in enumerate(zip(self.pcoders, per_pcoder, strict=True)):
            value.validate(f"pcoders[{index}].hyperparameters", has_feedback=pcoder.has_feedback)
        if self.config.shared_hyperparameters:
            shared = given if isinstance(given, Hyperparameters) else per_pcoder[0]
            for index, value in enumerate(per_pcoder[:-1]):
                if value != shared:
                    raise ConfigError(
                        f"pcoders[{index}].hyperparameters: the hyperparameters are shared, so "
                        f"every pcoder takes the same values; got {value} and {shared}"
                    )
            self.pcoders[0].hyperparameters.set(shared)
            return
        for pcoder, value in zip(self.pcoders, per_pcoder, strict=True):
            pcoder.hyperparameters.set(value)

    def set_hyperparameters_learnable(self, learnable: bool = True) -> None:
        """Make feedforward, feedback and pc trainable parameters (or fixed buffers again)."""
        for pcoder in self.pcoders:
            pcoder.hyperparameters.set_learnable(learnable)

    def hyperparameter_parameters(self) -> list[nn.Parameter]:
        """The trainable hyperparameter tensors (empty unless learnable), without duplicates."""
        seen: dict[int, nn.Parameter] = {}
        for pcoder in self.pcoders:
            for parameter in pcoder.hyperparameters.parameters():
                seen.setdefault(id(parameter), parameter)
        return list(seen.values())

    def decoder_parameters(self) -> list[nn.Parameter]:
        """The decoders' weights: what feedback training optimises."""
        return [p for pcoder in self.pcoders for p in pcoder.decoder.parameters()]

    def resolved_config(self) -> PNetConfig:
        """The config with the current hyperparameters and c_sqrt of every pcoder written in."""
        config = self.config
        for index, pcoder in enumerate(self.pcoders):
            config = config.with_pcoder(
                index,
                c_sqrt=pcoder.c_sqrt if pcoder.gradient_scaling else config.pcoders[index].c_sqrt,
                hyperparameters=None
                if config.shared_hyperparameters
                else pcoder.hyperparameters.values(),
            )
        if config.shared_hyperparameters:
            config = replace(config, hyperparameters=self.pcoders[0].hyperparameters.values())
        return config

    # ------------------------------------------------------------------ dynamics
    def check_input(self, x: Tensor) -> None:
        """Raise [`DataError`][predify.network.DataError] unless ``x`` is a float batch [B,
        *input_size]."""
        expected = self.config.input_size
        if not isinstance(x, Tensor):
            raise DataError(f"input: expected a tensor, got {type(x).__name__}")
        if x.dim() != len(expected) + 1:
            raise DataError(
                f"input: expected a batch of shape [B, {', '.join(map(str, expected))}], "
                f"got {list(x.shape)}"
            )
        if x.shape[1] != expected[0]:
            raise DataError(
                f"input: expected {expected[0]} channels (input_size {list(expected)}), "
                f"got {x.shape[1]} in a batch of shape {list(x.shape)}"
            )
        if not x.is_floating_point():
            raise DataError(f"input: expected a floating-point tensor, got {x.dtype}")

    def _backbone_runner(self) -> tuple[TracedBackbone | None, bool]:
        """The traced backbone for the backbone's current state (None: run it with hooks), and
        whether every representation must be copied (an in-place op in training mode)."""
        key = structure_key(self.backbone)
        entry = self._traces.get(key)
        if entry is None:
            entry = self._trace_for(key)
        traced, clone_all = entry
        if traced is not None and hooks_bypassed(self.backbone, traced):
            traced = None
        return traced, clone_all

    @torch.compiler.disable
    def _trace_for(self, key: StructureKey) -> tuple[TracedBackbone | None, bool]:
        # The dry run (eval mode) finds in-place ops such as ReLU(inplace=True); ops that write in
        # place only in training mode (Dropout(inplace=True)) are guarded against by copying.
        clone_all = self.backbone.training and any(
            getattr(module, "inplace", False) is True for module in self.backbone.modules()
        )
        entry = (trace_backbone(self.backbone, self._modules_to_update), clone_all)
        self._traces[key] = entry
        return entry

    def train(self, mode: bool = True) -> PredictiveNet:
        super().train(mode)
        # Trace for the new flags now, outside any compiled region that may call the network.
        key = structure_key(self.backbone)
        if key not in self._traces:
            self._trace_for(key)
        return self

    @property
    def traced(self) -> bool:
        """Whether passes run the traced backbone (compile-friendly) rather than temporary hooks
        (a backbone fx cannot trace, or a user's hook on a container of the backbone)."""
        return self._backbone_runner()[0] is not None

    def __getstate__(self) -> dict[str, object]:
        # A traced program shares the backbone's dictionaries; a copy traces its own backbone.
        state = dict(super().__getstate__())
        state["_traces"] = {}
        return state

    def _pass(
        self,
        x: Tensor,
        previous: PNetState | None,
        with_predictions: bool,
        with_errors: bool,
        runner: tuple[TracedBackbone | None, bool] | None = None,
    ) -> PNetState:
        traced, clone_all = runner if runner is not None else self._backbone_runner()
        carried: _Carried | None = None
        if previous is not None:
            above = [*previous.preds[1:], None]
            for index, pcoder in enumerate(self.pcoders):
                if previous.error_terms[index] is None or (
                    pcoder.has_feedback and above[index] is None
                ):
                    raise RuntimeError("step() needs a state whose predictions were computed")
            carried = (tuple(previous.reps), tuple(above), tuple(previous.error_terms))
        if previous is not None and traced is not None and torch.compiler.is_compiling():
            # Every timestep after the first runs the same program: compiled once, not per step.
            flat = _timestep_region(
                self, x, carried, traced, clone_all, with_predictions, with_errors
            )
            logits, reps, preds, error_terms, errors = _unflatten(
                flat, self.num_pcoders, with_predictions, with_errors
            )
        else:
            logits, reps, preds, error_terms, errors = _timestep(
                self, x, carried, traced, clone_all, with_predictions, with_errors
            )
        return PNetState(
            input=x,
            timestep=0 if previous is None else previous.timestep + 1,
            logits=logits,
            reps=list(reps),
            preds=list(preds),
            error_terms=list(error_terms),
            errors=errors,
        )

    def start(self, x: Tensor, *, with_errors: bool = True) -> PNetState:
        """The feed-forward pass (t = 0): every representation is its layer's output.

        Args:
            x: input batch [B, *input_size].
        """
        self.check_input(x)
        return self._pass(x, None, with_predictions=True, with_errors=with_errors)

    def step(
        self, state: PNetState, *, with_predictions: bool = True, with_errors: bool = True
    ) -> PNetState:
        """One timestep t -> t + 1 from ``state``; returns the new state (``state`` is unchanged).

        ``with_predictions=False`` skips the decoders (their outputs are only needed by a
        following step or a recording): the last step of a pass that records nothing uses it.
        """
        return self._pass(state.input, state, with_predictions, with_errors and with_predictions)

    def forward(self, x: Tensor, timesteps: int | None = None, record: bool = False) -> PNetOutput:
        """Run the dynamics for ``timesteps`` steps after the feed-forward pass.

        Args:
            x: input batch [B, *input_size].
            timesteps: T (default: the config's ``timesteps``).
            record: also return representations, predictions and errors at every timestep.

        Returns:
            [`PNetOutput`][predify.network.PNetOutput] with ``logits`` [T+1, B, ...].
        """
        steps = self.config.timesteps if timesteps is None else timesteps
        if not isinstance(steps, int) or isinstance(steps, bool) or steps < 0:
            raise ValueError(f"timesteps: expected an integer >= 0, got {timesteps!r}")
        self.check_input(x)
        # Once per call: the lookup walks every backbone module, work a compiler would trace
        # again at every step.
        runner = self._backbone_runner()
        state = self._pass(x, None, record or steps > 0, record, runner)
        logits = [state.logits]
        # Only a recording keeps past states alive: memory must not grow with T otherwise.
        reps: list[list[Tensor]] = [[r] for r in state.reps] if record else []
        preds: list[list[Tensor]] = [[p] for p in state.preds if p is not None] if record else []
        errors = [state.errors] if state.errors is not None else []
        for t in range(1, steps + 1):
            need_predictions = record or t < steps
            state = self._pass(x, state, need_predictions, record and need_predictions, runner)
            logits.append(state.logits)
            if record:
                for index in range(self.num_pcoders):
                    reps[index].append(state.reps[index])
                    prediction = state.preds[index]
                    assert prediction is not None
                    preds[index].append(prediction)
                assert state.errors is not None
                errors.append(state.errors)
        output = PNetOutput(logits=torch.stack(logits))
        if record:
            output.reps = [torch.stack(r) for r in reps]
            output.preds = [torch.stack(p) for p in preds]
            output.errors = torch.stack(errors)
        return output

    def extra_repr(self) -> str:
        return f"name={self.config.name!r}, input_size={list(self.config.input_size)}"


# The dynamics' carried tensors for one step: e_n(t-1), d_{n+1}(t-1) (None on top) and the
# error terms pc * s * g_n(t-1), per pcoder.
_Carried = tuple[tuple[Tensor, ...], tuple[Tensor | None, ...], tuple[Tensor | None, ...]]


def _timestep(
    net: PredictiveNet,
    x: Tensor,
    carried: _Carried | None,
    traced: TracedBackbone | None,
    clone_all: bool,
    with_predictions: bool,
    with_errors: bool,
) -> tuple[Tensor, list[Tensor], list[Tensor | None], list[Tensor | None], Tensor | None]:
    """One pass of the backbone with the pcoder updates, then the decoders (see ``_pass``)."""
    reps: list[Tensor | None] = [None] * net.num_pcoders

    def tap(index: int, output: Tensor) -> Tensor:
        if carried is None:
            rep = output
        else:
            previous_reps, above, error_terms = carried
            error_term = error_terms[index]
            assert error_term is not None
            rep = net.pcoders[index].update(output, above[index], previous_reps[index], error_term)
        reps[index] = rep.clone() if clone_all or net._clone_outputs[index] else rep
        return rep

    if traced is not None:
        logits = traced(tap, x)
    else:

        def make_hook(index: int) -> Callable[[nn.Module, tuple[Any, ...], Any], Tensor]:
            return lambda module, inputs, output: tap(index, output)

        with forward_hooks([(m, make_hook(i)) for i, m in enumerate(net.updated_modules)]):
            logits = net.backbone(x)
    missing = [net.pcoders[i].module_path for i, r in enumerate(reps) if r is None]
    if missing:
        raise RuntimeError(f"the backbone did not run the pcoder modules {missing}")
    done: list[Tensor] = [r for r in reps if r is not None]
    preds: list[Tensor | None] = [None] * net.num_pcoders
    new_error_terms: list[Tensor | None] = [None] * net.num_pcoders
    errors: Tensor | None = None
    if with_predictions:
        differences = []
        for index, pcoder in enumerate(net.pcoders):
            target = x if index == 0 else done[index - 1]
            try:
                prediction, difference, error_term = pcoder.predict(done[index], target)
            except DataError as error:
                raise DataError(
                    f"pcoders[{index}] ({pcoder.module_path}): {error} for an input of shape "
                    f"{list(x.shape)} (the network was built for input_size "
                    f"{list(net.config.input_size)})"
                ) from None
            preds[index] = prediction
            new_error_terms[index] = error_term
            if with_errors:
                differences.append(difference.pow(2).mean())
        if with_errors:
            errors = torch.stack(differences)
    return logits, done, preds, new_error_terms, errors


@torch.compiler.nested_compile_region
def _timestep_region(
    net: PredictiveNet,
    x: Tensor,
    carried: _Carried | None,
    traced: TracedBackbone | None,
    clone_all: bool,
    with_predictions: bool,
    with_errors: bool,
) -> tuple[Tensor, ...]:
    # A region reused across timesteps must return tensors only, hence the flat tuple.
    logits, reps, preds, error_terms, errors = _timestep(
        net, x, carried, traced, clone_all, with_predictions, with_errors
    )
    flat = [logits, *reps]
    if with_predictions:
        flat += [*preds, *error_terms]  # type: ignore[list-item]
        if errors is not None:
            flat.append(errors)
    return tuple(flat)


def _unflatten(
    flat: tuple[Tensor, ...], count: int, with_predictions: bool, with_errors: bool
) -> tuple[Tensor, list[Tensor], list[Tensor | None], list[Tensor | None], Tensor | None]:
    reps = list(flat[1 : 1 + count])
    if not with_predictions:
        return flat[0], reps, [None] * count, [None] * count, None
    preds: list[Tensor | None] = list(flat[1 + count : 1 + 2 * count])
    error_terms: list[Tensor | None] = list(flat[1 + 2 * count : 1 + 3 * count])
    return flat[0], reps, preds, error_terms, flat[1 + 3 * count] if with_errors else None

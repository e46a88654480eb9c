"""Unsupervised training of the feedback (decoder) weights, with the backbone frozen.

Two objectives:

- ``timesteps=0`` (default, the Predify paper's): every decoder reconstructs the layer below (the
  image for the first pcoder) from its own layer's feed-forward activation; the loss is the MSE of
  each pcoder, summed over pcoders. The backbone runs once under ``torch.no_grad`` with temporary
  forward hooks that keep the pcoder modules' outputs; only the decoders build a graph, and
  backward reaches the decoder weights only. That is the least work the objective needs: the
  benchmark in ``benchmarks/bench_training.py`` compares it with a hand-written floor.
- ``timesteps=T > 0``: the network runs its predictive-coding dynamics for T steps and the
  prediction errors MSE(d_n(t), e_{n-1}(t)) are summed over pcoders and t = 0..T. Gradients flow
  through the dynamics (the decoders shape later representations through the error terms), cut
  every ``tbptt`` steps (truncated backprop through time: backward runs per window, so the graph
  never spans more than ``tbptt`` steps); ``checkpoint_activations`` recomputes each step in
  backward
  (`torch.utils.checkpoint.checkpoint()`), so only the state between steps is kept.

Only the decoders are trained: the backbone's parameters are set to ``requires_grad=False`` and it
runs in eval mode (BatchNorm statistics stay as trained); learnable hyperparameters, if any, are
left as they are (``predify tune`` fits them).

Distributed (``torchrun``): the decoders, the only trained weights, are wrapped in
`DistributedDataParallel`, so
gradients are averaged over processes and
the decoders stay identical; each process reads its own shard of every epoch.
"""

from __future__ import annotations

import itertools
import math
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.checkpoint import checkpoint as activation_checkpoint
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from ..checkpoint import feedback_state_dict, load_feedback_state
from ..config import PNetConfig
from ..errors import CheckpointError, ConfigError, DataError, NonFiniteLossError, PredifyError
from ..network import PNetState, PredictiveNet
from ..runtime.precision import Execution, autocast, grad_scaler, prepare_input
from ..runtime.validation import check_int
from .callbacks import Callback
from .settings import TrainSettings
from .state import (
    capture_rng_state,
    read_training_checkpoint,
    restore_rng_state,
    write_training_checkpoint,
)

__all__ = ["OPTIMIZERS", "FeedbackTrainer", "NonFiniteLossError"]

#: Optimiser names accepted by [`FeedbackTrainer`][predify.train.trainer.FeedbackTrainer] and
#: ``predify train --optimizer``.
OPTIMIZERS = ("adam", "sgd", "rmsprop")

SchedulerLike = torch.optim.lr_scheduler.LRScheduler | torch.optim.lr_scheduler.ReduceLROnPlateau
SchedulerFactory = Callable[[torch.optim.Optimizer], SchedulerLike]


class _Decoders(nn.Module):
    """The decoders as the only registered parameters, so DDP averages exactly their gradients.

    ``forward(mode, *args)`` runs one of the trainer's objectives; calling it through the DDP
    wrapper is what makes DDP synchronise the gradients of the backward that follows.
    """

    def __init__(self, decoders: Sequence[nn.Module], objective: Callable[..., Any]) -> None:
        super().__init__()
        self.decoders = nn.ModuleList(decoders)
        self._objective = objective

    def forward(self, *args: Any) -> Any:
        return self._objective(*args)


class _ResumableSampler(Sampler[int]):
    """The shard of one epoch's (seeded) order for this process, minus the items already done."""

    def __init__(self, inner: DistributedSampler[Any], skip: int) -> None:
        self.inner = inner
        self.skip = skip

    def __iter__(self) -> Iterator[int]:
        return itertools.islice(iter(self.inner), self.skip, None)

    def __len__(self) -> int:
        return max(0, len(self.inner) - self.skip)


@dataclass
class _Interrupt:
    """Set by the first Ctrl-C, so the loop stops at the next consistent point."""

    requested: bool = False


@contextmanager
def _deferred_interrupt() -> Iterator[_Interrupt]:
    """Turn the first SIGINT into a flag; a second one raises KeyboardInterrupt at once.

    A KeyboardInterrupt in the middle of ``optimizer.step()`` could leave some weights updated and
    others not, and a checkpoint of that state would not resume exactly; deferring it to the end
    of the step keeps the checkpoint consistent.
    """
    flag = _Interrupt()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum: int, frame: Any) -> None:
        if flag.requested:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            raise KeyboardInterrupt
        flag.requested = True
        print(
            "\ninterrupt: finishing this step and writing a checkpoint "
            "(press Ctrl-C again to stop at once)",
            file=sys.stderr,
        )

    signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)


class FeedbackTrainer:
    """Trains the decoders of a [`PredictiveNet`][predify.network.PredictiveNet], backbone frozen.

    >>> trainer = FeedbackTrainer(pnet, lr=1e-3)  # doctest: +SKIP
    >>> trainer.step(images)                       # doctest: +SKIP
    {'pcoder1': 0.0412, 'pcoder2': 0.0127, 'pcoder3': 0.0031, 'total': 0.0570}
    >>> checkpoints = ModelCheckpoint("run/checkpoint.pt")      # doctest: +SKIP
    >>> trainer.fit(dataset, epochs=10, callbacks=[checkpoints])  # doctest: +SKIP

    Args:
        pnet: the network; its backbone's parameters are frozen (``requires_grad=False``) when
            training starts.
        optimizer: an optimiser over ``pnet.decoder_parameters()``; None builds one from
            ``optimizer_name``, ``lr``, ``weight_decay`` and ``momentum``.
        lr, weight_decay: of the built optimiser (weight decay as an L2 term).
        optimizer_name: ``"adam"``, ``"sgd"`` or ``"rmsprop"``.
        momentum: of SGD and RMSprop.
        timesteps: 0 for the paper's objective (feed-forward reconstruction); T > 0 to train
            through T steps of the dynamics.
        tbptt: with ``timesteps > 0``, the truncation window in steps (None: the whole unroll).
        checkpoint_activations: with ``timesteps > 0``, recompute each step during backward
            instead of keeping its activations.
        precision: ``fp32``, ``bf16`` or ``fp16``: autocast of the forward pass and the losses
            (the decoders' weights stay fp32). fp16 adds a ``GradScaler`` and needs CUDA: on
            another device it is refused with a [`ConfigError`][predify.errors.ConfigError] rather
            than
            silently ignored, so a run never differs from what was asked for. bf16 needs no
            scaling (fp32's exponent range) and runs on the CPU too.
        amp: the older spelling of ``precision="fp16"``.
        channels_last: NHWC layout for the network's 4-d weights and the input batches.
        device: where to train (the network is moved there when training starts); None: where
            the network is.
        scheduler: a learning-rate scheduler over the optimiser, or a function building one from
            it; stepped every ``scheduler_interval`` (``"epoch"`` or ``"step"``).
        seed: seeds the order of the training data in `fit()` (one permutation per epoch).
        distributed: average gradients over a ``torch.distributed`` process group with DDP. None:
            whenever a process group with more than one process is initialised.

    Attributes:
        global_step: optimiser steps taken so far.
        epoch: the current epoch (0-based); ``batch_in_epoch``: batches of it done.
        loss_names: ``["pcoder1", ..., "pcoderN", "total"]``, the keys of `step()`'s result.
    """

    def __init__(
        self,
        pnet: PredictiveNet,
        optimizer: torch.optim.Optimizer | None = None,
        *,
        lr: float = TrainSettings.lr,
        weight_decay: float = TrainSettings.weight_decay,
        optimizer_name: str = TrainSettings.optimizer,
        momentum: float = TrainSettings.momentum,
        timesteps: int = TrainSettings.timesteps,
        tbptt: int | None = None,
        checkpoint_activations: bool = False,
        amp: bool = False,
        precision: str = "fp32",
        channels_last: bool = False,
        device: str | torch.device | None = None,
        scheduler: SchedulerLike | SchedulerFactory | None = None,
        scheduler_interval: str = "epoch",
        seed: int = 0,
        distributed: bool | None = None,
    ) -> None:
        if not isinstance(pnet, PredictiveNet):
            raise ConfigError(f"pnet: expected a PredictiveNet, got {type(pnet).__name__}")
        check_int(timesteps, "timesteps", minimum=0)
        if tbptt is not None:
            check_int(tbptt, "tbptt")
            if timesteps == 0:
                raise ConfigError("tbptt: applies to training through the dynamics (timesteps > 0)")
        if checkpoint_activations and timesteps == 0:
            raise ConfigError(
                "checkpoint_activations: applies to training through the dynamics (timesteps > 0)"
            )
        if scheduler_interval not in ("epoch", "step"):
            raise ConfigError(
                f"scheduler_interval: expected 'epoch' or 'step', got {scheduler_interval!r}"
            )
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ConfigError(f"seed: expected an integer, got {seed!r}")

        self.pnet = pnet
        if device is not None:
            try:
                self.device = torch.device(device)
            except (RuntimeError, TypeError):
                raise ConfigError(f"device: unknown device {device!r}") from None
        else:
            first = next(iter(pnet.decoder_parameters()), None)
            self.device = first.device if first is not None else torch.device("cpu")
        if amp and precision not in ("fp32", "fp16"):
            raise ConfigError(f"amp: is precision fp16, and precision {precision!r} was given")
        self.execution = Execution("fp16" if amp else precision, channels_last)
        self.execution.check_device(self.device)
        self.amp = self.execution.precision == "fp16"
        if self.amp and self.device.type != "cuda":
            raise ConfigError(
                f"--precision fp16: gradient scaling needs a CUDA device, and this run uses "
                f"{self.device}; use --precision bf16 (or a CUDA --device)"
            )
        self.timesteps = timesteps
        self.tbptt = tbptt
        self.checkpoint_activations = checkpoint_activations
        self.seed = seed
        self.scheduler_interval = scheduler_interval

        self.trained_parameters = pnet.decoder_parameters()
        if not self.trained_parameters:
            raise ConfigError("the network's decoders have no parameters to train")
        for parameter in self.trained_parameters:
            parameter.requires_grad_(True)

        self.optimizer_name = optimizer_name if optimizer is None else type(optimizer).__name__
        self.optimizer = optimizer or self._build_optimizer(
            optimizer_name, lr, weight_decay, momentum
        )
        built = scheduler(self.optimizer) if callable(scheduler) else scheduler
        self.scheduler: SchedulerLike | None = built
        self.scaler = grad_scaler(self.device, self.execution) if self.amp else None

        self.loss_names = [f"pcoder{index + 1}" for index in range(pnet.num_pcoders)] + ["total"]
        self.global_step = 0
        self.epoch = 0
        self.batch_in_epoch = 0
        # False while a step is half done (weights updated, counters not yet): no checkpoint then.
        self._consistent = True

        self._objective = _Decoders([pcoder.decoder for pcoder in pnet.pcoders], self._losses)
        self._distributed_objective: DistributedDataParallel | None = None
        initialised = dist.is_available() and dist.is_initialized()
        if distributed is None:
            distributed = initialised and dist.get_world_size() > 1
        if distributed and not initialised:
            raise ConfigError(
                "distributed=True needs an initialised torch.distributed process group "
                "(launch with torchrun; predify.train.init_distributed joins it)"
            )
        self.distributed = bool(distributed)
        self.rank = dist.get_rank() if distributed else 0
        self.world_size = dist.get_world_size() if distributed else 1
        self._prepared = False
        self._callbacks: list[Callback] = []
        self._callback_states: dict[str, Any] = {}

    def prepare(self) -> None:
        """Move the network to the trainer's device and freeze the backbone (no gradient, eval
        mode so BatchNorm keeps its statistics); wrap the decoders in DDP. Done once, when
        training starts (the first `fit()`, `step()` or `backward()`), so building a
        trainer leaves the user's model as it was."""
        if self._prepared:
            return
        self.pnet.to(self.device)
        if self.execution.channels_last:
            self.pnet.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.pnet.backbone.requires_grad_(False)
        self.pnet.backbone.eval()
        if self.distributed:
            self._distributed_objective = DistributedDataParallel(
                self._objective,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                broadcast_buffers=False,
            )
        self._prepared = True

    # ------------------------------------------------------------------ construction helpers
    def _build_optimizer(
        self, name: str, lr: float, weight_decay: float, momentum: float
    ) -> torch.optim.Optimizer:
        for label, value in (("lr", lr), ("weight_decay", weight_decay), ("momentum", momentum)):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{label}: expected a number, got {value!r}")
            if not math.isfinite(value) or value < 0:
                raise ConfigError(f"{label}: expected a finite number >= 0, got {value!r}")
        if lr <= 0:
            raise ConfigError(f"lr: expected a learning rate > 0, got {lr!r}")
        key = str(name).lower()
        if key == "adam":
            return torch.optim.Adam(self.trained_parameters, lr=lr, weight_decay=weight_decay)
        if key == "sgd":
            return torch.optim.SGD(
                self.trained_parameters, lr=lr, momentum=momentum, weight_decay=weight_decay
            )
        if key == "rmsprop":
            return torch.optim.RMSprop(
                self.trained_parameters, lr=lr, momentum=momentum, weight_decay=weight_decay
            )
        raise ConfigError(f"optimizer: expected one of {', '.join(OPTIMIZERS)}, got {name!r}")

    @property
    def is_main(self) -> bool:
        """True on the process that writes files (rank 0, or the only one)."""
        return self.rank == 0

    @property
    def is_consistent(self) -> bool:
        """False while a step is half done (weights updated, counters not yet): a checkpoint
        written then would not resume exactly."""
        return self._consistent

    @property
    def lr(self) -> float:
        """The current learning rate of the first parameter group."""
        return float(self.optimizer.param_groups[0]["lr"])

    def _autocast(self) -> AbstractContextManager[Any]:
        return autocast(self.device, self.execution)

    # ------------------------------------------------------------------ objectives
    def _feedforward_activations(self, images: Tensor) -> list[Tensor]:
        """The pcoder modules' outputs [B, C_n, H_n, W_n] of one no-grad backbone pass."""
        with torch.no_grad():
            return self.pnet.feedforward_activations(images)

    def _reconstruction_losses(self, images: Tensor) -> Tensor:
        """The paper's objective: [n_pcoders] MSE(decoder_n(a_n), a_{n-1}), a_0 = the image."""
        activations = self._feedforward_activations(images)
        targets = [images, *activations[:-1]]
        losses = []
        for index, pcoder in enumerate(self.pnet.pcoders):
            prediction = pcoder.decoder(activations[index])
            target = targets[index]
            if prediction.shape != target.shape:
                raise DataError(
                    f"pcoders[{index}] ({pcoder.module_path}): the decoder predicts "
                    f"{list(prediction.shape[1:])} but the layer below is "
                    f"{list(target.shape[1:])} for an input of shape {list(images.shape)}"
                )
            # In float32 even under autocast: a float16 sum of squares overflows easily.
            losses.append(F.mse_loss(prediction.float(), target.float()))
        return torch.stack(losses)

    def _unrolled_step(self, state: PNetState) -> PNetState:
        """One step of the dynamics, recomputed in backward when checkpointing activations."""
        if not self.checkpoint_activations:
            return self.pnet.step(state)
        count = self.pnet.num_pcoders
        timestep = state.timestep

        def run(image: Tensor, *flat: Tensor) -> tuple[Tensor, ...]:
            previous = PNetState(
                input=image,
                timestep=timestep,
                logits=flat[0],  # not read by step(): only reps, preds and error terms are
                reps=list(flat[1 : 1 + count]),
                preds=list(flat[1 + count : 1 + 2 * count]),
                error_terms=list(flat[1 + 2 * count :]),
            )
            new = self.pnet.step(previous)
            assert new.errors is not None
            return (new.errors, new.logits, *new.reps, *new.preds, *new.error_terms)  # type: ignore[arg-type]

        outputs = activation_checkpoint(
            run,
            state.input,
            state.logits,
            *state.reps,
            *state.preds,  # type: ignore[arg-type]
            *state.error_terms,  # type: ignore[arg-type]
            use_reentrant=False,
        )
        return PNetState(
            input=state.input,
            timestep=timestep + 1,
            logits=outputs[1],
            reps=list(outputs[2 : 2 + count]),
            preds=list(outputs[2 + count : 2 + 2 * count]),
            error_terms=list(outputs[2 + 2 * count :]),
            errors=outputs[0],
        )

    def _unrolled_window(
        self, images: Tensor, state: PNetState | None, steps: int
    ) -> tuple[Tensor, PNetState]:
        """Run ``steps`` steps (the start counts as one) and sum their [n_pcoders] errors."""
        total: Tensor | None = None
        for _ in range(steps):
            state = self.pnet.start(images) if state is None else self._unrolled_step(state)
            assert state.errors is not None
            errors = state.errors.float()
            total = errors if total is None else total + errors
        assert total is not None and state is not None
        return total, state

    def _losses(self, mode: str, *args: Any) -> Any:
        if mode == "reconstruct":
            return self._reconstruction_losses(*args)
        return self._unrolled_window(*args)

    def _call_objective(self, *args: Any) -> Any:
        module = self._distributed_objective or self._objective
        with self._autocast():
            return module(*args)

    def _backward(self, loss: Tensor) -> None:
        scaled = self.scaler.scale(loss) if self.scaler is not None else loss
        scaled.backward(inputs=self.trained_parameters)

    def backward(self, images: Tensor) -> Tensor:
        """Forward and backward of one batch, without the optimiser step.

        Gradients accumulate in the decoders' ``.grad`` (scaled when ``amp``).

        Args:
            images: [B, *input_size] on any device (moved to the trainer's).

        Returns:
            [n_pcoders] detached per-pcoder losses (summed over t = 0..T when ``timesteps > 0``).
        """
        self.prepare()
        images = prepare_input(images.to(self.device, non_blocking=True), self.execution)
        self.pnet.check_input(images)
        self.pnet.backbone.eval()
        if self.timesteps == 0:
            losses = self._call_objective("reconstruct", images)
            self._backward(losses.sum())
            return losses.detach()
        window = self.tbptt or self.timesteps + 1
        remaining = self.timesteps + 1  # the start (t = 0) and T steps
        state: PNetState | None = None
        totals = torch.zeros(self.pnet.num_pcoders, device=self.device)
        while remaining > 0:
            # The first window also holds t = 0, so every window but the last has `tbptt` steps.
            steps = min(window, remaining)
            window_losses, state = self._call_objective("unroll", images, state, steps)
            self._backward(window_losses.sum())
            totals += window_losses.detach()
            remaining -= steps
            state = _detached(state)
        return totals

    def step(self, images: Tensor) -> dict[str, float]:
        """One optimiser step on a batch.

        Args:
            images: [B, *input_size] (e.g. [B, 3, 224, 224]).

        Returns:
            ``{"pcoder1": loss, ..., "pcoderN": loss, "total": sum}`` as floats; in distributed
            runs, averaged over the processes.

        Raises:
            NonFiniteLossError: a loss is NaN or infinite; the weights are left as they were.
        """
        self.optimizer.zero_grad(set_to_none=True)
        losses = self.backward(images)
        if self.world_size > 1:
            dist.all_reduce(losses)
            losses /= self.world_size
        # One host sync per step, after backward was queued, so a GPU is never left waiting.
        values = losses.tolist()
        for index, value in enumerate(values):
            if not math.isfinite(value):
                raise NonFiniteLossError(
                    f"non-finite loss ({value}) at step {self.global_step + 1} "
                    f"(pcoder{index + 1}); lower the learning rate"
                )
        self._consistent = False
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        if self.scheduler is not None and self.scheduler_interval == "step":
            self._step_scheduler(sum(values))
        self.global_step += 1
        self._consistent = True
        result = {f"pcoder{index + 1}": value for index, value in enumerate(values)}
        result["total"] = float(sum(values))
        return result

    def _step_scheduler(self, metric: float) -> None:
        assert self.scheduler is not None
        if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.scheduler.step(metric)
        else:
            self.scheduler.step()

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly: weights, optimiser, scheduler, RNGs, position."""
        return {
            "config": self.pnet.resolved_config().to_toml(),
            "pcoders": {key: value.cpu() for key, value in feedback_state_dict(self.pnet).items()},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "rng": capture_rng_state(),
            "progress": {
                "step": self.global_step,
                "epoch": self.epoch,
                "batch_in_epoch": self.batch_in_epoch,
                "seed": self.seed,
            },
            "settings": self._settings(),
            "callbacks": self._callback_state(),
        }

    def _callback_state(self) -> dict[str, Any]:
        states = {**self._callback_states}
        for index, callback in enumerate(self._callbacks):
            state = callback.state_dict()
            if state:
                states[f"{index}:{type(callback).__name__}"] = state
        return states

    def _settings(self) -> dict[str, Any]:
        return {
            "timesteps": self.timesteps,
            "tbptt": self.tbptt,
            "optimizer": self.optimizer_name,
            "world_size": self.world_size,
        }

    def load_state_dict(self, state: Mapping[str, Any], source: str = "checkpoint") -> None:
        """Restore a `state_dict()`: the next step continues as if never interrupted."""
        try:
            config = PNetConfig.from_toml_string(state["config"], source=f"{source} (config)")
            load_feedback_state(self.pnet, config, state["pcoders"], source)
            saved = dict(state.get("settings") or {})
            for key in ("timesteps", "tbptt", "optimizer"):
                if key in saved and saved[key] != self._settings()[key]:
                    raise CheckpointError(
                        f"{source}: was written with {key}={saved[key]!r}, this trainer has "
                        f"{key}={self._settings()[key]!r}"
                    )
            self.optimizer.load_state_dict(state["optimizer"])
            if self.scheduler is not None and state.get("scheduler") is not None:
                self.scheduler.load_state_dict(state["scheduler"])
            if self.scaler is not None and state.get("scaler") is not None:
                self.scaler.load_state_dict(state["scaler"])
            progress = state["progress"]
            self.global_step = int(progress["step"])
            self.epoch = int(progress["epoch"])
            self.batch_in_epoch = int(progress["batch_in_epoch"])
            self.seed = int(progress["seed"])
            restore_rng_state(state["rng"])
            self._callback_states = dict(state.get("callbacks") or {})
        except CheckpointError:
            raise
        except PredifyError as error:  # e.g. a config in the file that no longer parses
            raise CheckpointError(f"{source}: {error}") from None
        except (KeyError, TypeError, ValueError) as error:
            raise CheckpointError(
                f"{source}: malformed training checkpoint ({type(error).__name__}: {error})"
            ) from None

    def save_checkpoint(self, path: str | Path) -> Path:
        """Write `state_dict()` to ``path`` atomically (on the main process only)."""
        if not self.is_main:
            return Path(path)
        written = write_training_checkpoint(path, self.state_dict())
        for callback in self._callbacks:
            callback.on_checkpoint(self, written)
        return written

    def load_checkpoint(self, path: str | Path) -> None:
        """Read a checkpoint written by `save_checkpoint()` (``weights_only=True``)."""
        self.load_state_dict(read_training_checkpoint(path), source=str(path))

    # ------------------------------------------------------------------ the training loop
    def _epoch_batches(
        self,
        data: Dataset[Any] | DataLoader[Any],
        batch_size: int,
        shuffle: bool,
        workers: int,
        drop_last: bool,
    ) -> tuple[Iterator[Any], int]:
        """This epoch's remaining batches and the epoch's total number of batches."""
        if isinstance(data, DataLoader):
            sampler = getattr(data, "sampler", None)
            if hasattr(sampler, "set_epoch"):
                sampler.set_epoch(self.epoch)  # type: ignore[union-attr]
            # A loader's order is its own: skip what was done by reading past it.
            return itertools.islice(iter(data), self.batch_in_epoch, None), len(data)
        if not hasattr(data, "__len__") or len(data) == 0:  # type: ignore[arg-type]
            raise DataError("the training data set is empty (0 images)")
        # One seeded permutation per epoch (shared by all processes, each reading its shard), so
        # the order does not depend on any global RNG and a resumed epoch sees the same batches.
        shard: DistributedSampler[Any] = DistributedSampler(
            data,
            num_replicas=self.world_size,
            rank=self.rank,
            shuffle=shuffle,
            seed=self.seed,
            drop_last=False,
        )
        shard.set_epoch(self.epoch)
        total = len(shard) // batch_size if drop_last else math.ceil(len(shard) / batch_size)
        if total == 0:
            raise DataError(
                f"the training data set has {len(shard)} images per process, fewer than one "
                f"batch of {batch_size} with drop_last"
            )
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        loader = DataLoader(
            data,
            batch_size=batch_size,
            sampler=_ResumableSampler(shard, self.batch_in_epoch * batch_size),
            num_workers=workers,
            drop_last=drop_last,
            pin_memory=self.device.type == "cuda",
            # Worker seeds come from this generator, not from the global RNG.
            generator=generator,
        )
        return iter(loader), total

    def fit(
        self,
        data: Dataset[Any] | DataLoader[Any],
        epochs: int,
        *,
        batch_size: int = TrainSettings.batch_size,
        shuffle: bool = True,
        workers: int = 0,
        drop_last: bool = False,
        callbacks: Sequence[Callback] = (),
        handle_interrupt: bool = False,
    ) -> list[dict[str, float]]:
        """Train until ``epochs`` epochs are done, continuing from the current position.

        After `load_checkpoint()`, calling ``fit`` with the same arguments continues the run
        exactly: the same batches in the same order, the same losses (on the same hardware and
        number of threads). One exception: random augmentation inside DataLoader workers draws
        differently in the epoch that was interrupted, since its first batches are skipped.

        Args:
            data: a data set of images or (image, label) items, or a DataLoader. With a data set
                the order is a seeded permutation per epoch and a resumed epoch starts where it
                stopped; a DataLoader is used as it is (resuming reads past the done batches).
            epochs: the total number of epochs (not additional ones).
            batch_size, shuffle, workers, drop_last: of the loader built for a data set (per
                process in a distributed run).
            callbacks: [`Callback`][predify.train.callbacks.Callback] objects (checkpoints, logs,
                progress bar, your own), called in order at each event.
            handle_interrupt: turn the first Ctrl-C into a stop at the end of the current step
                (so that a checkpoint callback writes a consistent state), with a message on
                stderr; a second Ctrl-C stops at once. Off by default: a library does not
                install signal handlers unasked (the CLI turns it on).

        Returns:
            The mean losses of each epoch completed in this call.
        """
        check_int(epochs, "epochs")
        check_int(batch_size, "batch_size")
        check_int(workers, "workers", minimum=0)
        epoch_means: list[dict[str, float]] = []
        if self.epoch >= epochs:
            return epoch_means
        self._callbacks = list(callbacks)
        for index, callback in enumerate(self._callbacks):
            state = self._callback_states.get(f"{index}:{type(callback).__name__}")
            if state is not None:
                callback.load_state_dict(state)
        try:
            self.prepare()
            interrupts = _deferred_interrupt() if handle_interrupt else nullcontext(_Interrupt())
            with interrupts as interrupt:
                for callback in self._callbacks:
                    callback.on_fit_start(self, epochs)
                while self.epoch < epochs:
                    means = self._fit_epoch(
                        data, epochs, batch_size, shuffle, workers, drop_last, interrupt
                    )
                    if means is not None:
                        epoch_means.append(means)
            for callback in self._callbacks:
                callback.on_fit_end(self)
        except BaseException as error:
            for callback in self._callbacks:
                callback.on_exception(self, error)
            raise
        finally:
            self._callbacks = []
        return epoch_means

    def _fit_epoch(
        self,
        data: Dataset[Any] | DataLoader[Any],
        epochs: int,
        batch_size: int,
        shuffle: bool,
        workers: int,
        drop_last: bool,
        interrupt: _Interrupt,
    ) -> dict[str, float] | None:
        """The rest of the current epoch; its mean losses (None if no batch was left)."""
        batches, total = self._epoch_batches(data, batch_size, shuffle, workers, drop_last)
        for callback in self._callbacks:
            callback.on_epoch_start(self, total)
        sums = dict.fromkeys(self.loss_names, 0.0)
        count = 0
        epoch_done = False
        while not epoch_done:
            try:
                batch = next(batches)
            except StopIteration:
                break
            except RuntimeError:
                # Ctrl-C also stops DataLoader workers; that is the interrupt.
                if interrupt.requested:
                    raise KeyboardInterrupt from None
                raise
            images = batch[0] if isinstance(batch, (list, tuple)) else batch
            lr = self.lr  # the rate this step uses (a scheduler may change it)
            losses = self.step(images)
            self._consistent = False
            self.batch_in_epoch += 1
            epoch_index = self.epoch
            if self.batch_in_epoch >= total:
                epoch_done = True
                self.epoch += 1
                self.batch_in_epoch = 0
                if self.scheduler is not None and self.scheduler_interval == "epoch":
                    self._step_scheduler(losses["total"])
            self._consistent = True
            count += 1
            for name in self.loss_names:
                sums[name] += losses[name]
            for callback in self._callbacks:
                callback.on_step_end(self, losses, lr, epoch_index)
            if interrupt.requested:
                raise KeyboardInterrupt
        if not epoch_done:
            raise RuntimeError(f"the data ran out after {self.batch_in_epoch} of {total} batches")
        means = {name: sums[name] / count for name in sums} if count else None
        for callback in self._callbacks:
            callback.on_epoch_end(self, means or {})
        return means


def _detached(state: PNetState) -> PNetState:
    """The state with every tensor cut from the graph: where a TBPTT window ends."""
    return PNetState(
        input=state.input,
        timestep=state.timestep,
        logits=state.logits.detach(),
        reps=[rep.detach() for rep in state.reps],
        preds=[p.detach() if p is not None else None for p in state.preds],
        error_terms=[e.detach() if e is not None else None for e in state.error_terms],
        errors=None,
    )

"""The fit loop of feedback training: [`FeedbackTrainer`][predify.train.trainer.FeedbackTrainer].

Only the decoders are trained: the backbone's parameters are set to ``requires_grad=False`` and it
runs in eval mode (BatchNorm statistics stay as trained); learnable hyperparameters, if any, are
left as they are (``predify tune`` fits them). What the decoders learn is an objective of
[`predify.train.objectives`][predify.train.objectives]; the order of the data is
[`predify.train.sampler`][predify.train.sampler]'s, the checkpoint's content
[`predify.train.state`][predify.train.state]'s.

Distributed (``torchrun``): the decoders, the only trained weights, are wrapped in
`DistributedDataParallel`, so gradients are averaged over processes and the decoders stay
identical; each process reads its own shard of every epoch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset

from ..checkpoint import feedback_state_dict, load_feedback_state
from ..config import PNetConfig
from ..errors import CheckpointError, ConfigError, NonFiniteLossError, PredifyError
from ..network import PredictiveNet
from ..runtime.device import resolve_device
from ..runtime.precision import Execution, autocast, grad_scaler, prepare_input
from ..runtime.validation import check_int
from .callbacks import Callback
from .interrupt import Interrupt, interrupt_handling
from .objectives import Objective, ObjectiveSettings, build_objective
from .optimizers import OPTIMIZERS, build_optimizer
from .rng import capture_rng_state, restore_rng_state
from .sampler import EpochPosition, epoch_batches
from .settings import TrainSettings
from .state import (
    CheckpointSettings,
    StateDict,
    TrainingCheckpoint,
    TrainingProgress,
    read_training_checkpoint,
    write_training_checkpoint,
)

__all__ = ["OPTIMIZERS", "FeedbackTrainer", "NonFiniteLossError"]

SchedulerLike = torch.optim.lr_scheduler.LRScheduler | torch.optim.lr_scheduler.ReduceLROnPlateau
SchedulerFactory = Callable[[torch.optim.Optimizer], SchedulerLike]


class _Decoders(nn.Module):
    """The decoders as the only registered parameters, so DDP averages exactly their gradients.

    ``forward(*args)`` runs the objective's forward; calling it through the DDP wrapper is what
    makes DDP synchronise the gradients of the backward that follows.
    """

    def __init__(self, decoders: Sequence[nn.Module], objective: Objective) -> None:
        super().__init__()
        self.decoders = nn.ModuleList(decoders)
        self._objective = objective

    def forward(self, *args: object) -> object:
        return self._objective.forward(*args)


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
        timesteps: 0 for the paper's objective (``reconstruction``); T > 0 to train through T
            steps of the dynamics (``dynamics``); see `predify.train.objectives`.
        tbptt: with ``timesteps > 0``, the truncation window in steps (None: the whole unroll).
        checkpoint_activations: with ``timesteps > 0``, recompute each step during backward
            instead of keeping its activations.
        precision: ``fp32``, ``bf16`` or ``fp16``: autocast of the forward pass and the losses
            (the decoders' weights stay fp32). fp16 adds a ``GradScaler`` and needs CUDA: on
            another device it is refused with a [`ConfigError`][predify.errors.ConfigError]
            rather than silently ignored, so a run never differs from what was asked for. bf16
            needs no scaling (fp32's exponent range) and runs on the CPU too.
        channels_last: NHWC layout for the network's 4-d weights and the input batches.
        device: where to train (the network is moved there when training starts): ``auto``,
            ``cpu``, ``cuda``, ``cuda:N`` or a ``torch.device``; None: where the network is.
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
        self.objective_settings = ObjectiveSettings(timesteps, tbptt, checkpoint_activations)
        if scheduler_interval not in ("epoch", "step"):
            raise ConfigError(
                f"scheduler_interval: expected 'epoch' or 'step', got {scheduler_interval!r}"
            )
        check_int(seed, "seed", minimum=None)

        self.pnet = pnet
        self.device = resolve_device(device) if device is not None else _device_of(pnet)
        self.execution = Execution(precision, channels_last)
        self.execution.check_device(self.device)
        if self.execution.precision == "fp16" and self.device.type != "cuda":
            raise ConfigError(
                f"--precision fp16: gradient scaling needs a CUDA device, and this run uses "
                f"{self.device}; use --precision bf16 (or a CUDA --device)"
            )
        self.seed = seed
        self.scheduler_interval = scheduler_interval

        self.trained_parameters = pnet.decoder_parameters()
        if not self.trained_parameters:
            raise ConfigError("the network's decoders have no parameters to train")
        for parameter in self.trained_parameters:
            parameter.requires_grad_(True)

        self.optimizer_name = optimizer_name if optimizer is None else type(optimizer).__name__
        self.optimizer = optimizer or build_optimizer(
            optimizer_name,
            self.trained_parameters,
            lr=lr,
            weight_decay=weight_decay,
            momentum=momentum,
        )
        built = scheduler(self.optimizer) if callable(scheduler) else scheduler
        self.scheduler: SchedulerLike | None = built
        scaled = self.execution.precision == "fp16"
        self.scaler = grad_scaler(self.device, self.execution) if scaled else None

        self.loss_names = [f"pcoder{index + 1}" for index in range(pnet.num_pcoders)] + ["total"]
        self.global_step = 0
        self.epoch = 0
        self.batch_in_epoch = 0
        # False while a step is half done (weights updated, counters not yet): no checkpoint then.
        self._consistent = True

        self.objective = build_objective(pnet, self.objective_settings)
        self._decoders = _Decoders([pcoder.decoder for pcoder in pnet.pcoders], self.objective)
        self._distributed_decoders: DistributedDataParallel | None = None
        self.distributed, self.rank, self.world_size = _process_group(distributed)
        self._prepared = False
        self._callbacks: list[Callback] = []
        self._callback_states: dict[str, StateDict] = {}

    @property
    def timesteps(self) -> int:
        return self.objective_settings.timesteps

    @property
    def tbptt(self) -> int | None:
        return self.objective_settings.tbptt

    @property
    def checkpoint_activations(self) -> bool:
        return self.objective_settings.checkpoint_activations

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
            self._distributed_decoders = DistributedDataParallel(
                self._decoders,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                broadcast_buffers=False,
            )
        self._prepared = True

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

    # ------------------------------------------------------------------ one batch
    def _forward(self, *args: object) -> object:
        module = self._distributed_decoders or self._decoders
        with autocast(self.device, self.execution):
            return module(*args)

    def _backward(self, loss: Tensor) -> None:
        scaled = self.scaler.scale(loss) if self.scaler is not None else loss
        scaled.backward(inputs=self.trained_parameters)

    def backward(self, images: Tensor) -> Tensor:
        """Forward and backward of one batch, without the optimiser step.

        Gradients accumulate in the decoders' ``.grad`` (scaled with ``precision="fp16"``).

        Args:
            images: [B, *input_size] on any device (moved to the trainer's).

        Returns:
            [n_pcoders] detached per-pcoder losses (summed over t = 0..T when ``timesteps > 0``).
        """
        self.prepare()
        images = prepare_input(images.to(self.device, non_blocking=True), self.execution)
        self.pnet.check_input(images)
        self.pnet.backbone.eval()
        return self.objective.backward(images, self._forward, self._backward)

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
    def _checkpoint_settings(self) -> CheckpointSettings:
        return CheckpointSettings(
            timesteps=self.timesteps,
            tbptt=self.tbptt,
            optimizer=self.optimizer_name,
            world_size=self.world_size,
        )

    def checkpoint(self) -> TrainingCheckpoint:
        """Everything needed to continue exactly: weights, optimiser, scheduler, RNGs, position."""
        return TrainingCheckpoint(
            config=self.pnet.resolved_config().to_toml(),
            pcoders={key: value.cpu() for key, value in feedback_state_dict(self.pnet).items()},
            optimizer=self.optimizer.state_dict(),
            scheduler=self.scheduler.state_dict() if self.scheduler is not None else None,
            scaler=self.scaler.state_dict() if self.scaler is not None else None,
            rng=capture_rng_state(),
            progress=TrainingProgress(
                step=self.global_step,
                epoch=self.epoch,
                batch_in_epoch=self.batch_in_epoch,
                seed=self.seed,
            ),
            settings=self._checkpoint_settings(),
            callbacks=self._callback_state(),
        )

    def state_dict(self) -> StateDict:
        """`checkpoint()` as the file holds it (see `predify.train.state`)."""
        return self.checkpoint().state_dict()

    def _callback_state(self) -> dict[str, StateDict]:
        states = {**self._callback_states}
        for index, callback in enumerate(self._callbacks):
            state = callback.state_dict()
            if state:
                states[f"{index}:{type(callback).__name__}"] = state
        return states

    def load_state_dict(self, state: Mapping[str, Any], source: str = "checkpoint") -> None:
        """Restore a `state_dict()`: the next step continues as if never interrupted."""
        checkpoint = TrainingCheckpoint.from_state_dict(state, source)
        checkpoint.settings.check_resumable(
            self._checkpoint_settings(), checkpoint.recorded_settings, source
        )
        try:
            config = PNetConfig.from_toml_string(checkpoint.config, source=f"{source} (config)")
            load_feedback_state(self.pnet, config, checkpoint.pcoders, source)
            self.optimizer.load_state_dict(checkpoint.optimizer)
            if self.scheduler is not None and checkpoint.scheduler is not None:
                self.scheduler.load_state_dict(checkpoint.scheduler)
            if self.scaler is not None and checkpoint.scaler is not None:
                self.scaler.load_state_dict(checkpoint.scaler)
            progress = checkpoint.progress
            self.global_step = progress.step
            self.epoch = progress.epoch
            self.batch_in_epoch = progress.batch_in_epoch
            self.seed = progress.seed
            restore_rng_state(checkpoint.rng)
            self._callback_states = checkpoint.callbacks
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
            with interrupt_handling(handle_interrupt) as interrupt:
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
        interrupt: Interrupt,
    ) -> dict[str, float] | None:
        """The rest of the current epoch; its mean losses (None if no batch was left)."""
        position = EpochPosition(
            self.epoch, self.batch_in_epoch, self.seed, self.rank, self.world_size
        )
        batches, total = epoch_batches(
            data,
            position,
            batch_size=batch_size,
            shuffle=shuffle,
            workers=workers,
            drop_last=drop_last,
            pin_memory=self.device.type == "cuda",
        )
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


def _device_of(pnet: PredictiveNet) -> torch.device:
    """Where the decoders are (the CPU for decoders without parameters)."""
    first = next(iter(pnet.decoder_parameters()), None)
    return first.device if first is not None else torch.device("cpu")


def _process_group(distributed: bool | None) -> tuple[bool, int, int]:
    """Whether to use DDP, this process's rank and the number of processes.

    None: DDP whenever an initialised process group has more than one process.
    """
    initialised = dist.is_available() and dist.is_initialized()
    if distributed is None:
        distributed = initialised and dist.get_world_size() > 1
    if distributed and not initialised:
        raise ConfigError(
            "distributed=True needs an initialised torch.distributed process group "
            "(launch with torchrun; predify.train.init_distributed joins it)"
        )
    if not distributed:
        return False, 0, 1
    return True, dist.get_rank(), dist.get_world_size()

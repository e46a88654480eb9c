"""One process of tests/train/test_distributed.py, started the way torchrun starts one.

The environment holds RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT, and, as under
torchrun, TORCHELASTIC_USE_AGENT_STORE=True: the rendezvous store is the one the test owns at
MASTER_PORT (the launcher's), so no process picks a port. Each rank initialises its decoders from
a different seed (DDP must replace them with rank 0's), trains on its own shard, and writes its
decoders and the data indices it read to OUT for the test to compare.

The builders here are also used by the test for the single-process reference run.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
from torch.utils.data import Dataset

from predify.models import ShallowCNN, pshallow
from predify.runtime.distributed import shutdown_distributed
from predify.train import FeedbackTrainer, MetricsLogging, ModelCheckpoint, init_distributed

WIDTHS = (4, 8, 8)


class RecordingDataset(Dataset[tuple[torch.Tensor, int]]):
    """40 fixed random images; remembers which indices this process read."""

    def __init__(self) -> None:
        self.images = torch.rand(40, 1, 28, 28, generator=torch.Generator().manual_seed(5))
        self.read: list[int] = []

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        self.read.append(index)
        return self.images[index], index % 10


def decoders(pnet: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in pnet.pcoders.state_dict().items() if torch.is_tensor(v)}


def build_pnet(decoder_seed: int) -> torch.nn.Module:
    torch.manual_seed(0)  # the same (frozen) backbone everywhere, as if loaded from a file
    backbone = ShallowCNN(1, 10, widths=WIDTHS)
    torch.manual_seed(decoder_seed)
    return pshallow(backbone, in_channels=1, image_size=28, widths=WIDTHS)


def fit_trainer(pnet: torch.nn.Module) -> FeedbackTrainer:
    # Plain SGD: its step is proportional to the gradient, so summed instead of averaged
    # gradients would show (Adam's normalised step would hide a factor of 2).
    return FeedbackTrainer(pnet, optimizer_name="sgd", lr=0.05, seed=1)  # type: ignore[arg-type]


def unrolled_trainer(pnet: torch.nn.Module) -> FeedbackTrainer:
    # Training through the dynamics (TBPTT windows, each a DDP forward and backward).
    return FeedbackTrainer(pnet, optimizer_name="sgd", lr=0.05, timesteps=2, tbptt=1)  # type: ignore[arg-type]


def unrolled_images(rank: int) -> torch.Tensor:
    return torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(rank))


def main(out: Path) -> None:
    torch.set_num_threads(1)
    info = init_distributed(torch.device("cpu"))
    assert info is not None and info.world_size == 2
    rank = info.rank
    pnet = build_pnet(decoder_seed=100 + rank)  # different initial decoders on each rank
    initial = decoders(pnet)

    data = RecordingDataset()
    trainer = fit_trainer(pnet)
    assert trainer.world_size == 2 and trainer.rank == rank
    own_dir = out / f"rank{rank}"
    trainer.fit(
        data,
        epochs=2,
        batch_size=5,
        callbacks=[
            ModelCheckpoint(own_dir / "checkpoint.pt"),
            MetricsLogging(own_dir, tensorboard=False),
        ],
    )
    after_fit = decoders(pnet)

    unrolled = unrolled_trainer(pnet)
    for _ in range(2):
        unrolled.step(unrolled_images(rank))
    torch.save(
        {
            "initial": initial,
            "after_fit": after_fit,
            "after_unrolled": decoders(pnet),
            "read": torch.tensor(data.read),
            "steps": trainer.global_step,
        },
        out / f"result{rank}.pt",
    )
    shutdown_distributed()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
    # Results are written and the group is left: skip interpreter finalisation, where Gloo's
    # threads can still abort the process (pytorch/pytorch#179291); one run of 19 here ended
    # with "terminate called without an active exception" (exit -6) at that point or earlier.
    sys.stdout.flush()
    os._exit(0)

"""Batches to the device: pinned memory and the one-batch-ahead copy (predify.runtime.loading)."""

from __future__ import annotations

import pytest
import torch

from predify.runtime.loading import device_batches, loader_options, pinned


def batches(count: int = 5) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(0)
    return [(torch.rand(3, 2, generator=generator), torch.arange(3) + 3 * i) for i in range(count)]


def test_on_the_cpu_batches_pass_through_in_order() -> None:
    source = batches()
    moved = list(device_batches(source, torch.device("cpu")))
    assert len(moved) == len(source)
    for (images, labels), (want_images, want_labels) in zip(moved, source, strict=True):
        assert torch.equal(images, want_images) and torch.equal(labels, want_labels)
    assert list(device_batches([], torch.device("cpu"))) == []


def test_loader_options_pin_only_for_cuda_and_workers_not_persistent() -> None:
    assert loader_options(torch.device("cpu"), 0) == {"num_workers": 0, "pin_memory": False}
    options = loader_options(torch.device("cuda"), 4)
    assert options["pin_memory"] is True and options["num_workers"] == 4
    # Not persistent: with persistent workers an evaluation cell's RSS grew by a batch per batch.
    assert "persistent_workers" not in options and options["prefetch_factor"] == 2


def test_pinned_is_a_no_op_off_cuda() -> None:
    tensor = torch.rand(4)
    assert pinned(tensor, torch.device("cpu")) is tensor


@pytest.mark.cuda
def test_cuda_prefetched_batches_arrive_intact_and_in_order() -> None:
    device = torch.device("cuda")
    source = [(pinned(images, device), labels) for images, labels in batches(8)]
    assert source[0][0].is_pinned()
    results = []
    for images, labels in device_batches(source, device):
        assert images.device.type == "cuda"
        results.append(((images * 2).cpu(), labels.cpu()))  # compute on the batch meanwhile
    for (images, labels), (want_images, want_labels) in zip(results, source, strict=True):
        assert torch.equal(images, want_images * 2) and torch.equal(labels, want_labels)


@pytest.mark.parametrize(
    ("cores", "local_processes", "device", "expected"),
    [
        (2, None, "cpu", 1),  # CI's machine: one reader beside the network
        (1, None, "cpu", 0),
        (16, "8", "cpu", 1),
        (8, "8", "cpu", 0),  # torchrun with a process per core: no core left for readers
        (1, None, "cuda", 4),
    ],
)
def test_default_workers_leave_the_network_a_core(
    monkeypatch: pytest.MonkeyPatch, cores: int, local_processes: str | None, device: str,
    expected: int,
) -> None:  # fmt: skip
    from predify.runtime import loading

    monkeypatch.setattr(
        loading.os, "sched_getaffinity", lambda _pid: set(range(cores)), raising=False
    )
    monkeypatch.setattr(loading.os, "cpu_count", lambda: cores)
    if local_processes is None:
        monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    else:
        monkeypatch.setenv("LOCAL_WORLD_SIZE", local_processes)
    assert loading.default_workers(torch.device(device)) == expected

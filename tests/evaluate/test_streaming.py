"""Streaming evaluation (issue #18): images flow batch by batch through a DataLoader, every
image's random draws are seeded by the image, so no result depends on the batch size, the
worker count or the split over processes; RobustBench's ImageNet subset is selected by name."""

from __future__ import annotations

import hashlib
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest
import torch
from evaluate_helpers import TIMESTEPS, make_pnet, sample_images
from PIL import Image
from torch.utils.data import Dataset, TensorDataset
from torchvision.datasets import ImageFolder

from predify.errors import DataError
from predify.evaluate.analysis import representation_analysis
from predify.evaluate.data import _select
from predify.evaluate.pixel_space import PixelSpaceNet
from predify.evaluate.robustness import OnTheFlyCorruptions, corruption_sweep
from predify.evaluate.streaming import Share, batch_plan, reassemble

T = TIMESTEPS
# Random corruptions (noise draws, elastic displacement) and a deterministic blur.
CORRUPTIONS = ["gaussian_noise", "impulse_noise", "elastic_transform", "motion_blur"]


@pytest.fixture(scope="module")
def model() -> PixelSpaceNet:
    return PixelSpaceNet(make_pnet(timesteps=T)).eval()


@pytest.fixture(scope="module")
def dataset() -> TensorDataset:
    return TensorDataset(*sample_images(23))  # 23: neither 3 nor 7 divides it


def _streamed(source: OnTheFlyCorruptions, corruption: str, severity: int) -> torch.Tensor:
    return torch.cat([images for images, _ in source.batches(corruption, severity)])


def test_results_do_not_depend_on_batch_size_or_workers(model, dataset) -> None:
    small = OnTheFlyCorruptions(dataset, batch_size=3, seed=5, workers=0)
    large = OnTheFlyCorruptions(dataset, batch_size=7, seed=5, workers=2)
    for corruption in CORRUPTIONS:
        assert torch.equal(_streamed(small, corruption, 4), _streamed(large, corruption, 4))
    one = corruption_sweep(model, small, CORRUPTIONS, [2, 5], timesteps=T, progress=False)
    two = corruption_sweep(model, large, CORRUPTIONS, [2, 5], timesteps=T, progress=False)
    assert one is not None and two is not None
    assert np.array_equal(one.clean.wrong, two.clean.wrong)
    for key, cell in one.cells.items():
        assert np.array_equal(cell.wrong, two.cells[key].wrong), key
    # The seed matters: another seed draws other noise.
    other = OnTheFlyCorruptions(dataset, batch_size=3, seed=6)
    assert not torch.equal(
        _streamed(other, "gaussian_noise", 4), _streamed(small, "gaussian_noise", 4)
    )


def test_analysis_does_not_depend_on_batch_size_or_workers(model, dataset) -> None:
    def analyse(batch_size: int, workers: int):
        return representation_analysis(
            model, dataset, timesteps=T, sigmas=[0.5, 1.0], batch_size=batch_size,
            n_resamples=0, workers=workers,
        )  # fmt: skip

    small, large = analyse(3, 0), analyse(7, 2)
    # Per image the same noise; only float rounding of other batch compositions may differ.
    np.testing.assert_allclose(small.correlation_distance, large.correlation_distance, rtol=1e-5)
    np.testing.assert_allclose(
        small.prediction_error_noisy, large.prediction_error_noisy, rtol=1e-5
    )


class _Counting(Dataset):
    """Counts the items read."""

    def __init__(self, inner: Dataset) -> None:
        self.inner, self.reads = inner, 0

    def __len__(self) -> int:
        return len(self.inner)  # type: ignore[arg-type]

    def __getitem__(self, index: int):
        self.reads += 1
        return self.inner[index]


def test_images_are_read_batch_by_batch(model, dataset, monkeypatch) -> None:
    counting = _Counting(dataset)
    seen: list[int] = []
    forward = PixelSpaceNet.forward

    def recording(self, images, timesteps, record=False):
        seen.append(counting.reads)
        return forward(self, images, timesteps, record)

    monkeypatch.setattr(PixelSpaceNet, "forward", recording)
    source = OnTheFlyCorruptions(counting, batch_size=5)
    corruption_sweep(model, source, ["contrast"], [1], timesteps=T, progress=False)
    # Before each pass, only the images of the batches so far were read: 5, 10, ..., 23.
    assert seen == [5, 10, 15, 20, 23, 28, 33, 38, 43, 46]


def test_batches_are_dealt_round_robin_and_put_back_in_order() -> None:
    plan = batch_plan(10, 3)
    assert plan == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]
    shares = [Share(rank, 3).batches(plan) for rank in range(3)]
    assert shares == [[[0, 1, 2], [9]], [[3, 4, 5]], [[6, 7, 8]]]
    # Each process's results: its images' positions, in its batches' order.
    parts = [np.array([[p for batch in share for p in batch]]) for share in shares]
    assert reassemble(parts, plan, 3).tolist() == [list(range(10))]


def test_the_shipped_robustbench_list_is_robustbench_s() -> None:
    data = (files("predify.evaluate") / "subsets" / "imagenet_test_image_ids.txt").read_bytes()
    # robustbench-1.1.1 wheel, RECORD: sha256=1BIWJtB3IqASbDWxVjBC5GpUbxoFznBfLNxjWJbVhXQ
    assert hashlib.sha256(data).hexdigest() == (
        "d4121626d07722a0126c35b1563042e46a546f1a05ce705f2cdc635896d58574"
    )
    names = data.decode().split()
    assert len(names) == len(set(names)) == 5000


def _folder(root: Path, names: list[str]) -> ImageFolder:
    root.mkdir()
    buffer = root / "one.jpg"
    Image.new("RGB", (8, 8), (10, 20, 30)).save(buffer)
    payload = buffer.read_bytes()
    buffer.unlink()
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(payload)
    return ImageFolder(str(root))


def test_robustbench_subset_is_its_images_in_its_order(tmp_path) -> None:
    listed = (files("predify.evaluate") / "subsets" / "imagenet_test_image_ids.txt").read_text()
    names = listed.split()
    partial = _folder(tmp_path / "partial", names[:20])
    with pytest.raises(DataError, match=r"lacks 4980 of RobustBench's 5000 .*first: "):
        _select(partial, "folder:partial", None, 0, "robustbench", False, 0)
    whole = _folder(tmp_path / "whole", [*names, "n01440764/not_in_the_list.JPEG"])
    indices, selection, skipped = _select(whole, "folder:whole", 12, 0, "robustbench", False, 0)
    assert selection == "robustbench" and skipped.count == 0
    chosen = [Path(whole.samples[i][0]).relative_to(whole.root).as_posix() for i in indices]
    assert chosen == names[:12]

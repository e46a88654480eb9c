"""Tests of predify.data: MNIST-5k, torchvision loaders on fake files, image folders, splits."""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torch.utils.data import Subset, TensorDataset

from predify.data import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    MNIST_MEAN,
    MNIST_STD,
    InputNormalization,
    check_disjoint,
    dataset_info,
    load_dataset,
    load_mnist5k,
    mnist5k_splits,
    split_indices,
    stratified_split,
    torchvision_dataset,
)
from predify.errors import ConfigError, DataError

# ---------------------------------------------------------------------------------------------
# Fake on-disk data in torchvision's formats
# ---------------------------------------------------------------------------------------------


def _write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array in the IDX format of the MNIST files (big-endian header)."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    header += b"".join(struct.pack(">I", size) for size in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def _write_fake_mnist(root: Path, folder: str, n_train: int = 6, n_test: int = 4) -> np.ndarray:
    """Write ROOT/<folder>/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte; return train images."""
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    train_images = rng.integers(0, 256, size=(n_train, 28, 28), dtype=np.uint8)
    for prefix, images in (
        ("train", train_images),
        ("t10k", rng.integers(0, 256, size=(n_test, 28, 28), dtype=np.uint8)),
    ):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(len(images)) % 10)
    return train_images


def _write_fake_cifar10(root: Path, per_batch: int = 2) -> np.ndarray:
    """Write ROOT/cifar-10-batches-py as pickled batches like the real ones; return batch 1 data."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    first_batch = None
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        data = rng.integers(0, 256, size=(per_batch, 3 * 32 * 32), dtype=np.uint8)
        first_batch = data if first_batch is None else first_batch
        batch = {"data": data, "labels": list(range(per_batch)), "batch_label": name}
        (folder / name).write_bytes(pickle.dumps(batch))
    label_names = ["airplane", "automobile", "bird", "cat", "deer"]
    label_names += ["dog", "frog", "horse", "ship", "truck"]
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": label_names}))
    assert first_batch is not None
    return first_batch


def _write_fake_cifar100(root: Path, n: int = 3) -> None:
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(2)
    for name in ("train", "test"):
        data = rng.integers(0, 256, size=(n, 3 * 32 * 32), dtype=np.uint8)
        batch = {"data": data, "fine_labels": [0, 50, 99][:n], "coarse_labels": [0] * n}
        (folder / name).write_bytes(pickle.dumps(batch))
    meta = {"fine_label_names": [f"class{i}" for i in range(100)]}
    (folder / "meta").write_bytes(pickle.dumps(meta))


@pytest.fixture
def skip_cifar_md5(monkeypatch: pytest.MonkeyPatch) -> None:
    """torchvision md5-checks CIFAR files, which fake files cannot pass; check existence only."""
    import torchvision.datasets.cifar as cifar_module

    monkeypatch.setattr(
        cifar_module, "check_integrity", lambda path, md5=None: Path(path).is_file()
    )


def _write_image_folder(root: Path, classes: dict[str, int], size: tuple[int, int]) -> None:
    rng = np.random.default_rng(3)
    for class_name, count in classes.items():
        (root / class_name).mkdir(parents=True)
        for i in range(count):
            pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / class_name / f"img{i}.png")


# ---------------------------------------------------------------------------------------------
# MNIST-5k
# ---------------------------------------------------------------------------------------------


def test_mnist5k_shapes_range_and_balance() -> None:
    images, labels = load_mnist5k()
    assert images.shape == (5000, 1, 28, 28) and images.dtype == torch.float32
    assert labels.shape == (5000,) and labels.dtype == torch.int64
    # Grey levels 0..255 divided by 255: both ends are reached, nothing outside.
    assert images.min().item() == 0.0 and images.max().item() == 1.0
    assert torch.bincount(labels, minlength=10).tolist() == [500] * 10
    # Every call returns fresh tensors, so modifying one cannot corrupt the cached data.
    images.zero_()
    assert load_mnist5k()[0].max().item() == 1.0


def test_mnist5k_splits_are_stratified_disjoint_and_complete() -> None:
    splits = mnist5k_splits(seed=0)
    parts = {"train": splits.train, "val": splits.val, "test": splits.test}
    indices = {
        "train": splits.train_indices,
        "val": splits.val_indices,
        "test": splits.test_indices,
    }
    assert {name: len(part) for name, part in parts.items()} == {
        "train": 3000,
        "val": 1000,
        "test": 1000,
    }
    for name, per_class in (("train", 300), ("val", 100), ("test", 100)):
        assert torch.bincount(parts[name].tensors[1], minlength=10).tolist() == [per_class] * 10
    check_disjoint(indices["train"], indices["val"], ("train", "val"))
    check_disjoint(indices["train"], indices["test"], ("train", "test"))
    check_disjoint(indices["val"], indices["test"], ("val", "test"))
    assert sorted(torch.cat(list(indices.values())).tolist()) == list(range(5000))
    # The datasets hold exactly the images the indices point at.
    images, labels = load_mnist5k()
    assert torch.equal(splits.val.tensors[0], images[splits.val_indices])
    assert torch.equal(splits.val.tensors[1], labels[splits.val_indices])


def test_mnist5k_splits_are_fixed_for_a_seed_and_ignore_global_rng() -> None:
    torch.manual_seed(123)
    np.random.seed(123)
    first = mnist5k_splits(seed=0)
    torch.manual_seed(999)
    np.random.seed(999)
    second = mnist5k_splits(seed=0)
    other_seed = mnist5k_splits(seed=1)
    assert torch.equal(first.test_indices, second.test_indices)
    assert torch.equal(first.train_indices, second.train_indices)
    assert not torch.equal(first.test_indices, other_seed.test_indices)


def test_mnist5k_splits_rejects_wrong_number_of_fractions() -> None:
    with pytest.raises(DataError, match=r"expected exactly three \(train, val, test\)"):
        mnist5k_splits(fractions=(0.5, 0.5))


def test_load_dataset_mnist5k_splits_and_resize() -> None:
    assert len(load_dataset("mnist5k")) == 3000  # type: ignore[arg-type]
    assert len(load_dataset("mnist5k", train=False)) == 1000  # type: ignore[arg-type]
    val = load_dataset("MNIST5K:val")
    assert len(val) == 1000  # type: ignore[arg-type]
    assert torch.equal(val[0][0], mnist5k_splits().val[0][0])
    assert dataset_info(val).image_shape == (1, 28, 28)
    resized = load_dataset("mnist5k:test", image_size=32)
    image, _ = resized[0]
    assert image.shape == (1, 32, 32) and image.min() >= 0.0 and image.max() <= 1.0
    assert dataset_info(resized).num_classes == 10
    with pytest.raises(DataError, match="unknown mnist5k split 'holdout'; expected one of"):
        load_dataset("mnist5k:holdout")
    with pytest.raises(DataError, match="augment=True is not supported for mnist5k"):
        load_dataset("mnist5k", augment=True)


# ---------------------------------------------------------------------------------------------
# splits
# ---------------------------------------------------------------------------------------------


def test_split_indices_sizes_disjoint_deterministic() -> None:
    state = torch.get_rng_state()
    parts = split_indices(10, (0.5, 0.3, 0.2), seed=7)
    assert torch.equal(torch.get_rng_state(), state)  # global RNG untouched
    assert [len(p) for p in parts] == [5, 3, 2]
    assert sorted(torch.cat(parts).tolist()) == list(range(10))
    assert all(p.dtype == torch.int64 and torch.equal(p, p.sort().values) for p in parts)
    again = split_indices(10, (0.5, 0.3, 0.2), seed=7)
    assert all(torch.equal(a, b) for a, b in zip(parts, again, strict=True))
    # Largest remainder: 7 * (1/3, 1/3, 1/3) -> 3, 2, 2, still using all 7 items.
    assert [len(p) for p in split_indices(7, (1 / 3, 1 / 3, 1 / 3), seed=0)] == [3, 2, 2]
    # Fractions summing to less than 1 leave the rest out.
    subset = split_indices(100, (0.1, 0.2), seed=0)
    assert [len(p) for p in subset] == [10, 20]
    check_disjoint(subset[0], subset[1])


def test_stratified_split_keeps_class_proportions() -> None:
    labels = torch.tensor([0] * 10 + [1] * 20 + [2] * 30)
    first, second = stratified_split(labels, (0.5, 0.5), seed=3)
    assert torch.bincount(labels[first]).tolist() == [5, 10, 15]
    assert torch.bincount(labels[second]).tolist() == [5, 10, 15]
    check_disjoint(first, second)
    again = stratified_split(labels.numpy(), (0.5, 0.5), seed=3)
    assert torch.equal(first, again[0])


def test_check_disjoint_reports_overlap() -> None:
    check_disjoint(torch.tensor([0, 1, 2]), np.array([3, 4]))
    with pytest.raises(
        DataError, match=r"^tuning split and evaluation split overlap in 2 images \(indices 2, 3\)"
    ):
        check_disjoint([0, 1, 2, 3], [2, 3, 9])
    with pytest.raises(DataError, match="train split and test split overlap in 1 images"):
        check_disjoint([5], [5], names=("train", "test"))
    with pytest.raises(DataError, match="expected a 1-D array"):
        check_disjoint(np.zeros((2, 2), dtype=int), [1])
    with pytest.raises(DataError, match="expected integer indices"):
        check_disjoint([0.5], [1])  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("n", "fractions", "message"),
    [
        (0, (0.5,), r"n = 0; expected a positive number of items"),
        (10, (), r"fractions is empty"),
        (10, (0.5, 0.0), r"fractions\[1\] = 0.0; expected every fraction in \(0, 1\]"),
        (10, (0.5, float("nan")), r"fractions\[1\] = nan"),
        (10, (0.7, 0.7), r"sum to 1.4; expected a sum of at most 1"),
        (3, (0.9, 0.1), r"fraction 0.1 \(part 1\) of 3 items gives an empty split"),
    ],
)
def test_split_indices_errors(n: int, fractions: tuple[float, ...], message: str) -> None:
    with pytest.raises(DataError, match=message):
        split_indices(n, fractions, seed=0)


def test_stratified_split_errors() -> None:
    with pytest.raises(DataError, match=r"labels has shape \(2, 2\); expected a 1-D array"):
        stratified_split(torch.zeros(2, 2, dtype=torch.long), (0.5, 0.5), seed=0)
    with pytest.raises(DataError, match="labels is empty"):
        stratified_split([], (0.5, 0.5), seed=0)
    with pytest.raises(DataError, match="expected integer class labels"):
        stratified_split(torch.tensor([0.0, 1.0]), (0.5, 0.5), seed=0)


# ---------------------------------------------------------------------------------------------
# Normalisation
# ---------------------------------------------------------------------------------------------


def test_input_normalization_matches_formula_and_stays_out_of_state_dict() -> None:
    layer = InputNormalization(IMAGENET_MEAN, IMAGENET_STD)
    images = torch.rand(2, 3, 4, 5, requires_grad=True)
    expected = (images - torch.tensor(IMAGENET_MEAN).view(3, 1, 1)) / torch.tensor(
        IMAGENET_STD
    ).view(3, 1, 1)
    assert torch.allclose(layer(images), expected)
    layer(images).sum().backward()  # differentiable back to pixel space
    assert images.grad is not None
    assert torch.allclose(images.grad[0, 0], torch.full((4, 5), 1 / IMAGENET_STD[0]))
    backbone = nn.Conv2d(1, 2, 3)
    wrapped = nn.Sequential(InputNormalization(MNIST_MEAN, MNIST_STD), backbone)
    assert set(wrapped.state_dict()) == {"1.weight", "1.bias"}
    assert wrapped(torch.rand(1, 1, 8, 8)).shape == (1, 2, 6, 6)
    assert "mean=(0.1307), std=(0.3081)" in repr(wrapped)


def test_input_normalization_errors() -> None:
    with pytest.raises(ConfigError, match="got 3 means and 1 stds"):
        InputNormalization(IMAGENET_MEAN, (0.5,))
    with pytest.raises(ConfigError, match="expected all stds > 0"):
        InputNormalization((0.5,), (0.0,))
    with pytest.raises(
        DataError, match=r"input has shape \(2, 1, 4, 4\); expected \[\.\.\., 3, H, W\]"
    ):
        InputNormalization(IMAGENET_MEAN, IMAGENET_STD)(torch.rand(2, 1, 4, 4))


# ---------------------------------------------------------------------------------------------
# torchvision data sets on fake files
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "folder"), [("mnist", "MNIST"), ("fashionmnist", "FashionMNIST")])
def test_mnist_family_from_raw_idx_files(tmp_path: Path, name: str, folder: str) -> None:
    train_images = _write_fake_mnist(tmp_path, folder)
    train = load_dataset(f"{name}:{tmp_path}")
    assert len(train) == 6  # type: ignore[arg-type]
    image, label = train[1]
    assert image.shape == (1, 28, 28) and image.dtype == torch.float32
    assert torch.allclose(image[0], torch.from_numpy(train_images[1]).float() / 255)
    assert int(label) == 1
    test = load_dataset(name, root=tmp_path, train=False)
    assert len(test) == 4  # type: ignore[arg-type]
    assert dataset_info(test).num_classes == 10
    resized = torchvision_dataset(name, tmp_path, image_size=32)
    assert dataset_info(resized).image_shape == (1, 32, 32)


def test_mnist_missing_files_message(tmp_path: Path) -> None:
    with pytest.raises(
        DataError,
        match=r"^MNIST not found under .*; pass --download or point --data at the directory that "
        r"contains MNIST/raw",
    ):
        load_dataset("mnist", root=tmp_path)


def test_cifar10_without_matching_md5_is_reported_as_not_found(tmp_path: Path) -> None:
    _write_fake_cifar10(tmp_path)
    with pytest.raises(
        DataError,
        match=r"^CIFAR10 not found under .*; pass --download or point --data at the directory "
        r"that contains cifar-10-batches-py",
    ):
        load_dataset(f"cifar10:{tmp_path}")


@pytest.mark.usefixtures("skip_cifar_md5")
def test_cifar10_from_pickled_batches(tmp_path: Path) -> None:
    first_batch = _write_fake_cifar10(tmp_path)
    train = load_dataset(f"cifar10:{tmp_path}")
    assert len(train) == 10  # type: ignore[arg-type]
    image, label = train[0]
    assert image.shape == (3, 32, 32)
    expected = torch.from_numpy(first_batch[0].reshape(3, 32, 32)).float() / 255
    assert torch.allclose(image, expected)
    assert label == 0
    assert dataset_info(train) == dataset_info(load_dataset("cifar10", root=tmp_path))
    info = dataset_info(train)
    assert (info.num_classes, info.image_shape) == (10, (3, 32, 32))
    assert len(load_dataset("cifar10", root=tmp_path, train=False)) == 2  # type: ignore[arg-type]
    augmented = load_dataset("cifar10", root=tmp_path, augment=True, image_size=40)
    assert augmented[0][0].shape == (3, 40, 40)


@pytest.mark.usefixtures("skip_cifar_md5")
def test_cifar100_from_pickled_files(tmp_path: Path) -> None:
    _write_fake_cifar100(tmp_path)
    train = load_dataset(f"cifar100:{tmp_path}")
    assert len(train) == 3  # type: ignore[arg-type]
    assert train[1][1] == 50
    assert dataset_info(train).num_classes == 100


def test_failed_download_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision.datasets as tv_datasets

    def refuse_download(self: object) -> None:
        raise RuntimeError("Error downloading cifar-10-python.tar.gz:\nno network")

    monkeypatch.setattr(tv_datasets.CIFAR10, "download", refuse_download)
    with pytest.raises(
        DataError, match=r"^could not download CIFAR10 into .*: Error downloading .* no network$"
    ):
        load_dataset("cifar10", root=tmp_path / "new", download=True)


@pytest.mark.usefixtures("skip_cifar_md5")
def test_empty_torchvision_dataset_is_rejected(tmp_path: Path) -> None:
    _write_fake_cifar10(tmp_path, per_batch=0)
    with pytest.raises(DataError, match=r"^CIFAR10 train split under .* is empty \(0 images\)$"):
        load_dataset("cifar10", root=tmp_path)


def test_unreadable_torchvision_files_are_reported(tmp_path: Path) -> None:
    _write_fake_mnist(tmp_path, "MNIST", n_train=0)  # a header without pixels: torchvision fails
    with pytest.raises(
        DataError, match=r"^MNIST files under .* could not be read \(ValueError: .*\); expected"
    ) as caught:
        load_dataset("mnist", root=tmp_path)
    assert "\n" not in str(caught.value)


# ---------------------------------------------------------------------------------------------
# Image folders
# ---------------------------------------------------------------------------------------------


def test_image_folder_eval_and_train_transforms(tmp_path: Path) -> None:
    root = tmp_path / "val"
    _write_image_folder(root, {"cat": 2, "dog": 3}, size=(40, 30))
    dataset = load_dataset(f"folder:{root}", image_size=16)
    assert len(dataset) == 5  # type: ignore[arg-type]
    image, label = dataset[4]
    assert image.shape == (3, 16, 16) and image.min() >= 0.0 and image.max() <= 1.0
    assert label == 1  # classes sorted by name: cat -> 0, dog -> 1
    # A plain path works too; the default size is the standard 224 center crop.
    assert dataset_info(load_dataset(str(root))) == dataset_info(load_dataset(f"folder:{root}"))
    assert dataset_info(load_dataset(str(root))).image_shape == (3, 224, 224)
    assert dataset_info(load_dataset(str(root))).num_classes == 2
    # Deterministic evaluation transform, random training transform of the right size.
    assert torch.equal(dataset[0][0], dataset[0][0])
    augmented = load_dataset(f"folder:{root}", image_size=16, augment=True)
    assert augmented[0][0].shape == (3, 16, 16)


def test_image_folder_errors(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(DataError, match=r"^data folder .*nope does not exist \(expected ImageNet"):
        load_dataset(f"folder:{missing}")
    with pytest.raises(DataError, match=r"data folder .*nope does not exist"):
        load_dataset(str(missing))
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    with pytest.raises(DataError, match=r"file.txt is not a directory"):
        load_dataset(f"folder:{a_file}")
    empty_classes = tmp_path / "empty"
    (empty_classes / "cat").mkdir(parents=True)
    (empty_classes / "cat" / "notes.txt").write_text("not an image")
    expected = (
        rf"^no images found under {empty_classes} "
        r"\(expected ImageNet layout root/class/\*\.jpg\)$"
    )
    with pytest.raises(DataError, match=expected):
        load_dataset(f"folder:{empty_classes}")
    flat = tmp_path / "flat"  # images directly under the root, no class folders
    flat.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(flat / "a.png")
    with pytest.raises(DataError, match=r"^no images found under .*flat \(expected ImageNet"):
        load_dataset(str(flat))


# ---------------------------------------------------------------------------------------------
# Spec errors and dataset_info
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "kwargs", "message"),
    [
        ("imagenet21k", {}, r"^unknown data set 'imagenet21k'; expected one of mnist5k"),
        ("", {}, r"^empty data set spec; expected one of mnist5k"),
        ("cifar10", {}, r"^cifar10 needs a root directory; expected 'cifar10:ROOT'"),
        ("cifar10:/a", {"root": "/b"}, r"^data set root given twice, '/a' in spec"),
        ("folder:", {}, r"^data set spec 'folder:' has no path; expected folder:PATH"),
        ("mnist", {"root": "/definitely/not/here"}, r"^MNIST not found under /definitely"),
        ("cifar100:/definitely/not/here", {}, r"^CIFAR100 not found under /definitely"),
        ("mnist5k", {"image_size": 0}, r"^image_size = 0; expected a positive number"),
    ],
)
def test_load_dataset_errors(spec: str, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(DataError, match=message) as caught:
        load_dataset(spec, **kwargs)  # type: ignore[arg-type]
    assert "\n" not in str(caught.value)


def test_unknown_name_lists_every_valid_spec() -> None:
    with pytest.raises(DataError) as caught:
        load_dataset("svhn")
    for name in ("mnist5k", "mnist", "fashionmnist", "cifar10", "cifar100", "folder:PATH"):
        assert name in str(caught.value)


def test_augment_not_offered_for_mnist(tmp_path: Path) -> None:
    _write_fake_mnist(tmp_path, "MNIST")
    with pytest.raises(DataError, match="augment=True is not supported for MNIST"):
        load_dataset("mnist", root=tmp_path, augment=True)


def test_dataset_info_on_wrappers_and_errors() -> None:
    images, labels = torch.rand(6, 3, 8, 8), torch.tensor([0, 1, 2, 3, 4, 4])
    tensors = TensorDataset(images, labels)
    assert dataset_info(tensors).num_classes == 5
    assert dataset_info(Subset(tensors, [0, 1])).image_shape == (3, 8, 8)
    with pytest.raises(DataError, match=r"^data set TensorDataset is empty \(0 images\)$"):
        dataset_info(TensorDataset(torch.rand(0, 1, 2, 2), torch.zeros(0, dtype=torch.long)))
    with pytest.raises(DataError, match="holds a str; expected a tensor image"):
        dataset_info([("not an image", 0)])  # type: ignore[arg-type]
    with pytest.raises(DataError, match="has no integer label tensor"):
        dataset_info(TensorDataset(images, torch.rand(6)))

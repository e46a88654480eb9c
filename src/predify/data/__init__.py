"""Data sets in pixel space, deterministic splits and input normalisation.

Images from every loader here are float tensors [C, H, W] in [0, 1]; the mean/std normalisation a
backbone expects is a model layer (:class:`InputNormalization`), because corruptions and noise are
applied in pixel space.
"""

from predify.data.datasets import (
    TORCHVISION_DATASETS,
    TransformedDataset,
    image_folder,
    imagenet_eval_transform,
    imagenet_train_transform,
    torchvision_dataset,
)
from predify.data.mnist5k import Splits, load_mnist5k, mnist5k_splits
from predify.data.normalization import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    CIFAR100_MEAN,
    CIFAR100_STD,
    FASHIONMNIST_MEAN,
    FASHIONMNIST_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    MNIST_MEAN,
    MNIST_STD,
    InputNormalization,
    pretrained_normalization,
)
from predify.data.spec import DATASET_NAMES, DatasetInfo, dataset_info, load_dataset
from predify.data.splits import check_disjoint, split_indices, stratified_split

__all__ = [
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "CIFAR100_MEAN",
    "CIFAR100_STD",
    "DATASET_NAMES",
    "FASHIONMNIST_MEAN",
    "FASHIONMNIST_STD",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "MNIST_MEAN",
    "MNIST_STD",
    "TORCHVISION_DATASETS",
    "DatasetInfo",
    "InputNormalization",
    "Splits",
    "TransformedDataset",
    "check_disjoint",
    "dataset_info",
    "image_folder",
    "imagenet_eval_transform",
    "imagenet_train_transform",
    "load_dataset",
    "load_mnist5k",
    "mnist5k_splits",
    "pretrained_normalization",
    "split_indices",
    "stratified_split",
    "torchvision_dataset",
]

"""Data sets in pixel space, deterministic splits and input normalisation.

Images from every loader here are float tensors [C, H, W] in [0, 1]; the mean/std normalisation a
backbone expects is a model layer ([`InputNormalization`][predify.data.InputNormalization]),
because corruptions and noise are
applied in pixel space.
"""

from predify.data import normalization
from predify.data.datasets import (
    TORCHVISION_DATASETS,
    TransformedDataset,
    image_folder,
    imagenet_eval_transform,
    imagenet_train_transform,
    torchvision_dataset,
)
from predify.data.mnist5k import Splits, load_mnist5k, mnist5k_splits
from predify.data.noise import NOISE_FORMS, NoiseSpec, add_gaussian_noise, add_noise, parse_noise
from predify.data.normalization import *  # noqa: F403  (the constants and InputNormalization)
from predify.data.spec import DATASET_NAMES, DatasetInfo, dataset_info, load_dataset
from predify.data.splits import check_disjoint, split_indices, stratified_split

__all__ = [
    *normalization.__all__,
    "NOISE_FORMS",
    "NoiseSpec",
    "add_gaussian_noise",
    "add_noise",
    "parse_noise",
    "DATASET_NAMES",
    "TORCHVISION_DATASETS",
    "DatasetInfo",
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
    "split_indices",
    "stratified_split",
    "torchvision_dataset",
]

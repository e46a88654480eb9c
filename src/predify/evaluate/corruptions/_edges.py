"""OpenCV-like 8-bit image operations used by the spatter corruption, on torch batches.

Inputs and outputs are float tensors [N, 1, H, W] holding integer grey levels 0..255 (the
published code works on uint8 arrays there), so the steps can stay on the images' device.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ._filters import BorderMode, pad2d

__all__ = ["box_blur3", "canny", "distance_to_edges", "equalize_hist", "filter3x3"]

_SOBEL_X = ((-1.0, 0.0, 1.0), (-2.0, 0.0, 2.0), (-1.0, 0.0, 1.0))
_TAN_22_5 = math.tan(math.radians(22.5))
_TAN_67_5 = math.tan(math.radians(67.5))


def filter3x3(images: Tensor, kernel: Tensor, mode: BorderMode) -> Tensor:
    """Correlate [N, 1, H, W] with a 3 x 3 ``kernel`` (``cv2.filter2D``), border ``mode``."""
    padded = pad2d(images, 1, 1, mode)
    weight = kernel.to(device=images.device, dtype=images.dtype).view(1, 1, 3, 3)
    return F.conv2d(padded, weight)


def box_blur3(images: Tensor) -> Tensor:
    """``cv2.blur(img, (3, 3))``: 3 x 3 mean, reflect-101 border. [N, 1, H, W] -> same."""
    kernel = torch.full((3, 3), 1.0 / 9.0, dtype=images.dtype)
    return filter3x3(images, kernel, "reflect101")


def canny(images: Tensor, low: float, high: float) -> Tensor:
    """``cv2.Canny(img, low, high)`` (3 x 3 Sobel, L1 gradient) -> bool edges [N, 1, H, W].

    Sobel gradients with replicated border; non-maximum suppression along the gradient
    direction quantised to 0, 45, 90 or 135 degrees with OpenCV's tie rules; pixels above
    ``high`` seed the edges, which grow through 8-connected pixels above ``low``.
    """
    sobel_x = torch.tensor(_SOBEL_X, dtype=images.dtype)
    grad_x = filter3x3(images, sobel_x, "replicate")
    grad_y = filter3x3(images, sobel_x.T.contiguous(), "replicate")
    magnitude = grad_x.abs() + grad_y.abs()
    # Neighbours outside the image count as 0, as in OpenCV's zero-padded magnitude buffer.
    padded = F.pad(magnitude, (1, 1, 1, 1))
    height, width = magnitude.shape[-2:]

    def neighbour(dy: int, dx: int) -> Tensor:
        return padded[..., 1 + dy : 1 + dy + height, 1 + dx : 1 + dx + width]

    abs_x, abs_y = grad_x.abs(), grad_y.abs()
    horizontal = abs_y < abs_x * _TAN_22_5
    vertical = abs_y > abs_x * _TAN_67_5
    same_sign = (grad_x >= 0) == (grad_y >= 0)
    keep_horizontal = (magnitude > neighbour(0, -1)) & (magnitude >= neighbour(0, 1))
    keep_vertical = (magnitude > neighbour(-1, 0)) & (magnitude >= neighbour(1, 0))
    keep_main_diagonal = (magnitude > neighbour(-1, -1)) & (magnitude > neighbour(1, 1))
    keep_anti_diagonal = (magnitude > neighbour(-1, 1)) & (magnitude > neighbour(1, -1))
    keep_diagonal = torch.where(same_sign, keep_main_diagonal, keep_anti_diagonal)
    is_maximum = torch.where(
        horizontal, keep_horizontal, torch.where(vertical, keep_vertical, keep_diagonal)
    )
    candidate = is_maximum & (magnitude > low)
    edges = candidate & (magnitude > high)
    # Hysteresis: grow the strong edges through candidates until nothing changes.
    candidate_f = candidate.to(images.dtype)
    edges_f = edges.to(images.dtype)
    for _ in range(height * width):
        grown = F.max_pool2d(edges_f, 3, stride=1, padding=1) * candidate_f
        grown = torch.maximum(grown, edges_f)
        if torch.equal(grown, edges_f):
            break
        edges_f = grown
    return edges_f > 0


def distance_to_edges(edges: Tensor, limit: int) -> Tensor:
    """Euclidean distance of each pixel to the nearest edge pixel, capped at ``limit``.

    ``edges`` bool [N, 1, H, W] -> float32 [N, 1, H, W]. Exact (not the 5 x 5 chamfer
    approximation of ``cv2.distanceTransform(DIST_L2, 5)``): the distance along each column
    is found with running maxima, then ``min over |dx| <= limit of col_dist(x + dx)^2 + dx^2``.
    """
    height, width = edges.shape[-2:]
    far = float(limit + 1)
    rows = torch.arange(height, device=edges.device, dtype=torch.float32).view(-1, 1)
    big = float(height + width + limit + 2)
    # Row index of the nearest edge above (inclusive) and below, per column.
    above = torch.where(edges, rows, torch.full_like(rows, -big))
    above = torch.cummax(above, dim=-2).values
    below = torch.where(edges, rows, torch.full_like(rows, 2 * big))
    below = torch.flip(torch.cummin(torch.flip(below, dims=(-2,)), dim=-2).values, dims=(-2,))
    column = torch.minimum(rows - above, below - rows).clamp(max=far)
    squared = column**2
    padded = F.pad(squared, (limit, limit), value=far**2)
    best = squared
    for shift in range(-limit, limit + 1):
        if shift == 0:
            continue
        candidate = padded[..., limit + shift : limit + shift + width] + float(shift * shift)
        best = torch.minimum(best, candidate)
    return best.sqrt().clamp(max=float(limit))


def equalize_hist(images: Tensor) -> Tensor:
    """``cv2.equalizeHist`` per image of integer levels [N, 1, H, W] (0..255) -> same."""
    count = images.shape[0]
    levels = images.reshape(count, -1).round().clamp(0, 255).long()
    total = levels.shape[1]
    histogram = torch.zeros(count, 256, dtype=torch.float64, device=images.device)
    histogram.scatter_add_(1, levels, torch.ones_like(levels, dtype=torch.float64))
    cumulative = torch.cumsum(histogram, dim=1)
    # OpenCV: the lowest occupied level maps to 0, the rest by the cumulative count above it.
    lowest = (histogram > 0).to(torch.int64).argmax(dim=1, keepdim=True)
    lowest_count = histogram.gather(1, lowest)
    denominator = (total - lowest_count).clamp(min=1)
    table = torch.round((cumulative - lowest_count) * (255.0 / denominator)).clamp(0, 255)
    table = torch.where(torch.arange(256, device=images.device) <= lowest, 0.0, table)
    # A constant image keeps its level.
    constant = lowest_count == total
    table = torch.where(constant, torch.arange(256, device=images.device).to(table.dtype), table)
    return table.gather(1, levels).to(images.dtype).view_as(images)

"""Layers that predictor strings may use besides ``torch.nn``'s, for token representations.

NHWC feature maps [B, H, W, C] (timm's Swin and MambaOut) are decoded between two
[`Permute`][predify.layers.Permute] layers::

    Sequential(Permute(0, 3, 1, 2), Upsample(scale_factor=(2.0, 2.0), mode='bilinear'),
               ConvTranspose2d(192, 96, kernel_size=3, stride=1, padding=1), Permute(0, 2, 3, 1))

A vision transformer's block outputs are token maps [B, tokens, dim]: ``prefix_tokens`` class or
register tokens first, then one token per image patch in row-major order (timm's layout). The
first pcoder of such a network predicts the image from them, which takes the patch tokens back to
a grid and a transposed patch embedding::

    Sequential(TokensToGrid(prefix_tokens=1, grid_size=(14, 14)),
               ConvTranspose2d(192, 3, kernel_size=(16, 16), stride=(16, 16)))
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

__all__ = ["Permute", "TokensToGrid"]


class TokensToGrid(nn.Module):
    """Drop the prefix tokens and lay the patch tokens out as a feature map.

    [B, prefix_tokens + H * W, D] -> [B, D, H, W], H x W = ``grid_size``, patch tokens in
    row-major order. The prefix (class, register) tokens do not reach the output, so the
    prediction error of a decoder starting with this layer does not depend on them.

    Args:
        prefix_tokens: the number of leading non-patch tokens (timm's ``num_prefix_tokens``).
        grid_size: (H, W) of the patch grid (timm's ``patch_embed.grid_size``).
    """

    def __init__(self, prefix_tokens: int, grid_size: Sequence[int]) -> None:
        super().__init__()
        if type(prefix_tokens) is not int or prefix_tokens < 0:
            raise ValueError(f"prefix_tokens: expected an integer >= 0, got {prefix_tokens!r}")
        grid = tuple(grid_size)
        if len(grid) != 2 or not all(isinstance(s, int) and s > 0 for s in grid):
            raise ValueError(f"grid_size: expected (H, W) of positive integers, got {grid_size!r}")
        self.prefix_tokens = prefix_tokens
        self.grid_size: tuple[int, int] = (grid[0], grid[1])

    def forward(self, tokens: Tensor) -> Tensor:
        height, width = self.grid_size
        expected = self.prefix_tokens + height * width
        if tokens.dim() != 3 or tokens.shape[1] != expected:
            raise ValueError(
                f"TokensToGrid: expected tokens [B, {expected}, D] ({self.prefix_tokens} prefix + "
                f"{height}x{width} patches), got {list(tokens.shape)}"
            )
        patches = tokens[:, self.prefix_tokens :]
        return patches.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], height, width)

    def extra_repr(self) -> str:
        return f"prefix_tokens={self.prefix_tokens}, grid_size={self.grid_size}"


class Permute(nn.Module):
    """``x.permute(*dims)``: reorder the dimensions, batch included (``Permute(0, 3, 1, 2)``
    takes [B, H, W, C] to [B, C, H, W])."""

    def __init__(self, *dims: int) -> None:
        super().__init__()
        if sorted(dims) != list(range(len(dims))) or not all(type(d) is int for d in dims):
            raise ValueError(f"Permute: expected a permutation of 0..n-1, got {list(dims)}")
        self.dims = tuple(dims)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != len(self.dims):
            raise ValueError(
                f"Permute{self.dims}: expected a {len(self.dims)}-dimensional tensor, "
                f"got {list(x.shape)}"
            )
        return x.permute(*self.dims)

    def extra_repr(self) -> str:
        return ", ".join(map(str, self.dims))

"""The paper's PEfficientNetB0 decoders, shared by the tests that rebuild them by hand.

From bhavinc/predify2021@e968414 predify2021/model_factory/peffficientnetb0_shared.py
(PEfficientNetB0_SeparateHP): pcoders after the stem and each of blocks[0..6], each decoder
``Sequential(Upsample(scale_factor=(2.0, 2.0), mode='bilinear'), ConvTranspose2d(c_in, c_out,
3, 1, 1))`` where the map doubles, ``Sequential(ConvTranspose2d(...))`` where it does not.
"""

from __future__ import annotations

from torch import nn

#: (upsample x2?, c_in, c_out), bottom first.
PEFF_DECODERS = [
    (True, 32, 3),
    (False, 16, 32),
    (True, 24, 16),
    (True, 40, 24),
    (True, 80, 40),
    (False, 112, 80),
    (True, 192, 112),
    (False, 320, 192),
]


def paper_peff_decoder(upsample: bool, c_in: int, c_out: int) -> nn.Sequential:
    """One decoder of that layout, freshly initialised."""
    layers: list[nn.Module] = (
        [nn.Upsample(scale_factor=(2.0, 2.0), mode="bilinear")] if upsample else []
    )
    return nn.Sequential(*layers, nn.ConvTranspose2d(c_in, c_out, 3, 1, 1))

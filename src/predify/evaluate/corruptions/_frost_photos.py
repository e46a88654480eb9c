"""The frost layers: the published photographs when ``imagecorruptions`` is installed, else
the procedural textures of `._frost_textures`.

The published ``frost`` corruption crops one of the first five photographs of its ``frost/``
folder (``frost1.png`` ... ``frost5.jpg``; ``frost6.jpg`` is never drawn). Hendrycks &
Dietterich's repository and the ``imagecorruptions`` package ship the same files (byte for
byte); the package is the one that can be installed (``pip install predify[imagenet-c]``), so
its files are used when it is present. It is located with
[`importlib.util.find_spec()`][predify.evaluate.corruptions._frost_photos.importlib.util.find_spec],
which does not import it (its import needs ``pkg_resources``, gone from recent setuptools).

[`frost_source()`][predify.evaluate.corruptions._frost_photos.frost_source] says which layers
[`frost_layers()`][predify.evaluate.corruptions._frost_photos.frost_layers] returns, for results to
record.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from ...errors import DataError
from ._frost_textures import frost_textures

__all__ = ["PUBLISHED_FROST_FILES", "FrostSource", "frost_layers", "frost_source"]

#: The photographs the published code draws from (``np.random.randint(5)``), in its order.
PUBLISHED_FROST_FILES = ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg")
#: Where the frost layers come from.
FrostSource = Literal["imagecorruptions", "generated"]


def published_frost_files() -> tuple[Path, ...] | None:
    """Paths of the five published frost photographs in the installed ``imagecorruptions``
    package, or None when it (or one of the files) is not there."""
    try:
        spec = importlib.util.find_spec("imagecorruptions")
    except (ImportError, ValueError):  # a broken or stubbed-out module entry
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        files = tuple(Path(location) / "frost" / name for name in PUBLISHED_FROST_FILES)
        if all(path.is_file() for path in files):
            return files
    return None


def frost_source() -> FrostSource:
    """``"imagecorruptions"`` when [`frost()`][predify.evaluate.corruptions.frost] uses the
    published photographs (the package
    is installed), ``"generated"`` when it falls back to the procedural textures."""
    return "imagecorruptions" if published_frost_files() is not None else "generated"


def _read_photograph(path: Path) -> Tensor:
    """One photograph as float32 [3, h, w] in [0, 1]. The PNGs are RGBA: the alpha channel is
    dropped, not composited, as ``cv2.imread`` (used by the published code) does."""
    try:
        with Image.open(path) as picture:
            pixels = np.asarray(picture.convert("RGB"))
    except (OSError, ValueError) as error:
        raise DataError(
            f"cannot read the frost photograph {path}: {error}; reinstall imagecorruptions, "
            f"or uninstall it to use the generated frost textures"
        ) from None
    return torch.from_numpy(pixels.copy()).permute(2, 0, 1).to(torch.float32) / 255


@functools.lru_cache(maxsize=2)
def _cpu_layers(files: tuple[Path, ...] | None) -> tuple[Tensor, Tensor]:
    if files is None:
        textures = frost_textures()
        count, _, height, width = textures.shape
        return textures, torch.tensor([[height, width]] * count)
    photographs = [_read_photograph(path) for path in files]
    sizes = torch.tensor([list(photo.shape[-2:]) for photo in photographs])
    height, width = (int(value) for value in sizes.amax(dim=0))
    padded = torch.zeros(len(photographs), 3, height, width)
    for slot, photo in zip(padded, photographs, strict=True):
        slot[:, : photo.shape[1], : photo.shape[2]] = photo
    return padded, sizes


@functools.lru_cache(maxsize=8)
def _layers_on(
    files: tuple[Path, ...] | None, device: torch.device, dtype: torch.dtype
) -> tuple[Tensor, Tensor]:
    layers, sizes = _cpu_layers(files)
    return layers.to(device=device, dtype=dtype), sizes.to(device)


def frost_layers(
    device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
) -> tuple[Tensor, Tensor]:
    """The five frost layers, zero-padded to a common size, [5, 3, H, W] in [0, 1], and the
    (height, width) of each [5, 2] (int64), on ``device``: the published photographs (sizes
    315 x 560 to 600 x 900) when
    [`frost_source()`][predify.evaluate.corruptions._frost_photos.frost_source] is
    ``"imagecorruptions"``, else the
    generated 512 x 512 textures. Loaded once per source, device and dtype."""
    return _layers_on(published_frost_files(), torch.device(device), dtype)

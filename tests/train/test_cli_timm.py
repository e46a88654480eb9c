"""``predify train --backbone timm:NAME``: timm CNN families and a ViT wrap, run and train through
the command line (random weights, 32x32 images, one short epoch), with timm's pretrained-config
normalisation recorded; ``evaluate`` and ``tune`` read such run directories.

Expected modules are timm 1.0's ``feature_info`` lists (the zoo's, for the backbone a zoo network
wraps); expected normalisations are timm's pretrained configs (ImageNet statistics, or 0.5/0.5 for
the AugReg ViTs).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from predify.cli import main
from predify.runtime.runs import load_run, read_run_info
from testkit import error_line

pytest.importorskip("timm")

IMAGENET = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
HALF = {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}

# backbone spec -> (extra backbone kwargs, default modules, pretrained-config normalisation)
FAMILIES = {
    "timm:resnet10t": ({}, ["act1", "layer1", "layer2", "layer3", "layer4"], IMAGENET),
    # The zoo's PEfficientNetB0 wraps this backbone: its modules (the stem and all seven stages,
    # Choksi et al. 2021) win over timm's feature_info.
    "timm:efficientnet_b0": ({}, ["bn1", *(f"blocks[{i}]" for i in range(7))], IMAGENET),
    "timm:ghostnet_050": (
        {},
        ["conv_stem", "blocks.1", "blocks.3", "blocks.5", "blocks.7"],
        IMAGENET,
    ),
    "timm:convnext_atto": ({}, ["stages.0", "stages.1", "stages.2", "stages.3"], IMAGENET),
    "timm:regnetx_002": ({}, ["stem", "s1", "s2", "s3", "s4"], IMAGENET),
    "timm:mobilenetv3_small_050": (
        {},
        ["bn1", "blocks.0", "blocks.1", "blocks.3", "blocks.5"],
        IMAGENET,
    ),
    "timm:vit_tiny_patch16_224": (
        {"img_size": 32, "patch_size": 8, "depth": 4, "embed_dim": 32, "num_heads": 2},
        ["blocks.0", "blocks.1", "blocks.2", "blocks.3"],
        HALF,
    ),
}


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for name in ("cat", "dog"):
        (root / name).mkdir()
        for index in range(6):
            pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{index}.png")
    return root


def _train(out: Path, folder: Path, backbone: str, kwargs: dict, *extra: str) -> int:
    return main([
        "train", "--data", f"folder:{folder}", "--image-size", "32", "--backbone", backbone,
        "--backbone-kwargs", json.dumps({"num_classes": 2, **kwargs}), "--epochs", "2",
        "--batch-size", "6", "--lr", "3e-3", "--no-progress", "--out", str(out), *extra,
    ])  # fmt: skip


@pytest.mark.parametrize("backbone", sorted(FAMILIES))
def test_timm_backbone_trains_through_the_cli(
    backbone: str, image_folder: Path, tmp_path: Path
) -> None:
    kwargs, modules, normalization = FAMILIES[backbone]
    run_dir = tmp_path / "run"
    assert _train(run_dir, image_folder, backbone, kwargs) == 0
    info = read_run_info(run_dir)
    assert info.backbone["name"] == backbone
    assert info.normalization == normalization
    config_text = (run_dir / "config.toml").read_text()
    for module in modules:
        assert f'module = "{module}"' in config_text
    rows = (run_dir / "metrics.csv").read_text().splitlines()
    assert len(rows) == 1 + 4  # 12 images, batch 6, 2 epochs
    totals = [float(row.split(",")[-1]) for row in rows[1:]]
    assert all(np.isfinite(totals)) and totals[-1] < totals[0]
    loaded = load_run(run_dir)
    assert [p.module_path for p in loaded.pnet.pcoders] == modules
    with torch.no_grad():
        logits = loaded.pnet(torch.rand(1, 3, 32, 32), timesteps=2).logits
    assert logits.shape == (3, 1, 2)


def test_evaluate_reads_a_timm_vit_run(image_folder: Path, tmp_path: Path) -> None:
    kwargs, _, normalization = FAMILIES["timm:vit_tiny_patch16_224"]
    run_dir = tmp_path / "run"
    assert _train(run_dir, image_folder, "timm:vit_tiny_patch16_224", kwargs) == 0
    assert load_run(run_dir).pnet.normalization == normalization  # what evaluate feeds with
    out = tmp_path / "eval"
    code = main([
        "evaluate", str(run_dir), "--out", str(out), "--corruptions", "gaussian_noise",
        "--severities", "1", "--timesteps", "2", "--attacks", "none", "--no-analysis",
        "--no-plots", "--bootstrap", "0", "--max-images", "8", "--no-progress",
    ])  # fmt: skip
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert results["data"]["num_images"] == 8
    assert len(results["corruption_error"]["gaussian_noise"]["1"]) == 3  # t = 0, 1, 2


def test_tune_reads_a_timm_run_on_mnist5k(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run_dir = tmp_path / "run"
    base = [
        "train", "--data", "mnist5k:val", "--backbone", "timm:resnet10t", "--backbone-kwargs",
        json.dumps({"in_chans": 1, "num_classes": 10}), "--epochs", "1", "--batch-size", "500",
        "--no-progress", "--out", str(run_dir),
    ]  # fmt: skip
    # timm's pretrained config normalises RGB; these images are grey: say how, in one line.
    assert main(base) == 2
    assert "normalises 3 channels but the images have 1" in error_line(capsys, "train")
    assert main([*base, "--normalization", "mnist"]) == 0
    assert read_run_info(run_dir).normalization == {"mean": [0.1307], "std": [0.3081]}
    code = main([
        "tune", str(run_dir), "--noise", "gaussian:0.25", "--epochs", "1", "--max-images", "32",
        "--timesteps", "2", "--no-progress",
    ])  # fmt: skip
    assert code == 0
    assert (run_dir / "tune" / "results.json").is_file()


def test_unknown_timm_model_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = main([
        "train", "--data", "mnist5k:val", "--backbone", "timm:resnet10x", "--out",
        str(tmp_path / "run"), "--no-progress",
    ])  # fmt: skip
    assert code == 2
    error = error_line(capsys, "train")
    assert "unknown timm model 'resnet10x'" in error and "resnet10t" in error

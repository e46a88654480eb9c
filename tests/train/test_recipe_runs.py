"""``predify train --recipe`` / ``--scheduler`` and their Python equivalents, run end to end.

The recipe's values are checked against the original scripts in test_recipes.py; here, that a
run made from a recipe trains with them: the optimiser and scheduler in its checkpoint, the
network and preprocessing in its run directory.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from PIL import Image

from predify.cli import main
from predify.data import load_dataset
from predify.errors import ConfigError
from predify.runtime.runs import load_run
from predify.train import TrainSettings, get_recipe, train_run
from predify.train.state import read_training_checkpoint


def image_folder(root: Path, per_class: int = 2) -> Path:
    """An ImageNet-layout folder of small random RGB images, not square (so the crop matters)."""
    generator = torch.Generator().manual_seed(0)
    for name in ("cat", "dog"):
        (root / name).mkdir(parents=True)
        for index in range(per_class):
            pixels = torch.randint(0, 256, (240, 300, 3), dtype=torch.uint8, generator=generator)
            Image.fromarray(pixels.numpy()).save(root / name / f"{index}.png")
    return root


def test_folder_resize_is_the_recipes_preprocessing(tmp_path: Path) -> None:
    folder = image_folder(tmp_path / "images", per_class=1)
    dataset = load_dataset(f"folder:{folder}", image_size=224, resize=224)
    reference = get_recipe("pvgg16-imagenet").transform(normalize=False)
    image, _ = dataset[0]
    with Image.open(folder / "cat" / "0.png") as original:
        torch.testing.assert_close(image, reference(original.convert("RGB")), rtol=0, atol=0)
    # The default evaluation transform resizes to 256 first: a different crop.
    default, _ = load_dataset(f"folder:{folder}", image_size=224)[0]
    assert not torch.equal(default, image)


def test_recipe_settings_carry_the_recipe_and_take_overrides() -> None:
    settings = get_recipe("pvgg16-imagenet").settings(data="folder:/x", epochs=2)
    assert (settings.model, settings.optimizer, settings.lr, settings.weight_decay) == (
        "pvgg16",
        "sgd",
        0.001,
        0.0005,
    )
    assert (settings.momentum, settings.batch_size, settings.epochs) == (0.0, 64, 2)
    assert settings.scheduler.startswith("cosine-warm-restarts:t0=3")
    assert (settings.resize, settings.normalization, settings.recipe) == (
        224,
        "imagenet",
        "pvgg16-imagenet",
    )


@pytest.mark.slow
def test_predify_train_recipe_peffnetb0(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("timm")
    import predify.data

    loads: list[dict[str, object]] = []

    def recording_load_dataset(spec: str, **kwargs: object) -> object:
        loads.append(kwargs)
        return load_dataset(spec, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(predify.data, "load_dataset", recording_load_dataset)
    folder = image_folder(tmp_path / "train")
    out = tmp_path / "run"
    # The recipe trains a pretrained backbone; here a saved untrained one stands in (no download).
    from predify.models import create_model

    weights = tmp_path / "backbone.pt"
    torch.save(create_model("peffnetb0").backbone.state_dict(), weights)
    arguments = ["train", "--recipe", "peffnetb0-imagenet", "--data", f"folder:{folder}"]
    arguments += ["--backbone-weights", str(weights), "--batch-size", "2", "--epochs", "2"]
    assert main([*arguments, "--out", str(out), "--no-progress", "--device", "cpu"]) == 0

    # The scripts' Resize(224) + CenterCrop(224), then ImageNet normalisation.
    assert [(k["image_size"], k["resize"]) for k in loads] == [(224, 224)]
    run = json.loads((out / "run.json").read_text())
    assert run["backbone"]["name"] == "timm:efficientnet_b0"
    assert run["extra"]["network"] == "PEfficientNetB0 (timm efficientnet_b0)"
    training = run["extra"]["training"]
    assert training["recipe"] == "peffnetb0-imagenet" and training["model"] == "peffnetb0"
    assert (training["optimizer"], training["lr"], training["weight_decay"]) == (
        "rmsprop",
        0.001,
        5e-4,
    )
    assert (training["momentum"], training["batch_size"], training["resize"]) == (0.0, 2, 224)
    assert run["normalization"]["mean"] == pytest.approx([0.485, 0.456, 0.406])

    state = read_training_checkpoint(out / "checkpoint.pt")
    group = state["optimizer"]["param_groups"][0]
    assert (group["momentum"], group["weight_decay"], group["alpha"]) == (0, 5e-4, 0.99)  # RMSprop
    assert state["scheduler"]["T_0"] == 3
    # Two epochs of CosineAnnealingWarmRestarts(T_0=3) stepped per epoch: cos(2 pi / 3).
    assert group["lr"] == pytest.approx(0.001 * (1 + math.cos(math.pi * 2 / 3)) / 2)

    loaded = load_run(out)
    assert type(loaded.pnet.backbone).__module__.startswith("timm.")
    assert loaded.pnet.pcoders[0].module_path == "bn1"
    assert not loaded.pnet.config.gradient_scaling


def test_recipe_without_backbone_weights_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = image_folder(tmp_path / "train", per_class=1)
    arguments = ["train", "--recipe", "pvgg16-imagenet", "--data", f"folder:{folder}"]
    assert main([*arguments, "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    message = capsys.readouterr().err.strip()
    assert message.startswith("predify train: error: recipe pvgg16-imagenet trains the feedback")
    assert "--pretrained" in message and "--backbone-weights" in message
    with pytest.raises(ConfigError, match="drop --config and --backbone"):
        train_run(
            tmp_path / "r", TrainSettings(data="mnist5k:val", model="pshallow", config="x.toml")
        )


def test_scheduler_option_for_every_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    arguments = ["train", "--data", "mnist5k:val", "--batch-size", "500", "--no-progress"]
    arguments += ["--scheduler", "step:step_size=1,gamma=0.5", "--epochs", "2", "--lr", "0.004"]
    assert main([*arguments, "--out", str(out)]) == 0
    state = read_training_checkpoint(out / "checkpoint.pt")
    assert state["optimizer"]["param_groups"][0]["lr"] == pytest.approx(0.001)  # 0.004 / 2 / 2
    run = json.loads((out / "run.json").read_text())
    assert run["extra"]["training"]["scheduler"] == "step:step_size=1,gamma=0.5"
    # Resumed, the schedule goes on where it was.
    assert main(["train", "--resume", str(out), "--epochs", "3", "--no-progress"]) == 0
    state = read_training_checkpoint(out / "checkpoint.pt")
    assert state["optimizer"]["param_groups"][0]["lr"] == pytest.approx(0.0005)
    capsys.readouterr()
    assert main([*arguments, "--scheduler", "exponential", "--out", str(tmp_path / "bad")]) == 2
    assert "scheduler: expected one of none" in capsys.readouterr().err

"""The paper's training recipes hold what the original training scripts set; schedulers by name.

Reference values: the original's own train config (tests/data/original/predify/train_config.toml,
read here with tomllib) for PVGG16, and for PEfficientNetB0 the literals of
bhavinc/predify2021@e968414 predify2021/model_factory/train_feedback_weights.py (Args, lines
34-46; optim.RMSprop, lines 80-83; CosineAnnealingWarmRestarts(optimizer, T_0=3), line 84).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from torchvision import transforms

from predify import ConfigError
from predify.train import (
    SchedulerSettings,
    build_scheduler,
    get_recipe,
    list_recipes,
    parse_scheduler,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

TRAIN_CONFIG = (
    Path(__file__).resolve().parents[1] / "data" / "original" / "predify" / "train_config.toml"
)


def test_pvgg16_recipe_is_the_original_train_config() -> None:
    original = tomllib.loads(TRAIN_CONFIG.read_text(encoding="utf-8"))
    recipe = get_recipe("pvgg16-imagenet")
    assert recipe.model == "pvgg16"
    assert recipe.optimizer == original["OPTIM_NAME"].lower() == "sgd"
    assert recipe.lr == original["LR"] == 0.001
    assert recipe.weight_decay == original["WEIGHT_DECAY"] == 0.0005
    assert recipe.batch_size == original["BATCHSIZE"] == 64
    assert recipe.epochs == original["NUM_EPOCHS"] == 50
    assert recipe.momentum == 0.0  # optim.SGD(params, lr=..., weight_decay=...): torch's default
    assert recipe.scheduler == SchedulerSettings("cosine-warm-restarts", t0=3)
    assert recipe.timesteps == 0


def test_peffnetb0_recipe_is_the_predify2021_script() -> None:
    recipe = get_recipe("peffnetb0-imagenet")
    assert recipe.model == "peffnetb0"
    assert (recipe.optimizer, recipe.lr, recipe.weight_decay, recipe.momentum) == (
        "rmsprop",
        0.001,
        5e-4,
        0.0,
    )
    assert (recipe.batch_size, recipe.epochs) == (64, 50)
    assert recipe.scheduler.name == "cosine-warm-restarts" and recipe.scheduler.t0 == 3
    assert any("scheduler.step()" in note for note in recipe.notes)
    assert list_recipes() == ["peffnetb0-imagenet", "pvgg16-imagenet"]
    with pytest.raises(ConfigError, match="did you mean 'pvgg16-imagenet'"):
        get_recipe("pvgg-imagenet")


@pytest.mark.parametrize("name", ["pvgg16-imagenet", "peffnetb0-imagenet"])
def test_recipe_preprocessing_is_the_scripts_transform_val(name: str) -> None:
    # transform_val of both scripts, written out.
    original = transforms.Compose(
        [
            transforms.Resize(224),
            transforms.CenterCrop(224),
            transforms.ToTensor(),
            transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
        ]
    )
    generator = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 256, (300, 410, 3), dtype=torch.uint8, generator=generator)
    image = Image.fromarray(pixels.numpy())
    ours = get_recipe(name).transform()(image)
    assert ours.shape == (3, 224, 224)
    torch.testing.assert_close(ours, original(image), rtol=0, atol=0)
    unnormalised = get_recipe(name).transform(normalize=False)(image)
    assert float(unnormalised.min()) >= 0.0 and float(unnormalised.max()) <= 1.0


def test_cosine_warm_restarts_follows_its_formula() -> None:
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=0.001)
    scheduler = build_scheduler(parse_scheduler("cosine-warm-restarts:t0=3"), optimizer, epochs=50)
    rates = []
    for _ in range(7):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    # eta_t = eta_min + (eta_0 - eta_min) (1 + cos(pi T_cur / T_0)) / 2, T_cur = epoch mod 3.
    expected = [0.001 * (1 + math.cos(math.pi * (epoch % 3) / 3)) / 2 for epoch in range(7)]
    assert rates == pytest.approx(expected, rel=1e-12)


def test_parse_scheduler_round_trip_and_errors() -> None:
    for text in (
        "none",
        "cosine",
        "step:step_size=5,gamma=0.5",
        "cosine-warm-restarts:t0=4,t_mult=2",
    ):
        settings = parse_scheduler(text)
        assert parse_scheduler(settings.spec()) == settings
    assert parse_scheduler("none").factory(epochs=3) is None
    with pytest.raises(ConfigError, match="expected one of none, cosine-warm-restarts"):
        parse_scheduler("exponential")
    with pytest.raises(ConfigError, match="unknown option 'T_max=3'"):
        parse_scheduler("cosine:T_max=3")
    with pytest.raises(ConfigError, match="t0='three' is not a valid int"):
        parse_scheduler("cosine-warm-restarts:t0=three")
    with pytest.raises(ConfigError, match="t0: expected an integer >= 1, got 0"):
        parse_scheduler("cosine-warm-restarts:t0=0")

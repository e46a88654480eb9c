"""The shared pieces under every command: registry, CLI options, output folders, result store."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch

from predify.cli import main
from predify.errors import ConfigError
from predify.models import (
    create_model,
    default_modules,
    get_model_entry,
    presnet18,
    pshallow,
    pvgg16,
    register_model,
)
from predify.models.shallow import ShallowCNN
from predify.runtime.fingerprint import run_fingerprint
from predify.runtime.progress import resolve_progress
from predify.runtime.runs import RunInfo, build_backbone, load_run, save_run
from predify.runtime.store import ResultStore


def test_registering_a_name_twice_is_an_error() -> None:
    def pshallow() -> None:  # the name of a registered builder
        raise AssertionError("never built")

    register = register_model(
        backbone="shallow_cnn", build_backbone=ShallowCNN, modules=("features[2]",),
        input_size=(1, 28, 28),
    )  # fmt: skip
    with pytest.raises(ConfigError, match="'pshallow' is registered already"):
        register(pshallow)
    assert get_model_entry("pshallow").builder is not pshallow


def test_zoo_builders_refuse_unknown_and_positional_arguments_with_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"pvgg16: unknown argument.*'random_init'"):
        pvgg16(random_init=True)
    with pytest.raises(ConfigError, match="presnet18"):
        presnet18("DEFAULT")  # weights is keyword-only: no download is started
    with pytest.raises(ConfigError, match="'depth'"):
        create_model("pshallow", depth=4)


def test_zoo_entries_carry_what_train_and_evaluate_need() -> None:
    entry = get_model_entry("presnet18")
    # The stem's max-pool and the four stages (Choksi et al. 2021, PResNet18).
    assert entry.modules == ("maxpool", "layer1", "layer2", "layer3", "layer4")
    assert entry.input_size == (3, 224, 224)
    # torchvision's ImageNet statistics (torchvision.models docs).
    assert entry.normalization == {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
    assert default_modules("torchvision:resnet50") == entry.modules
    assert default_modules("shallow_cnn") == ("features[2]", "features[5]", "features[7]")
    with pytest.raises(ConfigError, match="no default pcoder modules"):
        default_modules("torchvision:alexnet")
    backbone = build_backbone({"name": "shallow_cnn", "kwargs": {"in_channels": 1}})
    assert isinstance(backbone, ShallowCNN) and backbone.features[0].in_channels == 1
    with pytest.raises(ConfigError, match="unknown architecture 'resnet18'"):
        build_backbone({"name": "resnet18"})


def test_normalization_travels_with_the_network(tmp_path: Path) -> None:
    small = presnet18(image_size=32, timesteps=1, num_classes=3)
    assert small.normalization is None  # no pretrained weights: images in [0, 1] as they are
    pnet = pshallow(in_channels=1, image_size=28, timesteps=1)
    mnist = {"mean": [0.1307], "std": [0.3081]}
    info = RunInfo(
        backbone={"name": "shallow_cnn", "kwargs": {"in_channels": 1}},
        data={"spec": "mnist5k"}, num_classes=10, normalization=mnist,
    )  # fmt: skip
    save_run(tmp_path / "run", pnet, info)
    assert load_run(tmp_path / "run").pnet.normalization == mnist


def test_run_fingerprint_follows_the_weights(tmp_path: Path) -> None:
    pnet = pshallow(in_channels=1, image_size=28, timesteps=1)
    info = RunInfo(backbone={"name": "shallow_cnn", "kwargs": {"in_channels": 1}},
                   data={"spec": "mnist5k"}, num_classes=10)  # fmt: skip
    run = save_run(tmp_path / "run", pnet, info)
    first = run_fingerprint(run)
    assert run_fingerprint(run) == first
    with torch.no_grad():
        pnet.pcoders[0].decoder[-1].weight.add_(1.0)  # type: ignore[index]
    save_run(run, pnet, info)
    assert run_fingerprint(run) != first


def test_result_store_refuses_or_discards_cells_of_other_settings(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "progress", {"seed": 0})
    store.put("cell", {"value": 1})
    assert ResultStore(tmp_path / "progress", {"seed": 0}).get("cell") == {"value": 1}
    with pytest.raises(ConfigError, match="changed: seed"):
        ResultStore(tmp_path / "progress", {"seed": 1})
    discarded = ResultStore(tmp_path / "progress", {"seed": 1}, on_change="discard")
    assert discarded.get("cell") is None and discarded.keys() == []


class _Stream(io.StringIO):
    def __init__(self, terminal: bool) -> None:
        super().__init__()
        self.terminal = terminal

    def isatty(self) -> bool:
        return self.terminal


def test_progress_none_means_only_on_a_terminal() -> None:
    assert resolve_progress(None, _Stream(terminal=True)) is True
    assert resolve_progress(None, _Stream(terminal=False)) is False
    assert resolve_progress(True, _Stream(terminal=False)) is True
    assert resolve_progress(False, _Stream(terminal=True)) is False


@pytest.mark.parametrize(
    ("argv", "phrase"),
    [
        (["train", "--data", "mnist5k", "--out", "x", "--epochs", "0"], "--epochs"),
        (["evaluate"], "RUN_DIR"),
        (["tune", "run", "--noise", "gaussian:0.5", "--batch-size", "two"], "--batch-size"),
        (["demo", "--no-such-option"], "--no-such-option"),
    ],
)
def test_malformed_command_lines_are_one_line_errors(
    argv: list[str], phrase: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"predify {argv[0]}: error: ") and phrase in lines[0]


def test_every_command_has_the_same_device_default(capsys: pytest.CaptureFixture[str]) -> None:
    from predify.cli import build_parser

    parser = build_parser()
    commands = {"demo": [], "train": [], "evaluate": ["run", "--out", "o"],
                "tune": ["run", "--noise", "gaussian:0.1"]}  # fmt: skip
    for name, extra in commands.items():
        args = parser.parse_args([name, *extra])
        assert args.device == "auto", name
        assert args.progress is None, name
        assert parser.parse_args([name, *extra, "--no-progress"]).progress is False

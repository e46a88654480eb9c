"""The original Predify's configs and API forms, accepted with the original's semantics.

The TOML files in tests/data/original/ are the original repositories' own (provenance and sha256
in its README); each test builds from the file as it is. What the original did with each value is
read from miladmozafari/predify@eca7a74 (predify/base.py parse_toml/predify_core,
predify/modules/base.py PCoder) and written here as literals.
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
import torchvision
from torch import nn

import predify
from predify import ConfigError, ConfigWarning, Hyperparameters, PNetConfig
from predify.original import hyperparameters_from_original
from predify.presets import PRESETS, get_preset, list_presets
from testkit import GOLDEN_DIR, GoldenNet

ORIGINAL = Path(__file__).resolve().parents[1] / "data" / "original"
SHA256 = {  # tests/data/original/README.md
    "predify/pvgg16_config.toml": (
        "f1779c4ab56e8d421ca159a1819522d522f45cf1a7e79845e799404a00ef5f69"
    ),
    "predify2021/config_PVGG16.toml": (
        "76aaa9f0111787b92345df5da410dd5133303a14400ba0b2e7732279120bb763"
    ),
    "predify2021/config_PEfficientNetB0.toml": (
        "fc622a7cb47f525b966d6ff944ec0aae0d699662fe3689e4de8aaa9c50e7605a"
    ),
}
#: The decoders the original's configs give PVGG16: (type, in, out, kernel, stride, padding, relu).
PVGG16_DECODERS = [
    (64, 3, 5, 1, 2, False),
    (128, 64, 10, 2, 4, True),
    (256, 128, 14, 2, 6, True),
    (512, 256, 14, 2, 6, True),
    (512, 512, 14, 2, 6, True),
]


def original_file(name: str) -> Path:
    path = ORIGINAL / name
    assert hashlib.sha256(path.read_bytes()).hexdigest() == SHA256[name], "file was edited"
    return path


@pytest.fixture(scope="module")
def vgg16() -> nn.Module:
    torch.manual_seed(0)
    return torchvision.models.vgg16(weights=None)


def check_pvgg16_decoders(pnet: predify.PredictiveNet) -> None:
    for pcoder, (c_in, c_out, kernel, stride, padding, relu) in zip(
        pnet.pcoders, PVGG16_DECODERS, strict=True
    ):
        layers = list(pcoder.decoder) if relu else [pcoder.decoder]
        conv = layers[0]
        assert isinstance(conv, nn.ConvTranspose2d)
        assert (conv.in_channels, conv.out_channels) == (c_in, c_out)
        assert conv.kernel_size == (kernel, kernel) and conv.stride == (stride, stride)
        assert conv.padding == (padding, padding)
        assert isinstance(layers[-1], nn.ReLU) == relu


def test_original_example_pvgg16_config_builds_unchanged(vgg16: nn.Module) -> None:
    """examples/PVGG16/pvgg16_config.toml: shared_hyperparameters = true with per-pcoder values,
    so the original's generated network used the first pcoder's 0.2/0.05/0.01 everywhere."""
    path = original_file("predify/pvgg16_config.toml")
    with pytest.warns(ConfigWarning) as record:
        pnet = predify.predify(vgg16, path)
    messages = " | ".join(str(w.message) for w in record)
    assert str(path) in messages
    assert "shared_hyperparameters is true" in messages
    assert "pcoders[0].hyperparameters" in messages and "pcoders[4].hyperparameters" in messages
    assert pnet.config.shared_hyperparameters and pnet.config.gradient_scaling
    assert [p.module_path for p in pnet.pcoders] == [
        "features[3]",
        "features[8]",
        "features[15]",
        "features[22]",
        "features[29]",
    ]
    shared = Hyperparameters(0.2, 0.05, 0.01)
    assert pnet.hyperparameter_values() == [shared] * 4 + [Hyperparameters(0.2, 0.0, 0.01)]
    assert all(p.gradient_scaling for p in pnet.pcoders)
    check_pvgg16_decoders(pnet)


def test_predify2021_pvgg16_config_builds_unchanged_and_silently(vgg16: nn.Module) -> None:
    path = original_file("predify2021/config_PVGG16.toml")
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConfigWarning)  # every field given: nothing to announce
        pnet = predify.predify(vgg16, path)
    assert pnet.hyperparameter_values() == [
        Hyperparameters(0.2, 0.05, 0.01),
        Hyperparameters(0.4, 0.1, 0.01),
        Hyperparameters(0.4, 0.1, 0.01),
        Hyperparameters(0.5, 0.1, 0.01),
        Hyperparameters(0.6, 0.0, 0.01),
    ]
    check_pvgg16_decoders(pnet)


def test_predify2021_peffnetb0_config_builds_unchanged_on_timm() -> None:
    timm = pytest.importorskip("timm")
    path = original_file("predify2021/config_PEfficientNetB0.toml")
    backbone = timm.create_model("efficientnet_b0", pretrained=False)
    with pytest.warns(ConfigWarning) as record:
        pnet = predify.predify(backbone, path)
    messages = " | ".join(str(w.message) for w in record)
    assert "pcoders[0].module: 'act1'" in messages and "'bn1'" in messages
    assert len(record) == 1  # no hyperparameters given: the original's 0.3/0.3/0.01, silently
    assert pnet.updated_modules[0] is backbone.bn1
    assert list(pnet.updated_modules[1:]) == list(backbone.blocks)
    assert pnet.hyperparameter_values() == [Hyperparameters(0.3, 0.3, 0.01)] * 7 + [
        Hyperparameters(0.3, 0.0, 0.01)
    ]
    # The automatic decoders of the original: Upsample x2 where the map doubles.
    upsampled = [isinstance(p.decoder[0], nn.Upsample) for p in pnet.pcoders]
    assert upsampled == [True, False, True, True, True, False, True, False]


# ---------------------------------------------------------------------- semantics, small cases
def golden(**top: Any) -> dict[str, Any]:
    data = PNetConfig.from_toml(GOLDEN_DIR / "case_a.toml").to_json()
    data.update(top)
    return data


def test_shared_hyperparameters_take_the_first_pcoders_values() -> None:
    data = golden(shared_hyperparameters=True)
    with pytest.warns(ConfigWarning, match=r"pcoders\[0\]\.hyperparameters.*0\.3.*0\.2.*0\.05"):
        config = predify.load_config(data)
    assert config.hyperparameters == Hyperparameters(0.3, 0.2, 0.05)
    pnet = predify.predify(GoldenNet(), config)
    assert pnet.hyperparameter_values() == [Hyperparameters(0.3, 0.2, 0.05)] * 2 + [
        Hyperparameters(0.3, 0.0, 0.05)
    ]


def test_shared_hyperparameters_without_first_pcoder_values_take_the_defaults() -> None:
    data = golden(shared_hyperparameters=True)
    del data["pcoders"][0]["hyperparameters"]
    with pytest.warns(ConfigWarning, match="the defaults"):
        config = predify.load_config(data)
    # parse_toml's default for a pcoder without hyperparameters.
    assert config.hyperparameters == Hyperparameters(0.3, 0.3, 0.01)


def test_shared_first_pcoder_values_must_still_be_valid() -> None:
    data = golden(shared_hyperparameters=True)
    data["pcoders"][0]["hyperparameters"] = {"feedforward": 0.7, "feedback": 0.5, "pc": 0.01}
    with pytest.raises(ConfigError, match=r"pcoders\[0\]\.hyperparameters.*0\.7 \+ 0\.5"):
        predify.load_config(data)


@pytest.mark.parametrize("field", ["gradient_scaling", "shared_hyperparameters"])
def test_missing_switch_is_false_with_a_warning_naming_it(field: str) -> None:
    data = golden()
    del data[field]
    with pytest.warns(ConfigWarning, match=f"^{field}: not given; it is false"):
        config = predify.load_config(data)
    assert getattr(config, field) is False


def test_complete_config_gives_no_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConfigWarning)
        predify.load_config(GOLDEN_DIR / "case_a.toml")
        predify.load_config(GOLDEN_DIR / "case_b.toml")


# ---------------------------------------------------------------------- set_hyperparameters
def test_set_hyperparameters_accepts_the_originals_list_of_dicts() -> None:
    torch.manual_seed(0)
    pnet = predify.predify(GoldenNet(), GOLDEN_DIR / "case_a.toml")
    # predify2021's scripts: 0.8/0.1/0.01 on every pcoder, the top one included.
    pnet.set_hyperparameters(
        hyperparameters_from_original([{"ffm": 0.8, "fbm": 0.1, "erm": 0.01}] * 3)
    )
    assert pnet.hyperparameter_values() == [Hyperparameters(0.8, 0.1, 0.01)] * 2 + [
        Hyperparameters(0.8, 0.0, 0.01)
    ]
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        from_dicts = pnet(x, timesteps=3).logits
        pnet.set_hyperparameters(Hyperparameters(0.8, 0.1, 0.01))
        from_values = pnet(x, timesteps=3).logits
    torch.testing.assert_close(from_dicts, from_values, rtol=0, atol=0)
    # One dict for all (PNetSameHP.set_hyperparameters), tensors as the original stored them.
    pnet.set_hyperparameters(
        hyperparameters_from_original({"ffm": torch.tensor(0.5), "fbm": 0.25, "erm": 0.02})
    )
    assert pnet.hyperparameter_values()[0] == Hyperparameters(0.5, 0.25, 0.02)


def test_set_hyperparameters_dicts_are_checked() -> None:
    pnet = predify.predify(GoldenNet(), GOLDEN_DIR / "case_a.toml")
    before = pnet.hyperparameter_values()
    with pytest.raises(ConfigError, match=r"hyperparameters\[1\].*'ffm', 'fbm', 'erm'"):
        hyperparameters_from_original([{"ffm": 0.8, "fbm": 0.1, "erm": 0.01}, {"ffm": 0.8}, {}])
    with pytest.raises(ConfigError, match=r"hyperparameters\[0\].*0\.8 \+ 0\.4"):
        hyperparameters_from_original([{"ffm": 0.8, "fbm": 0.4, "erm": 0.01}] * 3)
    # The network reads this package's names only, and says where the original's are read.
    with pytest.raises(ConfigError, match=r"^hyperparameters: .*hyperparameters_from_original"):
        pnet.set_hyperparameters({"ffm": 0.8, "fbm": 0.1, "erm": 0.01})
    with pytest.raises(ConfigError, match=r"^hyperparameters\[0\]: .*from_original\)$"):
        pnet.set_hyperparameters([{"ffm": 0.8, "fbm": 0.1, "erm": 0.01}] * 3)
    pnet.set_hyperparameters({"feedforward": 0.6, "feedback": 0.2, "pc": 0.03})
    assert pnet.hyperparameter_values()[0] == Hyperparameters(0.6, 0.2, 0.03)
    pnet.set_hyperparameters(before)
    assert pnet.hyperparameter_values() == before


# ---------------------------------------------------------------------- presets
def test_presets_hold_the_values_of_the_papers_code() -> None:
    # Values read from bhavinc/predify2021@e968414 (paths in each preset's source).
    assert list_presets() == [
        "get-model",
        "paper-evaluation",
        "peffnetb0-class-defaults",
        "pvgg16-class-defaults",
    ]
    assert get_preset("paper-evaluation").for_pcoders(5) == [
        Hyperparameters(0.8, 0.1, 0.01)
    ] * 4 + [Hyperparameters(0.8, 0.0, 0.01)]
    assert get_preset("get-model").for_pcoders(8)[0] == Hyperparameters(0.33, 0.33, 0.01)
    pvgg = get_preset("pvgg16-class-defaults").for_pcoders(5)
    assert [v.feedforward for v in pvgg] == [0.2, 0.4, 0.4, 0.5, 0.6]
    assert [v.feedback for v in pvgg] == [0.05, 0.1, 0.1, 0.1, 0.0]
    assert [v.pc for v in pvgg] == [0.01] * 5
    assert get_preset("peffnetb0-class-defaults").for_pcoders(8) == [
        Hyperparameters(0.3, 0.3, 0.01)
    ] * 7 + [Hyperparameters(0.3, 0.0, 0.01)]
    for preset in PRESETS.values():
        assert "predify2021@e968414" in preset.source and ".py" in preset.source


def test_preset_apply_and_refusals() -> None:
    pnet = predify.predify(GoldenNet(), GOLDEN_DIR / "case_a.toml")
    get_preset("paper-evaluation").apply(pnet)
    assert pnet.hyperparameter_values()[1] == Hyperparameters(0.8, 0.1, 0.01)
    with pytest.raises(ConfigError, match=r"5 pcoders.*pvgg16.*has 3"):
        get_preset("pvgg16-class-defaults").apply(pnet)
    with pytest.raises(ConfigError, match="did you mean 'paper-evaluation'"):
        get_preset("paper-evaluaton")

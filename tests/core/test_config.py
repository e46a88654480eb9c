"""Configs: TOML round trips, the accepted input forms, and validation errors that say what is
wrong.

Every invalid config must raise :class:`predify.ConfigError` whose message names the offending
pcoder or field and the offending value.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch

import predify
from predify import ConfigError, Hyperparameters, PCoderConfig, PNetConfig
from testkit import GOLDEN_DIR, GoldenNet, load_case

GOLDEN_TOMLS = [GOLDEN_DIR / "case_a.toml", GOLDEN_DIR / "case_b.toml"]


def golden_dict(name: str = "case_a") -> dict[str, Any]:
    return copy.deepcopy(load_case(name)["config"])


def raises_config_error(source: Any, *fragments: str) -> str:
    """Load ``source`` and check the ConfigError message contains every fragment."""
    with pytest.raises(ConfigError) as info:
        predify.load_config(source)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


# ---------------------------------------------------------------------- round trips
@pytest.mark.parametrize("path", GOLDEN_TOMLS, ids=lambda p: p.stem)
def test_toml_round_trip(path: Path, tmp_path: Path) -> None:
    config = predify.load_config(path)
    text = config.to_toml()
    assert PNetConfig.from_toml_string(text) == config
    saved = tmp_path / "saved.toml"
    config.save(saved)
    assert predify.load_config(saved) == config
    assert saved.read_text(encoding="utf-8") == text
    # A second round trip writes the same text.
    assert PNetConfig.from_toml_string(text).to_toml() == text


def test_round_trip_keeps_extensions(tmp_path: Path) -> None:
    config = PNetConfig(
        pcoders=(
            PCoderConfig(
                "features[2]",
                'Sequential(Upsample(scale_factor=2, mode="bilinear"), '
                "ConvTranspose2d(8, 3, 3, 1, 1))",
                Hyperparameters(0.25, 0.5, 0.125),
                c_sqrt=3.5,
            ),
            PCoderConfig("features.5", None, Hyperparameters(0.5, 0.0, 0.0)),
        ),
        input_size=(3, 32, 32),
        name='odd "name"\twith\\escapes',
        gradient_scaling=True,
        learnable_hyperparameters=True,
        timesteps=7,
        imports=("from torch.nn import Sequential, Upsample, ConvTranspose2d",),
    )
    reloaded = PNetConfig.from_toml_string(config.to_toml())
    assert reloaded == config
    assert reloaded.pcoders[0].c_sqrt == 3.5
    assert reloaded.pcoders[1].predictor is None
    assert reloaded.timesteps == 7 and reloaded.learnable_hyperparameters


def test_dict_input_equals_toml_input() -> None:
    for name, path in zip(["case_a", "case_b"], GOLDEN_TOMLS, strict=True):
        assert predify.load_config(golden_dict(name)) == predify.load_config(path)
        assert predify.load_config(str(path)) == predify.load_config(path)


def test_config_object_input_is_used_as_is() -> None:
    config = predify.load_config(GOLDEN_TOMLS[0])
    assert predify.load_config(config) is config
    pnet = predify.predify(GoldenNet(), config)
    assert pnet.config == config
    assert [p.module_path for p in pnet.pcoders] == ["features[2]", "features[5]", "features[7]"]


def test_every_input_form_builds_the_same_network() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 32)
    backbone = GoldenNet()
    outputs = []
    for source in (GOLDEN_TOMLS[0], golden_dict("case_a"), predify.load_config(GOLDEN_TOMLS[0])):
        torch.manual_seed(1)  # same decoder initialisation
        pnet = predify.predify(backbone, source)
        with torch.no_grad():
            outputs.append(pnet(x, timesteps=2).logits)
    assert torch.equal(outputs[0], outputs[1]) and torch.equal(outputs[0], outputs[2])


def test_original_format_values_are_read() -> None:
    config = predify.load_config(GOLDEN_TOMLS[0])
    assert config.name == "GoldenA"
    assert config.input_size == (3, 32, 32)
    assert config.gradient_scaling is False
    assert config.imports == ("from torch.nn import Sequential, ReLU, ConvTranspose2d",)
    assert config.hyperparameters_of(0) == Hyperparameters(0.3, 0.2, 0.05)
    assert config.hyperparameters_of(2) == Hyperparameters(0.6, 0.0, 0.01)
    assert config.hyperparameters_of(0).memory == pytest.approx(0.5)


# ---------------------------------------------------------------------- shared hyperparameters
SHARED_TOML = """
name = "Shared"
input_size = [3, 32, 32]
shared_hyperparameters = true

[hyperparameters]
feedforward = 0.5
feedback = 0.25
pc = 0.02

[[pcoders]]
module = "features[2]"

[[pcoders]]
module = "features[5]"

[[pcoders]]
module = "features[7]"
"""


def test_shared_hyperparameters_table() -> None:
    config = PNetConfig.from_toml_string(SHARED_TOML)
    assert config.shared_hyperparameters
    expected = Hyperparameters(0.5, 0.25, 0.02)
    assert config.hyperparameters == expected
    assert [config.hyperparameters_of(i) for i in range(3)] == [expected] * 3
    assert PNetConfig.from_toml_string(config.to_toml()) == config
    pnet = predify.predify(GoldenNet(), config)
    modules = {id(pcoder.hyperparameters) for pcoder in pnet.pcoders}
    assert len(modules) == 1
    values = pnet.pcoders[0].hyperparameters.values()
    assert values.feedforward == pytest.approx(0.5)
    assert values.feedback == pytest.approx(0.25)
    assert values.pc == pytest.approx(0.02)
    # The top pcoder has nothing above it: it never uses the shared feedback weight.
    assert not pnet.pcoders[2].has_feedback


def test_shared_hyperparameters_table_wins_over_per_pcoder_tables() -> None:
    """As in the original, per-pcoder values under shared hyperparameters are not used; here the
    explicit top-level table is, and the warning names the ignored table and the file."""
    text = (
        SHARED_TOML + "\n[pcoders.hyperparameters]\nfeedforward = 0.1\nfeedback = 0.0\npc = 0.0\n"
    )
    with pytest.warns(predify.ConfigWarning) as record:
        config = PNetConfig.from_toml_string(text, source="shared.toml")
    messages = [str(w.message) for w in record]
    assert any("shared.toml" in m and "pcoders[2].hyperparameters" in m for m in messages)
    assert [config.hyperparameters_of(i) for i in range(3)] == [
        Hyperparameters(0.5, 0.25, 0.02)
    ] * 3
    assert all(pcoder.hyperparameters is None for pcoder in config.pcoders)


def test_shared_hyperparameters_validated() -> None:
    text = SHARED_TOML.replace("feedback = 0.25", "feedback = 0.75")
    with pytest.raises(ConfigError) as info:
        PNetConfig.from_toml_string(text)
    assert "hyperparameters" in str(info.value)
    assert "0.5 + 0.75" in str(info.value)


# ---------------------------------------------------------------------- validation errors
def with_hyperparameters(index: int, **values: float) -> dict[str, Any]:
    data = golden_dict("case_a")
    data["pcoders"][index]["hyperparameters"].update(values)
    return data


@pytest.mark.parametrize(
    ("index", "field", "value"),
    [
        (0, "feedforward", -0.1),
        (1, "feedback", -0.25),
        (2, "pc", -0.5),
        (0, "pc", float("nan")),
        (1, "feedforward", float("inf")),
    ],
)
def test_negative_or_non_finite_hyperparameter(index: int, field: str, value: float) -> None:
    raises_config_error(
        with_hyperparameters(index, **{field: value}),
        f"pcoders[{index}].hyperparameters.{field}",
        repr(value),
    )


def test_non_numeric_hyperparameter() -> None:
    raises_config_error(
        with_hyperparameters(1, feedback="0.1"), "pcoders[1].hyperparameters.feedback", "'0.1'"
    )
    raises_config_error(with_hyperparameters(1, pc=True), "pcoders[1].hyperparameters.pc", "True")


def test_beta_plus_lambda_above_one() -> None:
    raises_config_error(
        with_hyperparameters(1, feedforward=0.7, feedback=0.5),
        "pcoders[1].hyperparameters",
        "feedforward + feedback",
        "0.7",
        "0.5",
    )


def test_beta_plus_lambda_equal_to_one_is_allowed() -> None:
    config = predify.load_config(with_hyperparameters(0, feedforward=0.75, feedback=0.25))
    assert config.hyperparameters_of(0).memory == 0.0


def test_feedback_on_top_pcoder_is_ignored_with_a_warning() -> None:
    """The original's top PCoder (has_feedback=False) never reads its feedback weight."""
    with pytest.warns(
        predify.ConfigWarning, match=r"pcoders\[2\]\.hyperparameters\.feedback.*0\.1"
    ):
        config = predify.load_config(with_hyperparameters(2, feedback=0.1))
    assert config.hyperparameters_of(2) == Hyperparameters(0.6, 0.0, 0.01)


def test_feedback_on_top_pcoder_still_refused_when_invalid() -> None:
    raises_config_error(
        with_hyperparameters(2, feedback=-0.1), "pcoders[2].hyperparameters.feedback", "-0.1"
    )


@pytest.mark.parametrize(
    ("where", "key", "suggestion"),
    [
        ("top", "input_sizes", "input_size"),
        ("top", "gradient_scalling", "gradient_scaling"),
        ("pcoder", "predicter", "predictor"),
        ("pcoder", "modul", "module"),
        ("hyperparameters", "feedfoward", "feedforward"),
    ],
)
def test_unknown_key_with_did_you_mean(where: str, key: str, suggestion: str) -> None:
    data = golden_dict("case_a")
    if where == "top":
        data[key] = data.get(suggestion, 1)
        owner = "config"
    elif where == "pcoder":
        data["pcoders"][1][key] = "x"
        owner = "pcoders[1]"
    else:
        data["pcoders"][1]["hyperparameters"][key] = 0.1
        owner = "pcoders[1].hyperparameters"
    raises_config_error(data, owner, repr(key), f"did you mean {suggestion!r}")


def test_unknown_key_in_toml_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "typo.toml"
    path.write_text(GOLDEN_TOMLS[0].read_text().replace("feedback = 0.1", "feedbak = 0.1"))
    raises_config_error(path, str(path), "pcoders[1].hyperparameters", "'feedbak'", "'feedback'")


@pytest.mark.parametrize(
    "size",
    [[3, 32], [3, 0, 32], [3, -32, 32], [3, 32.0, 32], [3, 1, 2, 3, 4], [True, 32, 32], []],
)
def test_bad_input_size(size: list[Any]) -> None:
    data = golden_dict()
    data["input_size"] = size
    raises_config_error(data, "input_size", str(size))


def test_input_size_not_a_list() -> None:
    data = golden_dict()
    data["input_size"] = "3x32x32"
    raises_config_error(data, "input_size", "'3x32x32'")


def test_duplicate_module() -> None:
    data = golden_dict()
    data["pcoders"][2]["module"] = "features[5]"
    raises_config_error(data, "pcoders[2].module", "'features[5]'", "twice")


def test_missing_pcoders() -> None:
    data = golden_dict()
    del data["pcoders"]
    raises_config_error(data, "pcoders")
    data["pcoders"] = []
    raises_config_error(data, "pcoders", "at least one")
    data["pcoders"] = "features[2]"
    raises_config_error(data, "pcoders")


def test_pcoder_without_module() -> None:
    data = golden_dict()
    del data["pcoders"][1]["module"]
    raises_config_error(data, "pcoders[1].module")
    data["pcoders"][1]["module"] = "  "
    raises_config_error(data, "pcoders[1].module")


def test_bad_c_sqrt() -> None:
    data = golden_dict()
    data["pcoders"][0]["c_sqrt"] = -2.0
    raises_config_error(data, "pcoders[0].c_sqrt", "-2.0")
    data["pcoders"][0]["c_sqrt"] = 0
    raises_config_error(data, "pcoders[0].c_sqrt", "0")


def test_bad_scalar_fields() -> None:
    for key, value in (
        ("gradient_scaling", "yes"),
        ("timesteps", -1),
        ("timesteps", 2.5),
        ("timesteps", True),
        ("name", 3),
    ):
        data = golden_dict()
        data[key] = value
        raises_config_error(data, key, repr(value))


def test_bad_import_line() -> None:
    data = golden_dict()
    data["imports"] = ["from torch.nn import Sequential", "import os"]
    raises_config_error(data, "imports[1]", "import os")


def test_bad_predictor_type() -> None:
    data = golden_dict()
    data["pcoders"][0]["predictor"] = 3
    raises_config_error(data, "pcoders[0].predictor", "3")


def test_config_not_a_table() -> None:
    raises_config_error(42, "config", "int")
    with pytest.raises(ConfigError):
        PNetConfig.from_json(["not", "a", "table"])  # type: ignore[arg-type]


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    raises_config_error(path, str(path), "not found")


def test_unreadable_file(tmp_path: Path) -> None:
    raises_config_error(tmp_path, str(tmp_path), "cannot read")  # a directory
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"name = \xff\xfe\n")
    raises_config_error(binary, str(binary), "cannot read")


def test_invalid_toml(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text('name = "x"\n[[pcoders]\nmodule = "features[2]"\n')
    raises_config_error(path, str(path), "invalid TOML")
    with pytest.raises(ConfigError, match="invalid TOML"):
        PNetConfig.from_toml_string("input_size = [3, 32,")


def test_config_errors_are_value_errors() -> None:
    with pytest.raises(ValueError):
        predify.load_config(with_hyperparameters(0, feedforward=-1.0))
    assert issubclass(ConfigError, predify.PredifyError)


def test_hyperparameters_object_validation_names_field() -> None:
    with pytest.raises(ConfigError, match=r"pcoders\[3\]\.hyperparameters\.pc.*-0\.01"):
        Hyperparameters(0.5, 0.1, -0.01).validate("pcoders[3].hyperparameters")


def test_config_object_validates_on_construction() -> None:
    with pytest.raises(ConfigError, match=r"pcoders\[0\]\.hyperparameters\.feedback.*0\.2"):
        PNetConfig(pcoders=(PCoderConfig("features[2]", None, Hyperparameters(0.5, 0.2, 0.0)),))
    with pytest.raises(ConfigError, match="input_size"):
        PNetConfig(pcoders=(PCoderConfig("features[2]"),), input_size=(3, 32))


def test_with_pcoder_returns_validated_copy() -> None:
    config = predify.load_config(GOLDEN_TOMLS[0])
    changed = config.with_pcoder(0, predictor="ConvTranspose2d(8, 3, 4, 2, 1)")
    assert changed.pcoders[0].predictor == "ConvTranspose2d(8, 3, 4, 2, 1)"
    assert config.pcoders[0].predictor != changed.pcoders[0].predictor
    with pytest.raises(ConfigError, match=r"pcoders\[2\]"):
        config.with_pcoder(2, hyperparameters=Hyperparameters(0.5, 0.5, 0.0))

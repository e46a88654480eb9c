"""The safe predictor-string parser and the ``imports`` line checker.

Predictor strings are parsed with :mod:`ast`, never evaluated: only whitelisted torch.nn layer
constructors with literal arguments are accepted, and anything else raises ConfigError naming the
offending text.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import predify
from predify import ConfigError
from predify.parsing import ALLOWED_LAYERS, check_import_line, parse_predictor
from testkit import GOLDEN_DIR, GoldenNet, load_case


# ---------------------------------------------------------------------- accepted strings
@pytest.mark.parametrize("prefix", ["", "nn.", "torch.nn."], ids=["X", "nn.X", "torch.nn.X"])
def test_all_spellings(prefix: str) -> None:
    text = (
        f"{prefix}Sequential({prefix}ConvTranspose2d(16, 8, kernel_size=4, stride=2, padding=1), "
        f"{prefix}ReLU())"
    )
    module = parse_predictor(text)
    assert isinstance(module, nn.Sequential) and len(module) == 2
    conv, relu = module
    assert isinstance(conv, nn.ConvTranspose2d)
    assert (conv.in_channels, conv.out_channels) == (16, 8)
    assert conv.kernel_size == (4, 4) and conv.stride == (2, 2) and conv.padding == (1, 1)
    assert isinstance(relu, nn.ReLU)


def test_mixed_spellings_and_whitespace() -> None:
    module = parse_predictor("  nn.Sequential(\n  torch.nn.Upsample(scale_factor=2),\n  ReLU() )\n")
    assert [type(m) for m in module] == [nn.Upsample, nn.ReLU]


def test_nested_sequential() -> None:
    module = parse_predictor(
        "Sequential(Sequential(ConvTranspose2d(4, 4, 3, padding=1), ReLU()), "
        "nn.Sequential(nn.Sequential(Identity())), Conv2d(4, 2, 1))"
    )
    assert isinstance(module[0], nn.Sequential) and isinstance(module[0][1], nn.ReLU)
    assert isinstance(module[1][0][0], nn.Identity)
    assert isinstance(module[2], nn.Conv2d) and module[2].out_channels == 2
    assert module(torch.zeros(1, 4, 5, 5)).shape == (1, 2, 5, 5)


def test_positional_and_keyword_arguments() -> None:
    conv = parse_predictor("ConvTranspose2d(8, 3, 4, 2, 1, bias=False, output_padding=0)")
    assert conv.kernel_size == (4, 4) and conv.stride == (2, 2) and conv.padding == (1, 1)
    assert conv.bias is None
    up = parse_predictor('Upsample(scale_factor=2.5, mode="bilinear", align_corners=True)')
    assert up.scale_factor == 2.5 and up.mode == "bilinear" and up.align_corners is True
    up = parse_predictor("Upsample(size=None, scale_factor=2, mode='nearest')")
    assert up.size is None and up.mode == "nearest"


def test_tuples_and_lists() -> None:
    conv = parse_predictor(
        "ConvTranspose2d(8, 3, kernel_size=(3, 5), stride=(1, 2), padding=[1, 2])"
    )
    assert conv.kernel_size == (3, 5) and conv.stride == (1, 2)
    up = parse_predictor("Upsample(scale_factor=(2.0, 3.0), mode='bilinear')")
    assert up.scale_factor == (2.0, 3.0)
    nested = parse_predictor("ZeroPad2d(((1), 2, 3, 4))")
    assert nested.padding == (1, 2, 3, 4)


def test_negative_and_signed_numbers() -> None:
    leaky = parse_predictor("LeakyReLU(negative_slope=-0.5)")
    assert leaky.negative_slope == -0.5
    pad = parse_predictor("ConstantPad2d((1, -1, +2, -2), -1.5)")
    assert pad.padding == (1, -1, 2, -2) and pad.value == -1.5
    crop = parse_predictor("ZeroPad2d((-1, -1, -1, -1))")
    assert crop(torch.ones(1, 1, 4, 4)).shape == (1, 1, 2, 2)
    unflatten = parse_predictor("Unflatten(1, (2, -1))")
    assert unflatten.unflattened_size == (2, -1)


def test_every_allowed_layer_is_a_torch_nn_module() -> None:
    assert "Module" not in ALLOWED_LAYERS and "ModuleList" not in ALLOWED_LAYERS
    for name, constructor in ALLOWED_LAYERS.items():
        assert constructor is getattr(nn, name)
        assert issubclass(constructor, nn.Module)


def test_parsing_imports_and_evaluates_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("the parser must not evaluate text")

    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "exec", forbidden)
    module = parse_predictor("Sequential(Upsample(scale_factor=2), ConvTranspose2d(8, 3, 3, 1, 1))")
    assert isinstance(module[1], nn.ConvTranspose2d)


# ---------------------------------------------------------------------- rejected strings
REJECTED = {
    "import": "__import__('os').system('x')",
    "os_system": 'os.system("rm")',
    "lambda": "lambda: ReLU()",
    "lambda_arg": "Sequential(lambda x: x)",
    "attribute_on_other_name": "torchvision.models.resnet18()",
    "attribute_on_os": "os.path.join('a', 'b')",
    "torch_function": "torch.zeros(3)",
    "torch_nn_submodule": "torch.nn.modules.Module()",
    "eval": "eval('ReLU()')",
    "exec": "exec('import os')",
    "eval_in_argument": "ConvTranspose2d(eval('8'), 3, 3)",
    "starred": "Sequential(*x)",
    "starred_literal": "Sequential(*[ReLU()])",
    "double_star": "ConvTranspose2d(8, 3, **{'kernel_size': 3})",
    "name_argument": "ConvTranspose2d(a, 3)",
    "name_keyword": "ConvTranspose2d(8, 3, kernel_size=k)",
    "fstring": 'Upsample(scale_factor=2, mode=f"bi{1}near")',
    "subscript": "Sequential(ReLU(), ReLU())[0]",
    "subscript_func": "nn.__dict__['ReLU']()",
    "subscript_arg": "ConvTranspose2d((8, 3)[0], 3, 3)",
    "getattr": "getattr(nn, 'ReLU')()",
    "dunder_class": "ReLU().__class__()",
    "dunder_attr": "nn.ReLU.__init__()",
    "dunder_subclasses": "nn.Module.__subclasses__()",
    "dunder_globals": "ReLU.__init__.__globals__['os']",
    "nn_module": "nn.Module()",
    "module_list": "ModuleList([ReLU()])",
    "nn_functional": "nn.functional.relu(1)",
    "not_whitelisted_layer": "Transformer()",
    "binop": "ConvTranspose2d(4 * 2, 3, 3)",
    "power": "Linear(10 ** 9, 10 ** 9)",
    "call_in_argument": "ConvTranspose2d(int('8'), 3, 3)",
    "set_literal": "ZeroPad2d({1, 2})",
    "dict_literal": "ConvTranspose2d(8, 3, {'k': 3})",
    "complex": "Upsample(scale_factor=2j)",
    "bytes": "Upsample(mode=b'bilinear')",
    "not_a_call": "ReLU",
    "plain_literal": "3",
    "walrus": "Sequential((x := ReLU()))",
    "comprehension": "Sequential(*[ReLU() for _ in range(3)])",
    "conditional": "ReLU() if True else Tanh()",
    "statement": "import os",
    "two_statements": "ReLU(); import os",
    "syntax_error": "Sequential(ReLU(),",
    "sequential_kwargs": "Sequential(ReLU(), inplace=True)",
    "bad_constructor_args": "ConvTranspose2d(8)",
    "negated_string": "Upsample(mode=-'bilinear')",
}


@pytest.mark.parametrize("text", list(REJECTED.values()), ids=list(REJECTED))
def test_rejected_predictors_name_the_text(text: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_predictor(text, "pcoders[1].predictor")
    message = str(info.value)
    assert "pcoders[1].predictor" in message
    assert text in message or repr(text) in message, message


@pytest.mark.parametrize("text", ["", "   ", None, 3])
def test_empty_or_non_string_predictor(text: object) -> None:
    with pytest.raises(ConfigError, match="predictor"):
        parse_predictor(text)  # type: ignore[arg-type]


def test_rejected_predictor_in_config_names_the_pcoder() -> None:
    data = load_case("case_a")["config"]
    data["pcoders"][1]["predictor"] = "__import__('os').system('echo pwned')"
    with pytest.raises(ConfigError) as info:
        predify.predify(GoldenNet(), data)
    message = str(info.value)
    assert "pcoders[1].predictor" in message
    assert "__import__('os').system('echo pwned')" in message


def test_rejected_predictor_runs_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "ran"
    monkeypatch.chdir(tmp_path)
    text = f"__import__('pathlib').Path({str(marker)!r}).touch()"
    with pytest.raises(ConfigError):
        parse_predictor(text)
    assert not marker.exists()


# ---------------------------------------------------------------------- imports lines
@pytest.mark.parametrize(
    "line",
    [
        "import torch",
        "import torch.nn as nn",
        "from torch import nn",
        "from torch.nn import Sequential, ReLU",
        "from torch.nn import Sequential, ReLU, ConvTranspose2d, Upsample",
        "from torch.nn import (Sequential, ReLU)",
        "  from torch.nn import Sequential  ",
    ],
)
def test_accepted_import_lines(line: str) -> None:
    check_import_line(line, "imports[0]")


@pytest.mark.parametrize(
    "line",
    [
        "import os",
        "import torch, os",
        "import torch as nn",
        "import torch.nn as os",
        "import subprocess as torch",
        "from torch.nn import Module",
        "from torch.nn import ModuleList",
        "from torch.nn import functional",
        "from torch.nn import *",
        "from torch.nn import ReLU as Sequential",
        "from torch import nn as os",
        "from torch import load",
        "from os import system",
        "from torch.nn.modules import ReLU",
        "import os; import torch",
        "ReLU()",
        "from torch.nn import",
        "",
    ],
)
def test_rejected_import_lines(line: str) -> None:
    with pytest.raises(ConfigError) as info:
        check_import_line(line, "imports[2]")
    assert "imports[2]" in str(info.value)
    assert repr(line) in str(info.value) or line in str(info.value)


def test_imports_without_upsample_still_build_automatic_decoders() -> None:
    """The reference's defect (an ``imports`` list without Upsample breaks default decoders)."""
    data = load_case("case_b")
    config = dict(data["config"])
    config["imports"] = ["from torch.nn import Sequential, ReLU, ConvTranspose2d"]
    backbone = GoldenNet()
    backbone.load_state_dict(data["backbone_state"])
    pnet = predify.predify(backbone, config)
    assert [repr(p.decoder) for p in pnet.pcoders] == data["decoder_modules"]
    assert isinstance(pnet.pcoders[0].decoder[0], nn.Upsample)
    for pcoder, state in zip(pnet.pcoders, data["decoder_states"], strict=True):
        pcoder.decoder.load_state_dict(state)
    with torch.no_grad():
        logits = pnet(data["input"], timesteps=6).logits
    torch.testing.assert_close(logits, data["logits"], atol=1e-5, rtol=0)


def test_import_lines_are_not_needed_for_explicit_predictors() -> None:
    text = (GOLDEN_DIR / "case_a.toml").read_text()
    text = text.replace(
        'imports = [ "from torch.nn import Sequential, ReLU, ConvTranspose2d",]', ""
    )
    config = predify.PNetConfig.from_toml_string(text)
    assert config.imports == ()
    pnet = predify.predify(GoldenNet(), config)
    assert isinstance(pnet.pcoders[1].decoder, nn.Sequential)

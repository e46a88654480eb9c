"""The documentation site as a reader's browser gets it: built with ``mkdocs build --strict``, with
no Sphinx role, no raw TeX, no unresolved cross-reference and nothing loaded from the network in
its HTML, and its equations as MathML (drawn by the browser: no script, no network).

The scanner is ``docs/scripts/check_site.py`` (also run by ``.ci/run``). Skipped where the
``docs`` extra is not installed.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

for _package in ("mkdocs", "material", "mkdocstrings", "latex2mathml", "pymdownx", "yaml"):
    pytest.importorskip(_package, reason=f"the docs extra is not installed (no {_package})")

ROOT = Path(__file__).resolve().parents[1]


def _load(relative: str) -> ModuleType:
    # A prefixed name: registered under its bare stem, a file called math.py replaced the
    # standard library's math for every later import in the session (hypothesis broke on it).
    name = "predify_docs_" + Path(relative).stem
    spec = importlib.util.spec_from_file_location(name, ROOT / relative)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


check_site = _load("docs/scripts/check_site.py")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    site = tmp_path_factory.mktemp("site")
    built = check_site.build_site(site)
    assert built.returncode == 0, f"mkdocs build --strict failed:\n{built.stderr[-3000:]}"
    return site


def test_the_site_shows_no_raw_role_tex_or_reference(site: Path) -> None:
    findings = check_site.scan_site(site)
    assert not findings, "\n".join(map(str, findings))


def test_the_dynamics_equations_are_mathml(site: Path) -> None:
    source = (ROOT / "docs/dynamics.md").read_text(encoding="utf-8")
    page = (site / "dynamics/index.html").read_text(encoding="utf-8")
    # Counted in the Markdown source: each \[ opens a displayed formula, each \( an inline one.
    assert page.count('<math xmlns="http://www.w3.org/1998/Math/MathML" display="block">') == (
        source.count("\\[")
    )
    assert page.count('display="inline">') == source.count("\\(")
    assert "mathjax" not in page.lower() and "cdn." not in page


PLANTED = r"""# Planted

A docstring left in Sphinx form: :class:`predify.PredictiveNet`, and
[`load_run`][predify.runtime.runs.load_run] unresolved.

<div>\(e_n\) in a raw HTML block, which Markdown leaves alone.</div>

Converted as it should be: \(\beta_n\), and in code `\(x\)` and `:class:`x`` are left alone.
"""


def _scratch_site(tmp_path: Path, page: str, hooks: bool = True) -> Path:
    """A copy of the site's configuration (theme, extensions, math hook) around one page."""
    import yaml

    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    config["docs_dir"] = str(tmp_path / "docs")
    config["nav"] = [{"Planted": "planted.md"}]
    config["plugins"] = ["search"]  # mkdocstrings would resolve the planted reference
    config["hooks"] = [str(ROOT / "docs/hooks/mathml.py")] if hooks else []
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs/planted.md").write_text(page, encoding="utf-8")
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    site = tmp_path / "site"
    built = check_site.build_site(site, tmp_path / "mkdocs.yml")
    assert built.returncode == 0, built.stderr[-3000:]
    return site


def test_the_scan_finds_planted_roles_tex_and_references(tmp_path: Path) -> None:
    findings = check_site.scan_site(_scratch_site(tmp_path, PLANTED))
    assert [(finding.kind, finding.page) for finding in findings] == [
        ("Sphinx role", "planted/index.html"),
        ("raw TeX", "planted/index.html"),
        ("unresolved cross-reference", "planted/index.html"),
    ]
    assert "Sphinx form: :class:<code>predify.PredictiveNet</code>" in findings[0].snippet
    assert "<div>\\(e_n\\) in a raw HTML block" in findings[1].snippet
    assert "[predify.runtime.runs.load_run]" in findings[2].snippet


def test_without_the_math_hook_every_formula_is_raw(tmp_path: Path) -> None:
    findings = check_site.scan_site(_scratch_site(tmp_path, PLANTED, hooks=False))
    raw = [finding.snippet for finding in findings if finding.kind == "raw TeX"]
    assert len(raw) == 2 and "\\(\\beta_n\\)" in raw[1]


@pytest.mark.parametrize(
    ("tex", "reason"),
    [
        (r"\big\lVert x \big\rVert", r"\lVert is not known"),  # copied through as text
        (r"x^", "MissingSuperScriptOrSubscriptError"),
        (r"\begin{aligned} a &= b \end{aligned}", "& is not known"),  # aligned's & kept as text
    ],
)
def test_a_formula_the_converter_cannot_read_stops_the_build(tex: str, reason: str) -> None:
    from mkdocs.exceptions import PluginError

    mathml = _load("docs/hooks/mathml.py")
    page = f'<p>see <span class="arithmatex">\\({tex}\\)</span></p>'
    with pytest.raises(PluginError, match=re.escape(reason)) as error:
        mathml.render_math(page, "dynamics.md")
    assert str(error.value).startswith("dynamics.md: cannot render TeX")


def test_mathml_with_a_raw_command_is_found() -> None:
    page = '<p><math display="inline"><mo>\\lVert</mo><mi>x</mi></math> and $$x$$</p>'
    findings = check_site.scan_page(page, "p.html")
    assert [(finding.kind, finding.page) for finding in findings] == [
        ("TeX command inside MathML", "p.html"),
        ("raw TeX", "p.html"),  # one finding for the pair of $$, none for the MathML
    ]
    assert findings[0].snippet == "\\lVert"
    assert findings[1].snippet.endswith("</math> and $$x$$</p>")


def test_a_script_or_font_from_the_network_is_found() -> None:
    cdn = '<script src="https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js">'
    fonts = '<link rel="stylesheet" href="https://fonts.googleapis.com/css?family=Roboto">'
    page = f'<head><link rel="canonical" href="https://x.org/p/">{fonts}</head><body>{cdn}</script></body>'
    findings = check_site.scan_page(page, "p.html")
    assert [(finding.kind, finding.snippet) for finding in findings] == [
        ("loaded from the network", fonts),
        ("loaded from the network", cdn),
    ]

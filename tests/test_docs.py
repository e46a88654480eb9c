"""The documentation's code runs: every ``python`` block of the site's own pages is executed, page
by page in order (one namespace per page, in a temporary directory), at the sizes written there.

``text``, ``bash`` and ``toml`` blocks are shown, not run. The CLI reference is generated from the
parsers; the test checks that the generator covers every subcommand.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
# Pages whose code is predify's to keep running; migration.md belongs to another issue.
PAGES = [
    "getting-started.md",
    "backbones.md",
    "tutorials/wrap-your-model.md",
    "tutorials/train-feedback.md",
    "tutorials/imagenet-c.md",
    "tutorials/tune.md",
    "tutorials/attacks.md",
]
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def python_blocks(page: str) -> list[str]:
    return _BLOCK.findall((DOCS / page).read_text(encoding="utf-8"))


@pytest.fixture
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # whatever a page writes lands here
    return tmp_path


@pytest.mark.parametrize("page", PAGES)
def test_page_code_runs(page: str, _in_tmp: Path) -> None:
    blocks = python_blocks(page)
    assert blocks, f"{page} has no python code block"
    namespace: dict[str, object] = {"__name__": f"docs_{Path(page).stem}"}
    for index, block in enumerate(blocks):
        code = compile(block, f"{page}:block{index + 1}", "exec")
        # Runs the project's own pages (never user input): that is the point of the test.
        exec(code, namespace)


def test_cli_reference_covers_every_command() -> None:
    spec = importlib.util.spec_from_file_location("cli_reference", DOCS / "hooks/cli_reference.py")
    assert spec is not None and spec.loader is not None
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    from predify.cli import _COMMANDS

    text = hook.cli_reference_markdown()
    for name in _COMMANDS:
        assert f"## predify {name}\n" in text
    assert "--backbone" in text and "usage: predify train" in text
    page = (DOCS / "reference/cli.md").read_text(encoding="utf-8")
    assert hook.MARKER in page
    assert hook.on_page_markdown(page, None, None, None).count("```text") == len(_COMMANDS) + 1


def test_pictures_exist() -> None:
    for page in DOCS.rglob("*.md"):
        for target in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", page.read_text(encoding="utf-8")):
            assert (page.parent / target).is_file(), f"{page.name}: missing picture {target}"

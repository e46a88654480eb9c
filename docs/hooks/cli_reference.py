"""mkdocs hooks: the command-line reference, generated from predify's argparse parsers.

A page containing ``<!-- predify-cli-reference -->`` gets, in its place, the ``--help`` text of
``predify`` and of every subcommand, exactly as the parsers print it (so the reference cannot
drift from the code). ``cli_reference_markdown`` is also what ``tests/test_docs.py`` checks.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import Any

MARKER = "<!-- predify-cli-reference -->"
# Pages other issues write: listed in the nav, left out (with a note) until they exist.
PAGES_WRITTEN_ELSEWHERE = ("migration.md",)

log = logging.getLogger("mkdocs.hooks.cli_reference")


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def cli_reference_markdown() -> str:
    """Markdown: one section per command with its help text in a code block."""
    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"  # argparse wraps to the terminal width: make it fixed
    try:
        from predify.cli import build_parser

        parser = build_parser()
        parts = ["## predify", "", "```text", parser.format_help().rstrip(), "```", ""]
        for name, sub in _subparsers(parser).items():
            parts += [f"## predify {name}", "", "```text", sub.format_help().rstrip(), "```", ""]
    finally:
        if previous is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = previous
    return "\n".join(parts)


def on_config(config: Any) -> Any:
    docs = Path(config["docs_dir"])

    def keep(entry: Any) -> Any:
        if isinstance(entry, dict):
            kept = {key: keep(value) for key, value in entry.items()}
            return {key: value for key, value in kept.items() if value is not None}
        if isinstance(entry, list):
            kept = [keep(item) for item in entry]
            return [item for item in kept if item not in (None, {}, [])]
        written_elsewhere = isinstance(entry, str) and entry in PAGES_WRITTEN_ELSEWHERE
        if written_elsewhere and not (docs / entry).is_file():
            log.info("%s is not written yet: left out of the nav", entry)
            return None
        return entry

    config["nav"] = keep(config["nav"])
    return config


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if MARKER in markdown:
        return markdown.replace(MARKER, cli_reference_markdown())
    return markdown

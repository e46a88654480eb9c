"""Build the documentation site and read its HTML as a reader's browser would get it.

    python docs/scripts/check_site.py [--site-dir DIR]

Runs ``mkdocs build --strict`` into a temporary folder (or ``--site-dir``) and lists, with the
page and the text around it, what a reader would see raw:

- a Sphinx role (``:class:`X```, ``:func:``, ``:meth:``, ``:mod:``, ``:data:``, ...): mkdocstrings
  renders Google-style docstrings, whose cross-references are ``[`X`][predify.path.X]``;
- TeX left unrendered (``\\(``, ``\\[``, ``$$``) in the text of a page, or a TeX command left
  inside MathML (a construct the converter passed through without reading);
- a cross-reference that did not resolve (``[`X`][predify....]`` printed as text);
- a script, stylesheet or font loaded from another host (the page would need a network).

Code (``<pre>``, ``<code>``) is not read: showing TeX or a role there is the point of it.
Exit status 1 when anything is found, 0 otherwise. ``tests/test_docs_site.py`` runs the same.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Code, scripts and MathML are blanked (same length, so offsets still point into the page).
_HIDDEN = re.compile(r"(<(pre|code|script|style|math)\b[^>]*>)(.*?)(</\2>)", re.S)
_MATH = re.compile(r"<math\b.*?</math>", re.S)
_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|data|attr|exc|obj|ref):(?:`|<code)")
_TEX = re.compile(r"\\\(|\\\[|\$\$(?:[^$]*?\$\$)?")  # one finding per formula
_TEX_IN_MATHML = re.compile(r">[^<]*\\[A-Za-z|][^<]*<")
_UNRESOLVED = re.compile(r"\]\[predify\.[\w.]+\]")
# A script, stylesheet or font fetched from another host: the page would need a network.
_EXTERNAL = re.compile(r"<(?:script|link)\b[^>]*\b(?:src|href)=\"(?:https?:)?//[^\"]*\"[^>]*>")
CHECKS = (
    ("Sphinx role", _ROLE),
    ("raw TeX", _TEX),
    ("unresolved cross-reference", _UNRESOLVED),
)


@dataclass(frozen=True)
class Finding:
    """One thing a reader would see raw: which check, on which page, and the text around it."""

    kind: str
    page: str
    snippet: str

    def __str__(self) -> str:
        return f"{self.page}: {self.kind}: ...{self.snippet}..."


def _snippet(text: str, start: int, end: int) -> str:
    return " ".join(text[max(0, start - 40) : end + 40].split())


def scan_page(page_html: str, page: str) -> list[Finding]:
    """What ``page_html`` shows raw; ``page`` is its path in the site."""
    findings = [
        Finding("loaded from the network", page, match.group())
        for match in _EXTERNAL.finditer(page_html)
        if not re.search(r'rel="(?:canonical|alternate)"', match.group())  # names, not fetches
    ]
    for match in _MATH.finditer(page_html):
        for leak in _TEX_IN_MATHML.finditer(match.group()):
            findings.append(Finding("TeX command inside MathML", page, leak.group()[1:-1]))
    text = _HIDDEN.sub(lambda m: m[1] + " " * len(m[3]) + m[4], page_html)
    for kind, pattern in CHECKS:
        for match in pattern.finditer(text):
            findings.append(Finding(kind, page, _snippet(page_html, match.start(), match.end())))
    return findings


def scan_site(site: Path) -> list[Finding]:
    """Every finding of every HTML page under ``site``, page by page."""
    findings = []
    for path in sorted(site.rglob("*.html")):
        page = path.relative_to(site).as_posix()
        findings += scan_page(path.read_text(encoding="utf-8"), page)
    return findings


def build_site(site: Path, config: Path = ROOT / "mkdocs.yml") -> subprocess.CompletedProcess[str]:
    """``mkdocs build --strict`` of ``config`` into ``site``, with this checkout's ``src`` first."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), *filter(None, [env.get("PYTHONPATH")])])
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet"]
    command += ["--config-file", str(config), "--site-dir", str(site)]
    return subprocess.run(command, env=env, capture_output=True, text=True, check=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site-dir", type=Path, help="build here (default: a temporary folder)")
    options = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        site = options.site_dir or Path(scratch) / "site"
        built = build_site(site)
        if built.returncode != 0:
            print(built.stdout + built.stderr, file=sys.stderr)
            print("mkdocs build --strict failed", file=sys.stderr)
            return 1
        findings = scan_site(site)
    for finding in findings:
        print(finding)
    pages = len({finding.page for finding in findings})
    print(f"{len(findings)} raw roles, TeX or references on {pages} pages" if findings else "clean")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())

"""mkdocs hook: the pages' TeX becomes MathML when the site is built.

`pymdownx.arithmatex` (generic mode) marks each formula as ``<span class="arithmatex">\\(..\\)``
or ``<div class="arithmatex">\\[..\\]``; this hook replaces the TeX inside with the MathML that
`latex2mathml` (installed by the ``docs`` extra) makes of it. Browsers draw MathML themselves
(Chromium since 109, Firefox, Safari), so the built site needs no script and no network: the
equations show on a cluster node as they do online. A formula the converter cannot read stops
the build with its page and its TeX.
"""

from __future__ import annotations

import html
import re
from typing import Any

from latex2mathml.converter import convert
from mkdocs.exceptions import PluginError

_FORMULA = re.compile(r'<(span|div) class="arithmatex">(.*?)</\1>', re.S)
_DELIMITERS = {"span": (r"\(", r"\)"), "div": (r"\[", r"\]")}
# latex2mathml copies a command it does not know into the MathML as text (``<mo>\lVert</mo>``
# after ``\big``), and an alignment ``&`` outside ``array``: the reader would see it raw.
_UNREAD_COMMAND = re.compile(r">[^<]*(\\[A-Za-z|]+|&(?![#\w]+;))")


def render_math(page_html: str, page: str) -> str:
    """``page_html`` with every arithmatex formula as MathML; ``page`` names it in errors."""

    def mathml(match: re.Match[str]) -> str:
        tag, body = match.group(1), html.unescape(match.group(2)).strip()
        opening, closing = _DELIMITERS[tag]
        if not (body.startswith(opening) and body.endswith(closing)):
            raise PluginError(f"{page}: formula without {opening} {closing}: {body[:80]!r}")
        tex = body[len(opening) : -len(closing)].strip()
        try:
            rendered = convert(tex, display="block" if tag == "div" else "inline")
        except Exception as error:  # the converter raises several types; each is a bad formula
            reason = f"{type(error).__name__} {error}".strip()
            raise PluginError(f"{page}: cannot render TeX {tex[:80]!r}: {reason}") from error
        unread = _UNREAD_COMMAND.search(rendered)
        if unread:
            raise PluginError(
                f"{page}: cannot render TeX {tex[:80]!r}: {unread.group(1)} is not known to"
                " latex2mathml here (write it another way; align with array, not aligned)"
            )
        return f'<{tag} class="arithmatex">{rendered}</{tag}>'

    return _FORMULA.sub(mathml, page_html)


def on_page_content(html: str, page: Any, config: Any, files: Any) -> str:
    return render_math(html, page.file.src_uri)

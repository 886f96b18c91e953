"""The dashboard's Help page: docs/coordinators.md rendered, so the guide has one source.

The wheel carries the file as `hlfsync/api/guide/coordinators.md` (pyproject's force-include);
a checkout reads it from docs/. Raw HTML in the markdown is not passed through.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path

from markdown_it import MarkdownIt
from markupsafe import Markup

_CHECKOUT = Path(__file__).resolve().parents[3] / "docs" / "coordinators.md"


def source() -> str:
    """The guide's markdown, from the installed package or else the checkout."""
    shipped = resources.files("hlfsync.api") / "guide" / "coordinators.md"
    if shipped.is_file():
        return shipped.read_text("utf-8")
    return _CHECKOUT.read_text("utf-8")


@cache
def page() -> Markup:
    """The guide as HTML (CommonMark plus tables), built once."""
    html = MarkdownIt("commonmark", {"html": False}).enable("table").render(source())
    return Markup(html)  # noqa: S704 - markdown-it escapes text; raw HTML is disabled

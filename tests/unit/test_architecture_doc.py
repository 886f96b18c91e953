"""docs/architecture.md names every package and top-level module, and the README's tour every
package, so a package added later cannot go unmapped."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).parents[2]
SRC = ROOT / "src" / "hlfsync"
PACKAGES = sorted(p.name for p in SRC.iterdir() if (p / "__init__.py").exists())
MODULES = sorted(p.name for p in SRC.glob("*.py") if p.name != "__init__.py")


def test_the_architecture_page_names_every_package_and_module() -> None:
    """Each package appears as `name/` and each top-level module as `name.py` in the page."""
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    missing = [f"{p}/" for p in PACKAGES if f"`{p}/`" not in text]
    missing += [m for m in MODULES if m not in text]
    assert PACKAGES, "found no packages: the path is wrong"
    assert missing == []


def test_the_readme_tour_lists_every_package() -> None:
    """The README's "How it is built" names `src/hlfsync/<package>/` for every package."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    tour = text.split("## How it is built", 1)[1].split("\n## ", 1)[0]
    assert [p for p in PACKAGES if f"src/hlfsync/{p}/" not in tour] == []

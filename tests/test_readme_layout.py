"""The README's "Where things are" names every module of the tree, so a reader can trust it."""
from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("model", "training", "calculator")


def _what_is_where() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## Where things are", 1)[1]
    return section.split("```", 2)[1]


def test_every_module_of_every_package_is_named_under_its_package():
    block = _what_is_where()
    missing = []
    for package in PACKAGES:
        # the package's part of the block: from its "package/" line to the next top-level entry
        part = re.search(rf"^{package}/.*?(?=^\S)", block + "\nend", re.S | re.M).group(0)
        named = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", part))
        missing += [path.relative_to(REPO).as_posix() for path in sorted((REPO / package).rglob("*.py"))
                    if path.stem not in named and path.stem != "__init__"]
    assert not missing, f"README 'Where things are' does not name: {', '.join(missing)}"


def test_every_top_level_directory_is_named():
    block = _what_is_where()
    named = set(re.findall(r"^(\w+)/", block, re.M))
    tree = {path.name for path in REPO.iterdir()
            if path.is_dir() and not path.name.startswith((".", "_"))
            and path.name not in ("var", "test-artifacts") and not path.name.endswith(".egg-info")}
    assert tree <= named, f"not in README 'Where things are': {sorted(tree - named)}"


def test_the_readme_is_a_front_door():
    """At most 200 lines, and every local page it links to exists."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 200
    links = re.findall(r"\]\(([^)#:]+)\)", text)
    assert links
    assert [link for link in links if not (REPO / link).exists()] == []

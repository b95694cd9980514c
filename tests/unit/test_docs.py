"""The documentation against the tree: the layout page, the README's size and links, the nav.

docs/layout.md must name every package and module of src/journeyformer/ and nothing that is not
there; the README stays a front door (at most 300 lines) whose links all lead somewhere; every
page of docs/ is in mkdocs.yml's nav and every nav entry is a page. The site itself is built
with ``mkdocs build --strict`` by ``make test`` and ``make docs``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PACKAGE = ROOT / "src" / "journeyformer"
README = ROOT / "README.md"
README_MAX_LINES = 300

# Phrases of a lab notebook: the docs describe the product as it is, history lives in git.
HISTORY = re.compile(
    r"\bthis session\b|\bearlier session|\bthis round\b|\bprevious default\b|\bnew default\b"
    r"|\bold default\b|\bmeasured before\b|\bbefore this change\b",
    re.IGNORECASE,
)


def section(text: str, heading: str) -> str:
    """The body of the ``## heading`` section (up to the next ``## ``)."""
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    assert match, f"docs/layout.md has no '## {heading}' section"
    return match.group(1)


def bullet_paths(body: str) -> list[str]:
    """The backticked paths (``x.py``, ``x/``) at the head of each ``- `` bullet, before its colon."""
    paths = []
    for line in body.splitlines():
        if line.startswith("- `"):
            head = line[2:].split("`:", 1)[0] + "`"
            paths += re.findall(r"`([^`]+)`", head)
    return paths


def layout() -> str:
    return (DOCS / "layout.md").read_text()


def test_every_path_the_layout_names_in_the_package_exists() -> None:
    named = bullet_paths(section(layout(), "The package"))
    assert len(named) > 50, named
    missing = [p for p in named if not (PACKAGE / p).exists()]
    assert not missing, f"docs/layout.md names {missing}, not under src/journeyformer/: update the page"


def test_every_package_and_module_is_described_in_the_layout() -> None:
    named = set(bullet_paths(section(layout(), "The package")))
    modules = {p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts}
    modules = {m for m in modules if not m.endswith("/__init__.py")}  # a package is named as "pkg/"
    packages = {
        p.parent.relative_to(PACKAGE).as_posix() + "/"
        for p in PACKAGE.rglob("__init__.py")
        if p.parent != PACKAGE and "__pycache__" not in p.parts
    }
    undescribed = sorted((modules | packages) - named)
    assert not undescribed, f"src/journeyformer/ has {undescribed}, not described in docs/layout.md"


def test_the_repository_section_names_what_exists() -> None:
    body = section(layout(), "The repository")
    named = bullet_paths(body)
    missing = [p for p in named if not (ROOT / p).exists()]
    assert not missing, f"docs/layout.md names {missing}, not in the repository"
    # every command config and every config group of configs/ is named in the configs bullet
    configs = next(line for line in body.split("\n- ") if line.startswith("`configs/`"))
    mentioned = set(re.findall(r"`([^`]+)`", configs))
    on_disk = {p.name for p in (ROOT / "configs").glob("*.yaml")} | {
        p.name + "/" for p in (ROOT / "configs").iterdir() if p.is_dir()
    }
    assert on_disk <= mentioned, f"configs/ has {sorted(on_disk - mentioned)}, not named in docs/layout.md"
    assert mentioned - {"configs/", "src/journeyformer/configs"} <= on_disk, sorted(mentioned - on_disk)


def test_readme_is_a_front_door() -> None:
    lines = README.read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; at most {README_MAX_LINES}"
    assert "## Results" in lines, "README.md has a '## Results' section"


def slug(heading: str) -> str:
    """The anchor Python-Markdown's toc gives a heading."""
    value = re.sub(r"[^\w\s-]", "", heading).strip().lower()
    return re.sub(r"[-\s]+", "-", value)


def anchors(page: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.MULTILINE | re.DOTALL)
    return {slug(h) for h in re.findall(r"^#{1,6} (.+)$", text, re.MULTILINE)}


def links(page: Path) -> list[str]:
    """Relative Markdown link targets of a page, code blocks left out."""
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.MULTILINE | re.DOTALL)
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    return [t for t in targets if not re.match(r"[a-z]+:", t)]


@pytest.mark.parametrize("page", [README, *sorted(DOCS.glob("*.md"))], ids=lambda p: p.name)
def test_links_lead_to_pages_and_headings_that_exist(page: Path) -> None:
    broken = []
    for target in links(page):
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(target)
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(target)
    assert not broken, f"{page.relative_to(ROOT)} links to {broken}, which do not exist"


def nav_pages(nav: list) -> list[str]:
    pages = []
    for item in nav:
        value = next(iter(item.values())) if isinstance(item, dict) else item
        pages += nav_pages(value) if isinstance(value, list) else [value]
    return pages


def test_every_page_is_in_the_nav_and_every_nav_entry_is_a_page() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    in_nav = nav_pages(config["nav"])
    assert len(in_nav) == len(set(in_nav)), in_nav
    pages = {p.name for p in DOCS.glob("*.md")}
    assert pages <= set(in_nav), f"docs/ pages missing from mkdocs.yml's nav: {sorted(pages - set(in_nav))}"
    assert set(in_nav) <= pages, f"mkdocs.yml's nav names pages not in docs/: {sorted(set(in_nav) - pages)}"


@pytest.mark.parametrize("page", [README, *sorted(DOCS.glob("*.md"))], ids=lambda p: p.name)
def test_pages_describe_the_product_not_its_history(page: Path) -> None:
    found = HISTORY.findall(page.read_text())
    assert not found, f"{page.relative_to(ROOT)} reads like a lab notebook: {found}; keep one current figure"

"""The README stays short, CI finds its two commands, every relative link of
the README and docs/ leads somewhere, and the generated tables have their
markers."""
import re
from pathlib import Path
from typing import Dict, List, Set

import pytest

from conftest import REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


def prose(path: Path) -> str:
    """The page without its fenced code blocks."""
    return FENCE.sub("", path.read_text(encoding="utf8"))


def anchors(path: Path) -> Set[str]:
    """GitHub's anchors of a page's headings: lowercased, punctuation dropped,
    spaces as hyphens, and -1, -2 ... after repeats."""
    seen: Dict[str, int] = {}
    found = set()
    for line in prose(path).splitlines():
        if line.startswith("#"):
            slug = re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
            seen[slug] = seen.get(slug, -1) + 1
            found.add(slug if seen[slug] == 0 else f"{slug}-{seen[slug]}")
    return found


def relative_links(path: Path) -> List[str]:
    return [link for link in LINK.findall(prose(path)) if not re.match(r"[a-z]+:", link)]


def test_readme_is_short():
    assert len((REPO / "README.md").read_text(encoding="utf8").splitlines()) <= 200


def test_pretraining_page_is_a_user_page():
    """The research log lives in experiments/NOTES.md, not on the user page:
    its prose (what lies outside the generated blocks) stays short."""
    text = (REPO / "docs" / "pretraining.md").read_text(encoding="utf8")
    prose = re.sub(r"<!-- ([\w-]+):start -->.*?<!-- \1:end -->", "", text, flags=re.DOTALL)
    assert "<!-- screen:start -->" in text and len(prose.splitlines()) <= 180


def test_readme_keeps_the_commands_ci_runs():
    text = (REPO / "README.md").read_text(encoding="utf8")
    fenced = "\n".join(FENCE.findall(text))
    setup = [line for line in fenced.splitlines() if line.endswith("# setup-and-run")]
    assert len(setup) == 1 and "pip install" in setup[0] and "&& python -m spacy project run all project" in setup[0]
    tests = [line for line in fenced.splitlines() if line.endswith("# tests")]
    assert len(tests) == 1 and tests[0].startswith("python -m pytest tests -q")


@pytest.mark.parametrize("page", PAGES, ids=lambda path: path.name)
def test_relative_links_resolve(page):
    links = relative_links(page)
    assert links or page.name != "README.md"
    for link in links:
        target, _, anchor = link.partition("#")
        path = (page.parent / target).resolve() if target else page
        assert path.exists(), f"{page.name}: {link} leads nowhere"
        if anchor and path.suffix == ".md":
            assert anchor in anchors(path), f"{page.name}: {link} has no such heading"


@pytest.mark.parametrize("page,name", [("docs/performance.md", "bench-accuracy"), ("docs/performance.md", "bench-speed"),
                                       ("docs/project.md", "project-results"), ("README.md", "bench-summary")])
def test_generated_tables_have_their_markers(page, name):
    text = (REPO / page).read_text(encoding="utf8")
    assert text.count(f"<!-- {name}:start -->") == 1 and text.count(f"<!-- {name}:end -->") == 1

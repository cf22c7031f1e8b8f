"""Issue 34, point 1: a README a newcomer reads top to bottom (at most about 200 lines: what it is, the two
commands, a tour per user, the guides), and guides whose every link and anchor leads somewhere."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from cli import ROOT

LINK = re.compile(r"\]\(([^)\s]+)\)")
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def anchors(page: Path) -> set[str]:
    """GitHub's anchors for the page's headings: lower case, punctuation dropped, spaces as hyphens."""
    headings = re.findall(r"^#{1,6} (.+)$", page.read_text(), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


def test_the_readme_is_short_starts_with_the_two_commands_and_names_what_the_tests_need():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    commands = re.findall(r"^    (make \w+)", text, re.MULTILINE)
    assert commands[:2] == ["make run", "make test"]
    for need in ("PostgreSQL", "Java 17", "chromium", "../shared/", "minutes"):
        assert need in text, need
    stories = len(list((ROOT / "tests" / "scenarios").glob("p*.json")))
    assert f"{ {20: 'twenty', 21: 'twenty-one', 22: 'twenty-two'}[stories]} patients" in text  # as many as there are
    assert f"p{stories:02d} " in text  # and each is named


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_link_of_the_guides_leads_somewhere(page):
    for target in LINK.findall(page.read_text()):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.exists(), f"{page.name}: {target} does not exist"
        if anchor and linked.suffix == ".md":
            assert anchor in anchors(linked), f"{page.name}: {target} names no heading of {linked.name}"

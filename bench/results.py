"""bench/results.md holds every benchmark's results: `make bench` writes the file, and other benchmarks
(`make bench-bulk`) write sections of their own, between markers, which each run keeps."""
from __future__ import annotations

import re
from pathlib import Path

SECTION = re.compile(r"<!-- begin (?P<title>.+?) -->\n.*?<!-- end (?P=title) -->\n", re.DOTALL)


def marked_sections(path: Path) -> str:
    """The file's marked sections, to write again after its own content."""
    return "".join("\n" + match.group(0) for match in SECTION.finditer(path.read_text())) if path.exists() else ""


def replace_section(path: Path, title: str, text: str) -> None:
    """Put `text` under `## title` between markers, in place of the section's last results."""
    block = f"<!-- begin {title} -->\n## {title}\n\n{text}<!-- end {title} -->\n"
    current = path.read_text() if path.exists() else ""
    kept = [match for match in SECTION.finditer(current) if match.group("title") == title]
    if kept:
        path.write_text(current[:kept[0].start()] + block + current[kept[0].end():])
    else:
        path.write_text(current.rstrip("\n") + "\n\n" + block)

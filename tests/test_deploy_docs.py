"""docs/deploy.md lists every setting the code has, with the code's default, and nothing else."""
from __future__ import annotations

import re

from cli import ROOT

from cds_spine.settings import Settings

ROW = re.compile(r"^\| `(CDS_SPINE_[A-Z_]+)` \| (.+?) \| (.+) \|$", re.MULTILINE)


def documented() -> dict[str, str]:
    return {name: default for name, default, _ in ROW.findall((ROOT / "docs" / "deploy.md").read_text())}


def as_written(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return ",".join(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def test_every_setting_is_documented_and_nothing_else():
    assert set(documented()) == {f"CDS_SPINE_{name.upper()}" for name in Settings.model_fields}


def test_documented_defaults_are_the_code_defaults():
    """A default written as a literal (`...` at the start of the cell) must be the code's default."""
    wrong = {}
    for name, field in Settings.model_fields.items():
        cell = documented()[f"CDS_SPINE_{name.upper()}"]
        literal = re.match(r"`([^`]*)`", cell)
        if field.default is None or not literal:  # unset by default, or described in words
            continue
        if literal.group(1) != as_written(field.default):
            wrong[name] = (literal.group(1), as_written(field.default))
    assert not wrong, wrong

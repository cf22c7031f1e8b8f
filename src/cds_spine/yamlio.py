"""YAML as the service reads its own files (cards/, the trusted-clients file): safe loading only, with libyaml's
C parser when PyYAML has it (about ten times faster: every process start reads cards/pathway.yaml)."""
from __future__ import annotations

from typing import Any

import yaml

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(text: str) -> Any:
    """Like yaml.safe_load; raises yaml.YAMLError on a malformed document."""
    return yaml.load(text, Loader=_LOADER)

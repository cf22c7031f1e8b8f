"""Run the installed `cds-spine` console script, as an operator would."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

CDS_SPINE = str(Path(sys.executable).parent / "cds-spine")
ROOT = Path(__file__).resolve().parent.parent


def clean_env(**settings: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("CDS_SPINE_")}
    env.update(settings)
    return env


def run_cli(*args: str, **settings: str) -> subprocess.CompletedProcess:
    return subprocess.run([CDS_SPINE, *args], capture_output=True, text=True, timeout=120, env=clean_env(**settings),
                          cwd=ROOT)

"""The Dockerfile: hadolint finds nothing, and its build and install commands work.

No Docker engine runs here, so the test plays the image build: it stages each stage's COPY sources,
runs the stage's `pip` RUN commands as written (paths mapped into a temporary root), and starts the
installed console script. Only `useradd` (a system change) is not run.
"""
from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from cli import ROOT, VALUESET_COUNT, clean_env

from cds_spine.cli import in_container

DOCKERFILE = (ROOT / "Dockerfile").read_text()
HADOLINT = str(Path(sys.executable).parent / "hadolint")


def test_hadolint_finds_nothing():
    result = subprocess.run([HADOLINT, "--no-color", "Dockerfile"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.replace("\\\n", " ")
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in text.splitlines()
            if line.strip() and not line.startswith("#")]


def test_build_and_install_commands_work(tmp_path):
    root = tmp_path / "root"
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    # The image's Python has the dependencies from PyPI; here the test environment's stand in (offline).
    deps = tmp_path / "deps"
    deps.mkdir()
    for package in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if not package.name.startswith("cds_spine"):
            (deps / package.name).symlink_to(package)
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "test-environment.pth").write_text(f"{deps}\n")
    bin_dir = venv / "bin"

    def on_root(text: str) -> str:
        return re.sub(r"(?<![\w.])/(src|wheels)\b", lambda m: f"{root}/{m.group(1)}", text)

    workdir = root
    for instruction, argument in instructions():
        if instruction == "WORKDIR":
            workdir = Path(on_root(argument)) if argument.startswith("/src") else workdir
            workdir.mkdir(parents=True, exist_ok=True)
        elif instruction == "COPY" and not argument.startswith("--from"):
            *sources, target = shlex.split(argument)
            for source in sources:
                into_folder = len(sources) > 1 or target in (".", "./")
                destination = workdir / target / Path(source).name if into_folder else workdir / target
                destination.parent.mkdir(parents=True, exist_ok=True)
                copy = shutil.copytree if (ROOT / source).is_dir() else shutil.copy2
                copy(ROOT / source, destination)
        elif instruction == "RUN" and argument.startswith("pip "):
            command = on_root(argument).replace("pip ", f"{bin_dir / 'pip'} ", 1)
            result = subprocess.run(command, shell=True, cwd=workdir, capture_output=True, text=True,
                                    env=clean_env(PIP_NO_INDEX="1"))
            assert result.returncode == 0, f"{argument}\n{result.stdout}\n{result.stderr}"
    cmd = shlex.split(dict(instructions())["CMD"].strip("[]").replace(",", " ").replace('"', ""))
    assert cmd == ["cds-spine", "serve"]
    result = subprocess.run([str(bin_dir / "cds-spine"), "check-config"], capture_output=True, text=True,
                            env=clean_env(), cwd=tmp_path)
    assert result.returncode == (1 if in_container() else 0), result.stderr  # 1: SQLite in a container
    assert str(venv) in result.stdout and f"{VALUESET_COUNT} value sets" in result.stdout

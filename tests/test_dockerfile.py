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

from cli import ROOT, VALUESET_COUNT, clean_env, free_port, serving

from cds_spine.cli.check import in_container

DOCKERFILE = (ROOT / "Dockerfile").read_text()
HADOLINT = str(Path(sys.executable).parent / "hadolint")


def test_hadolint_finds_nothing():
    result = subprocess.run([HADOLINT, "--no-color", "Dockerfile"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.replace("\\\n", " ")
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in text.splitlines()
            if line.strip() and not line.startswith("#")]


LOCKED = re.compile(r"^([A-Za-z0-9._-]+)==([^ ]+) \\$", re.MULTILINE)


def test_the_lock_pins_every_dependency_with_hashes_and_is_what_is_installed():
    """requirements.lock (`make lock`) holds the service's dependencies, each at one version with its hashes,
    within pyproject's ranges, and `make test` installed exactly those versions."""
    import tomllib
    from importlib.metadata import version

    from packaging.requirements import Requirement

    text = (ROOT / "requirements.lock").read_text()
    locked = {canonical(name): pinned for name, pinned in LOCKED.findall(text)}
    blocks = [block for block in text.split("\n") if re.match(r"^[A-Za-z0-9._-]+==", block)]
    assert len(blocks) == len(locked) and text.count("--hash=sha256:") >= len(locked)
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for requirement in map(Requirement, declared):
        assert requirement.specifier.contains(locked[canonical(requirement.name)]), requirement
    assert {name: version(name) for name in locked} == locked


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_build_and_install_commands_work(tmp_path):
    root = tmp_path / "root"
    venv = tmp_path / "venv"
    # Without its own pip (4 s of this test): the Dockerfile's pip commands run this environment's pip against it.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
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
            *sources, target = shlex.split(on_root(argument))
            for source in sources:
                into_folder = len(sources) > 1 or target in (".", "./")
                destination = workdir / target / Path(source).name if into_folder else workdir / target
                destination.parent.mkdir(parents=True, exist_ok=True)
                copy = shutil.copytree if (ROOT / source).is_dir() else shutil.copy2
                copy(ROOT / source, destination)
        elif instruction == "RUN" and "--require-hashes" in argument:
            lock = Path(on_root(argument.split(" -r ", 1)[1].split()[0]))
            assert lock.read_text() == (ROOT / "requirements.lock").read_text()  # offline: the lock is checked
        elif instruction == "RUN" and argument.startswith("pip "):
            command = on_root(argument).replace("pip ", f"{sys.executable} -m pip --python {bin_dir / 'python'} ", 1)
            result = subprocess.run(command, shell=True, cwd=workdir, capture_output=True, text=True,
                                    env=clean_env(PIP_NO_INDEX="1"))
            assert result.returncode == 0, f"{argument}\n{result.stdout}\n{result.stderr}"
    cmd = shlex.split(dict(instructions())["CMD"].strip("[]").replace(",", " ").replace('"', ""))
    assert cmd == ["cds-spine", "serve"]
    result = subprocess.run([str(bin_dir / "cds-spine"), "check-config"], capture_output=True, text=True,
                            env=clean_env(), cwd=tmp_path)
    assert result.returncode == (1 if in_container() else 0), result.stderr  # 1: SQLite in a container
    assert str(venv) in result.stdout and f"{VALUESET_COUNT} value sets" in result.stdout


def test_the_healthcheck_follows_the_port_setting(tmp_path):
    """Issue 34, point 5: the HEALTHCHECK asked port 8080 whatever CDS_SPINE_PORT said."""
    import json

    healthcheck = next(line for line in DOCKERFILE.splitlines() if line.startswith("HEALTHCHECK"))
    command = json.loads(healthcheck.split(" CMD ", 1)[1])
    command[0] = sys.executable
    port = free_port()
    with serving(port=port, CDS_SPINE_DATABASE_URL=f"sqlite:///{tmp_path / 'a.db'}"):
        assert subprocess.run(command, env=clean_env(CDS_SPINE_PORT=str(port))).returncode == 0
    assert subprocess.run(command, env=clean_env(CDS_SPINE_PORT=str(port)), capture_output=True).returncode != 0

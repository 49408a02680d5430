"""The real community clients from PyPI, installed side by side under .compat/ (never into the venv)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMPAT = ROOT / ".compat"
VERSIONS = ("0.2.9", "0.2.7")


def install_client(version: str) -> Path:
    """pip install --no-deps --target .compat/ppc-<version>; their dependencies are in the venv already.
    Installed into a staging folder first, so an interrupted install never looks complete."""
    target = COMPAT / f"ppc-{version}"
    if (target / f"pyporscheconnectapi-{version}.dist-info").is_dir():
        return target
    staging = COMPAT / f".staging-ppc-{version}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    # Runs before any stack is up (session scope), so blocking here freezes no server.
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "--no-deps",
            "--target",
            str(staging),
            f"pyporscheconnectapi=={version}",
        ],
        check=True,
    )
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target


@pytest.fixture(scope="session")
def compat_clients() -> dict[str, Path]:
    """Each client version's folder for PYTHONPATH; installs what is missing, fails if it cannot."""
    return {version: install_client(version) for version in VERSIONS}

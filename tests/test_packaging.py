"""The distribution installs one import package, nexusctl, and sits beside other packages without clobbering them.

It used to install four top-level packages (nexusctl, daemon, providers, db): in an environment that also held
python-daemon (import name ``daemon``, a common companion of daemons), installing nexusctl overwrote
``daemon/__init__.py`` without a word from pip. The wheel is built from this checkout as pip builds it.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PIP = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]


def _wheel(tmp_path: Path) -> Path:
    built = subprocess.run(
        [*PIP, "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = (tmp_path / "dist").glob("nexusctl-*.whl")
    return wheel


def test_the_wheel_holds_one_top_level_package_with_its_migrations(tmp_path):
    names = zipfile.ZipFile(_wheel(tmp_path)).namelist()
    top = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top == {"nexusctl"}, top
    assert "nexusctl/db/migrations/0001_initial.py" in names  # the package data comes along
    assert any(name.startswith("nexusctl/daemon/") for name in names)
    assert any(name.startswith("nexusctl/providers/") for name in names)


def test_installed_beside_python_daemon_both_import(tmp_path):
    target = tmp_path / "site"
    installed = subprocess.run(
        [*PIP, "install", "-q", "--no-deps", "--target", str(target), str(_wheel(tmp_path)), "python-daemon"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    # Only the installed copies on the path first (this checkout's editable install comes after them).
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            (
                "import daemon, nexusctl, nexusctl.daemon.app, nexusctl.db.migrate\n"
                "print(daemon.DaemonContext.__module__, nexusctl.__file__)"
            ),
        ],
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert probe.returncode == 0, probe.stderr
    module, where = probe.stdout.split()
    assert module == "daemon.daemon" and where == str(target / "nexusctl" / "__init__.py"), probe.stdout

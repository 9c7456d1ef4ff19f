"""The package layers (DESIGN: devnet > sequencer | rollup_node > xrollup) are enforced:
`make check` runs lint-imports with the contracts in pyproject.toml. On a copy of the
four packages, lint-imports passes; after an up-layer import (the node's follower
importing devnet) it fails and names the broken contract."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("xrollup", "sequencer", "rollup_node", "devnet")
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
LAYERS = "devnet > sequencer | rollup_node > xrollup"


def copy_project(dest: Path) -> None:
    for name in PACKAGES:
        shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", dest / "pyproject.toml")


def lint_imports(project: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(project)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-logo", "--no-cache"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_packages_keep_their_layers(tmp_path: Path) -> None:
    copy_project(tmp_path)
    result = lint_imports(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{LAYERS} KEPT" in result.stdout


def test_an_up_layer_import_breaks_the_layers_contract(tmp_path: Path) -> None:
    copy_project(tmp_path)
    with (tmp_path / "rollup_node" / "follower.py").open("a") as f:
        f.write("\nfrom devnet import cli  # noqa: E402, F401\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    assert f"{LAYERS} BROKEN" in result.stdout
    assert "rollup_node is not allowed to import devnet" in result.stdout
    assert "rollup_node.follower -> devnet.cli" in result.stdout

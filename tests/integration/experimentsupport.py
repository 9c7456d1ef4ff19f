"""Running `devnet experiment NAME --size small` as users type it (.venv/bin/devnet
in a subprocess) and reading what it wrote; shared by the experiment tests."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

DEVNET = str(Path(sys.executable).parent / "devnet")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run_small(
    name: str, seed: int, tmp_path: Path, timeout: float
) -> tuple[dict[str, Any], Path, str]:
    """Run the experiment at the small size with --json; its JSON document, its
    report's folder and report.md's text. Asserts it exited 0, wrote where it
    says (OUT/NAME-seedS-small) and that report.json carries the same summary."""
    started = time.monotonic()
    argv = ["experiment", name, "--seed", str(seed), "--size", "small"]
    p = subprocess.run(
        [DEVNET, *argv, "--out", str(tmp_path / "out"), "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    print(f"devnet {' '.join(argv)}: {time.monotonic() - started:.1f} s")
    assert p.returncode == 0, f"exit {p.returncode}\n{p.stdout}\n{p.stderr}"
    doc: dict[str, Any] = json.loads(p.stdout)
    folder = Path(doc["folder"])
    assert folder == (tmp_path / "out" / f"{name}-seed{seed}-small").resolve()
    assert Path(doc["report"]) == folder / "report.md"
    assert json.loads((folder / "report.json").read_text())["summary"] == doc["summary"]
    return doc, folder, Path(doc["report"]).read_text()


def assert_png(path: Path) -> None:
    assert path.read_bytes().startswith(PNG_MAGIC), f"{path} is not a PNG"

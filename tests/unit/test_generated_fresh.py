"""The committed generated code in xrollup/v1 is exactly what `make proto` writes."""

from __future__ import annotations

import filecmp
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_generated_code_matches_proto_sources(tmp_path: Path) -> None:
    protos = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "proto/xrollup/v1").glob("*.proto"))
    assert protos, "no .proto sources found"
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}"}
    out = str(tmp_path)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            "-Iproto",
            f"--python_out={out}",
            f"--mypy_out={out}",
            f"--grpc_python_out={out}",
            f"--mypy_grpc_out={out}",
            *protos,
        ],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    fresh = tmp_path / "xrollup/v1"
    committed = ROOT / "xrollup/v1"
    generated = sorted(p.name for p in fresh.iterdir())
    assert generated, "protoc wrote nothing"
    stale = [
        name
        for name in generated
        if not (committed / name).exists()
        or not filecmp.cmp(fresh / name, committed / name, shallow=False)
    ]
    assert not stale, f"generated code is stale, run `make proto`: {stale}"

"""On a fresh copy of the repository, `make up` gives a healthy devnet (the
sequencer, nodes alpha and beta, the proxy and the explorer) and `devnet down`
leaves no process behind."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request
from pathlib import Path

from devnet.launcher import check_health, is_alive

ROOT = Path(__file__).resolve().parents[2]


def _fresh_copy(dest: Path) -> None:
    """What a clone holds: tracked files plus new files not ignored by .gitignore."""
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout.split(b"\0")
    for name in filter(None, files):
        src = ROOT / name.decode()
        if src.is_file():
            (dest / name.decode()).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name.decode())


def _processes_mentioning(text: str) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if text.encode() in (proc / "cmdline").read_bytes():
                    pids.append(int(proc.name))
            except OSError:
                continue
    return pids


def test_make_up_on_fresh_copy_then_down(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    _fresh_copy(repo)
    assert not (repo / ".venv").exists()
    try:
        up = subprocess.run(["make", "up"], cwd=repo, capture_output=True, text=True, timeout=600)
        assert up.returncode == 0, up.stdout[-2000:] + up.stderr[-2000:]
        assert (repo / ".venv/bin/devnet").exists()
        manifest = json.loads((repo / ".devnet/devnet.json").read_text())
        pids = [p["pid"] for p in manifest["processes"]]
        for p in manifest["processes"]:
            if p["role"] == "explorer":  # HTTP, not gRPC
                with urllib.request.urlopen(f"http://{p['endpoint']}/healthz", timeout=5) as r:
                    assert json.loads(r.read())["ok"] is True
            elif p["role"] != "proxy":  # the proxy's own port is TCP forwarding, not a server
                assert check_health(p["endpoint"], timeout=5), p["name"]
        status = subprocess.run(
            [str(repo / ".venv/bin/devnet"), "status", "--json"],
            cwd=repo,
            capture_output=True,
            text=True,
        )
        rows = json.loads(status.stdout)["processes"]
        assert [(r["name"], r["healthy"]) for r in rows] == [
            ("sequencer", True),
            ("proxy", True),
            ("alpha", True),
            ("beta", True),
            ("explorer", True),
        ]
        assert rows[0]["height"] is not None and rows[0]["state_root"] is None
        nodes = [r for r in rows if r["role"] == "node"]
        assert all(r["height"] is not None and len(r["state_root"]) == 64 for r in nodes)
    finally:
        down = subprocess.run(
            [str(repo / ".venv/bin/devnet"), "down"],
            cwd=repo,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert down.returncode == 0, down.stderr
    assert not any(is_alive(pid) for pid in pids)
    assert _processes_mentioning(str(repo)) == []

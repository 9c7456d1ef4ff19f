"""Start the devnet proxy as a real process (python -m devnet.proxy) in a test's
directory: its argv from launcher.proxy_argv, its route endpoints from its
ready file. The caller stops it by pid (a fixture's teardown)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from devnet.launcher import Launched, proxy_argv, start_process


def start_proxy_process(
    tmp_path: Path,
    target: str,
    routes: list[str],
    route_targets: dict[str, str] | None = None,
) -> tuple[Launched, dict[str, Any]]:
    """The proxy to --target `target` with `routes` on any free port (those in
    `route_targets` to their own); (its process, its ready file's content)."""
    ready = tmp_path / "proxy.ready"
    argv = proxy_argv(
        target,
        {r: "127.0.0.1:0" for r in routes},
        tmp_path / "faults.json",
        ready,
        None,
        route_targets=route_targets,
    )
    proc = start_process(
        "proxy",
        "proxy",
        None,
        argv,
        tmp_path,
        tmp_path / "proxy.log",
        ready,
        detach=False,
        health=False,
    )
    info: dict[str, Any] = json.loads(ready.read_text())
    return proc, info

"""Starting and stopping the devnet's processes as real OS processes: each with
its data directory, log file and ready file, health-checked over grpc.health.v1
(or, for a program that writes no ready file, such as etcd, up once a probe says
so), and stopped by its own pid (SIGTERM, then SIGKILL after a grace period).
Never by name."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


@dataclass
class Launched:
    """A process this devnet started."""

    name: str
    role: str  # "sequencer" | "node"
    rollup: str | None
    pid: int
    endpoint: str
    data_dir: Path
    log: Path
    argv: list[str] = field(default_factory=list)
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False, compare=False)
    info: dict[str, Any] = field(default_factory=dict)  # the ready file's contents


METRICS_ANY_PORT = "127.0.0.1:0"  # what the argv builders pass to --metrics-listen


class LaunchError(RuntimeError):
    """A process did not come up; the message says why and where its log is."""


def sequencer_argv(
    listen: str,
    data_dir: Path,
    ready_file: Path,
    genesis: Path | None,
    block_interval_ms: int | None = None,
    metrics_listen: str | None = METRICS_ANY_PORT,
    retain_blocks: int | None = None,
) -> list[str]:
    """The sequencer's command line; metrics_listen None: no metrics; retain_blocks
    None: the sequencer's default retention."""
    argv = [sys.executable, "-m", "sequencer", "--listen", listen, "--data-dir", str(data_dir)]
    argv += ["--ready-file", str(ready_file)]
    if genesis is not None:
        argv += ["--genesis", str(genesis)]
    if block_interval_ms is not None:
        argv += ["--block-interval-ms", str(block_interval_ms)]
    return argv + _retain_args(retain_blocks) + _metrics_args(metrics_listen)


def _retain_args(retain_blocks: int | None) -> list[str]:
    return ["--retain-blocks", str(retain_blocks)] if retain_blocks is not None else []


def _metrics_args(metrics_listen: str | None) -> list[str]:
    return ["--metrics-listen", metrics_listen] if metrics_listen else []


def start_process(
    name: str,
    role: str,
    rollup: str | None,
    argv: list[str],
    data_dir: Path,
    log: Path,
    ready_file: Path,
    timeout: float = 20.0,
    detach: bool = True,
    health: bool = True,
    probe: Probe | None = None,
) -> Launched:
    """Start `argv` with output to `log`, wait for its ready file and (unless
    health=False, for the proxy) its grpc.health.v1 status, or, given a probe,
    until the probe says it is up. The returned argv has --listen and
    --metrics-listen pinned to what was bound, so a restart reuses the ports."""
    starting = spawn_process(
        name, role, rollup, argv, data_dir, log, ready_file, timeout, detach, health, probe
    )
    while (launched := poll_started(starting)) is None:
        time.sleep(POLL_S)
    return launched


POLL_S = 0.005
"""How often a starting process's ready file is looked for: a stat() each time."""


@dataclass
class Starting:
    """A process spawned and not yet known to be up (spawn_process, poll_started)."""

    name: str
    role: str
    rollup: str | None
    argv: list[str]
    data_dir: Path
    log: Path
    ready_file: Path
    popen: subprocess.Popen[bytes]
    timeout: float
    deadline: float
    health: bool
    probe: Probe | None = None


Probe = Callable[[Starting], dict[str, Any] | None]
"""Says whether a starting process that writes no ready file is up (one quick
check, say an HTTP GET with a short timeout): None while not, else what a ready
file would hold, at least its "endpoint" (and "metrics", its Prometheus URL, when
it serves one)."""


def spawn_process(
    name: str,
    role: str,
    rollup: str | None,
    argv: list[str],
    data_dir: Path,
    log: Path,
    ready_file: Path,
    timeout: float = 20.0,
    detach: bool = True,
    health: bool = True,
    probe: Probe | None = None,
) -> Starting:
    """Start `argv` with output to `log` and return at once; poll_started says
    when it is up. Several processes can start side by side this way. `probe`:
    see Probe; it replaces the ready file and the grpc.health.v1 check."""
    with contextlib.suppress(FileNotFoundError):
        ready_file.unlink()
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        popen = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=detach,  # survives the `devnet up` that started it
            cwd=os.getcwd(),
        )
    deadline = time.monotonic() + timeout
    return Starting(
        name, role, rollup, argv, data_dir, log, ready_file, popen, timeout, deadline, health, probe
    )


def poll_started(s: Starting) -> Launched | None:
    """The process once its ready file names its endpoint and (unless health=False)
    it answers SERVING, or once its probe gives its info; None while it is still
    starting. When it exited, or is not up by its deadline, it is stopped and
    LaunchError says so."""
    if s.popen.poll() is not None:
        raise LaunchError(f"{s.name} exited with code {s.popen.returncode} at start; see {s.log}")
    info = s.probe(s) if s.probe is not None else _read_ready_file(s.ready_file)
    if info is None:
        if time.monotonic() < s.deadline:
            return None
    elif (
        s.probe is not None
        or not s.health
        or wait_healthy(info["endpoint"], max(0.5, s.deadline - time.monotonic()))
    ):
        endpoint = info["endpoint"]
        argv = pin_metrics_listen(pin_listen(s.argv, endpoint), info)
        return Launched(
            s.name, s.role, s.rollup, s.popen.pid, endpoint, s.data_dir, s.log, argv, s.popen, info
        )
    stop_pid(s.popen.pid, popen=s.popen)
    raise LaunchError(f"{s.name} did not become healthy within {s.timeout}s; see {s.log}")


def _read_ready_file(path: Path) -> dict[str, Any] | None:
    """The ready file's contents once it names an endpoint (it may be half written)."""
    try:
        info: dict[str, Any] = json.loads(path.read_text())
    except (ValueError, OSError):
        return None
    return info if isinstance(info, dict) and "endpoint" in info else None


def pin_listen(argv: list[str], endpoint: str) -> list[str]:
    """argv with the value of --listen replaced by the endpoint actually bound."""
    out = list(argv)
    for i, arg in enumerate(out[:-1]):
        if arg == "--listen":
            out[i + 1] = endpoint
    return out


def pin_metrics_listen(argv: list[str], info: dict[str, Any]) -> list[str]:
    """argv with the value of --metrics-listen replaced by the HOST:PORT of the
    metrics URL in the ready file's `info` (when it has one)."""
    url = info.get("metrics")
    if not url:
        return list(argv)
    bound = urlsplit(url).netloc
    out = list(argv)
    for i, arg in enumerate(out[:-1]):
        if arg == "--metrics-listen":
            out[i + 1] = bound
    return out


def check_health(endpoint: str, timeout: float = 1.0) -> bool:
    """True when the server at `endpoint` answers SERVING on grpc.health.v1."""
    try:
        with grpc.insecure_channel(endpoint) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            r = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
            return bool(r.status == health_pb2.HealthCheckResponse.SERVING)
    except grpc.RpcError:
        return False


def wait_healthy(endpoint: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check_health(endpoint, timeout=min(1.0, max(0.1, deadline - time.monotonic()))):
            return True
        time.sleep(0.05)
    return False


def is_alive(pid: int, argv_hint: list[str] | None = None) -> bool:
    """True when `pid` runs and (given argv_hint) is the process we started, not a
    recycled pid: its command line must contain the hint's module arguments."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, PermissionError, IndexError):
        return False
    if state == "Z":
        return False
    if argv_hint:
        want = [a.encode() for a in argv_hint[1:4]]
        return cmdline[1:4] == want
    return True


def stop_pid(
    pid: int,
    grace: float = 10.0,
    popen: subprocess.Popen[bytes] | None = None,
    argv_hint: list[str] | None = None,
    sig: int = signal.SIGTERM,
) -> bool:
    """Stop our process `pid`: `sig` (SIGTERM), then SIGKILL after `grace`
    seconds. Returns True when it is gone."""
    if popen is None and not is_alive(pid, argv_hint):
        return True
    if popen is not None and popen.poll() is not None:
        return True  # already reaped: its pid may belong to another process now
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if popen is not None:
            if popen.poll() is not None:
                return True
        elif not is_alive(pid):
            return True
        time.sleep(0.02)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    if popen is not None:
        popen.wait(timeout=10)
        return True
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and is_alive(pid):
        time.sleep(0.02)
    return not is_alive(pid)


def kill_pid(pid: int, popen: subprocess.Popen[bytes] | None = None) -> None:
    """SIGKILL our process and reap it when we are its parent."""
    if popen is not None and popen.poll() is not None:
        return  # already reaped: its pid may belong to another process now
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    if popen is not None:
        popen.wait(timeout=10)


def node_argv(
    rollup: str,
    sequencer: str,
    listen: str,
    data_dir: Path,
    ready_file: Path,
    genesis: Path | None,
    metrics_listen: str | None = METRICS_ANY_PORT,
    retain_blocks: int | None = None,
) -> list[str]:
    """A node's command line; metrics_listen None: no metrics; retain_blocks None:
    the node's default retention."""
    argv = [sys.executable, "-m", "rollup_node", "--rollup", rollup, "--sequencer", sequencer]
    argv += ["--listen", listen, "--data-dir", str(data_dir), "--ready-file", str(ready_file)]
    if genesis is not None:
        argv += ["--genesis", str(genesis)]
    return argv + _retain_args(retain_blocks) + _metrics_args(metrics_listen)


def proxy_argv(
    target: str,
    routes: dict[str, str],
    faults: Path,
    ready_file: Path,
    metrics_listen: str | None = METRICS_ANY_PORT,
    devnet_dir: Path | None = None,
    route_targets: dict[str, str] | None = None,
) -> list[str]:
    """The proxy's command line: `routes` {NAME: LISTEN} to `target` (the sequencer
    or its replicas, "A,B,C"), except those in `route_targets` {NAME: TARGET}
    (HOST:PORT), plain TCP to their own target (--route NAME=LISTEN=TARGET);
    metrics_listen None: no metrics; devnet_dir: the devnet whose prune floor it
    keeps (devnet/retention.py), None: none."""
    targets = route_targets or {}
    if unknown := sorted(set(targets) - set(routes)):
        raise ValueError(f"route_targets names routes that are not in routes: {unknown}")
    argv = [sys.executable, "-m", "devnet.proxy", "--target", target, "--faults", str(faults)]
    for name, listen in routes.items():
        own = f"={targets[name]}" if name in targets else ""
        argv += ["--route", f"{name}={listen}{own}"]
    if devnet_dir is not None:
        argv += ["--devnet-dir", str(devnet_dir)]
    return [*argv, "--ready-file", str(ready_file), *_metrics_args(metrics_listen)]


def process_state(pid: int) -> str:
    """'running', 'paused' (SIGSTOP) or 'dead'."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "dead"
    if state == "Z":
        return "dead"
    return "paused" if state in ("T", "t") else "running"

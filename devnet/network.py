"""A whole devnet in one directory: the sequencer and one node per rollup (plus
replicas), started as background OS processes, recorded in devnet.json, and
stopped by pid. The `devnet` command and the tests share this."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import signal
import sys
from pathlib import Path
from typing import Any

from devnet import launcher, proxy
from devnet.manifest import GENESIS, Manifest, ProcessRecord, load_manifest, save_manifest
from xrollup.errors import InvalidInput, Refused
from xrollup.genesis import (
    Genesis,
    decode_genesis,
    dev_genesis,
    encode_genesis,
    validate_dev_keys,
)

ANY_PORT = "127.0.0.1:0"
PROXY = "proxy"
EXPLORER = "explorer"
FAULTS = "faults.json"


def is_running(rec: ProcessRecord) -> bool:
    return rec.pid > 0 and launcher.is_alive(rec.pid, rec.argv)


def running_processes(manifest: Manifest | None) -> list[ProcessRecord]:
    return [p for p in manifest.processes if is_running(p)] if manifest else []


def ensure_genesis(data_dir: Path, wanted: Genesis | None = None) -> tuple[Path, Genesis]:
    """The devnet's genesis file, written on first up from `wanted` (else the
    embedded default). An existing one must equal `wanted` when given (Refused:
    wipe the devnet first). Either must name the dev keys devnet up starts the
    processes with (InvalidInput, xrollup.genesis.validate_dev_keys)."""
    path = data_dir / GENESIS
    if not path.exists():
        genesis = wanted or dev_genesis()
        validate_dev_keys(genesis)
        path.write_text(encode_genesis(genesis))
        return path, genesis
    try:
        genesis = decode_genesis(path.read_text())
    except InvalidInput as e:
        raise InvalidInput(f"{path}: {e}") from None
    if wanted is not None and wanted != genesis:
        raise Refused(_describe_other_genesis(data_dir, genesis, wanted))
    validate_dev_keys(genesis)
    return path, genesis


def _describe_other_genesis(data_dir: Path, have: Genesis, wanted: Genesis) -> str:
    differ = [
        f.name
        for f in dataclasses.fields(Genesis)
        if getattr(have, f.name) != getattr(wanted, f.name)
    ]
    return (
        f"the devnet in {data_dir} has another genesis (chain {have.chain_id}, rollups"
        f" {', '.join(have.rollup_names)}; it differs in {', '.join(differ)}):"
        f" `devnet down --wipe --data-dir {data_dir}` first, or use another --data-dir"
    )


def node_names(genesis: Genesis, replicas: bool) -> list[tuple[str, str]]:
    """(process name, rollup) for every node: alpha, beta, then alpha-replica, ..."""
    names = [(r, r) for r in genesis.rollup_names]
    if replicas:
        names += [(f"{r}-replica", r) for r in genesis.rollup_names]
    return names


def _start(
    name: str,
    role: str,
    rollup: str | None,
    argv_for: launcher.ArgvFor,
    listen: str,
    data_dir: Path,
    timeout: float,
) -> launcher.Launched:
    """Start one process, on its previous port when it had one and it is free."""
    ready = data_dir / f"{name}.ready"
    log = data_dir / "logs" / f"{name}.log"
    proc_dir = data_dir / name
    try:
        return launcher.start_process(
            name, role, rollup, argv_for(listen, proc_dir, ready), proc_dir, log, ready, timeout
        )
    except launcher.LaunchError:
        if listen == ANY_PORT:
            raise
        return launcher.start_process(
            name, role, rollup, argv_for(ANY_PORT, proc_dir, ready), proc_dir, log, ready, timeout
        )


def _start_proxy(
    data_dir: Path, target: str, names: list[str], previous: Manifest | None, timeout: float
) -> launcher.Launched:
    """The fault proxy: one route per node to the sequencer, on the same ports as
    the previous run of this devnet when it had them."""
    old = previous.get(PROXY) if previous else None
    old_routes = dict(parse_routes(old.argv)) if old else {}
    faults = data_dir / FAULTS
    if not faults.exists():
        save_faults(data_dir, {})
    ready = data_dir / f"{PROXY}.ready"
    log = data_dir / "logs" / f"{PROXY}.log"

    def start(routes: dict[str, str]) -> launcher.Launched:
        argv = launcher.proxy_argv(target, routes, faults, ready)
        p = launcher.start_process(
            PROXY, PROXY, None, argv, data_dir, log, ready, timeout, health=False
        )
        argv = launcher.proxy_argv(target, p.info["routes"], faults, ready)
        p.argv = launcher.pin_metrics_listen(argv, p.info)
        return p

    wanted = {n: old_routes.get(n, ANY_PORT) for n in names}
    try:
        return start(wanted)
    except launcher.LaunchError:
        if all(v == ANY_PORT for v in wanted.values()):
            raise
        return start({n: ANY_PORT for n in names})


def parse_routes(argv: list[str]) -> list[tuple[str, str]]:
    out = []
    for i, arg in enumerate(argv[:-1]):
        if arg == "--route":
            name, _, listen = argv[i + 1].partition("=")
            out.append((name, listen))
    return out


def load_faults(data_dir: Path) -> dict[str, dict[str, Any]]:
    """The proxy's fault state (its format lives in devnet/proxy.py)."""
    return proxy.read_faults(data_dir / FAULTS)


def save_faults(data_dir: Path, routes: dict[str, dict[str, Any]]) -> None:
    proxy.write_faults(data_dir / FAULTS, routes)


def _node_argv(
    rollup: str, sequencer: str, genesis: Path, listen: str, data_dir: Path, ready: Path
) -> list[str]:
    return launcher.node_argv(rollup, sequencer, listen, data_dir, ready, genesis)


def _start_explorer(
    data_dir: Path, sequencer: str, listen: str, timeout: float
) -> launcher.Launched:
    """The web explorer (devnet/explorer): no gRPC health; its ready file gives
    its endpoint and URL. It reads the rest of the devnet from devnet.json."""
    ready = data_dir / f"{EXPLORER}.ready"
    log = data_dir / "logs" / f"{EXPLORER}.log"

    def start(listen: str) -> launcher.Launched:
        argv = [sys.executable, "-m", "devnet.explorer", "--data-dir", str(data_dir)]
        argv += ["--sequencer", sequencer, "--listen", listen, "--ready-file", str(ready)]
        return launcher.start_process(
            EXPLORER, EXPLORER, None, argv, data_dir, log, ready, timeout, health=False
        )

    try:
        return start(listen)
    except launcher.LaunchError:
        if listen == ANY_PORT:
            raise
        return start(ANY_PORT)


def start_devnet(
    data_dir: Path,
    replicas: bool = False,
    block_interval_ms: int | None = None,
    timeout: float = 30.0,
    explorer: bool = True,
    genesis: Genesis | None = None,
) -> Manifest:
    """Start the sequencer and the nodes (and, unless explorer=False, the web
    explorer), wait until each is healthy, write devnet.json. On any failure, stop
    what was started and raise LaunchError. `genesis`: see ensure_genesis."""
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    genesis_path, genesis = ensure_genesis(data_dir, genesis)
    previous = load_manifest(data_dir)

    def old_listen(name: str) -> str:
        rec = previous.get(name) if previous else None
        return rec.endpoint if rec else ANY_PORT

    started: list[launcher.Launched] = []
    names = node_names(genesis, replicas)
    try:
        seq = _start(
            "sequencer",
            "sequencer",
            None,
            lambda listen, d, ready: launcher.sequencer_argv(
                listen, d, ready, genesis_path, block_interval_ms
            ),
            old_listen("sequencer"),
            data_dir,
            timeout,
        )
        started.append(seq)
        proxy = _start_proxy(data_dir, seq.endpoint, [n for n, _ in names], previous, timeout)
        started.append(proxy)
        routes: dict[str, str] = proxy.info["routes"]
        for name, rollup in names:
            started.append(
                _start(
                    name,
                    "node",
                    rollup,
                    functools.partial(_node_argv, rollup, routes[name], genesis_path),
                    old_listen(name),
                    data_dir,
                    timeout,
                )
            )
        if explorer:
            started.append(_start_explorer(data_dir, seq.endpoint, old_listen(EXPLORER), timeout))
    except BaseException:
        for proc in reversed(started):
            launcher.stop_pid(proc.pid, grace=5.0, argv_hint=proc.argv)
        raise
    manifest = Manifest(
        str(data_dir),
        genesis.chain_id,
        str(genesis_path),
        [ProcessRecord.from_launched(p) for p in started],
    )
    save_manifest(data_dir, manifest)
    return manifest


def stop_devnet(data_dir: Path, grace: float = 10.0) -> list[str]:
    """Stop every running process of the devnet by pid, nodes first. devnet.json
    keeps each process with pid 0 so the next `up` reuses its port."""
    data_dir = data_dir.resolve()
    manifest = load_manifest(data_dir)
    if manifest is None:
        return []
    stopped = []
    for rec in reversed(manifest.processes):
        if is_running(rec):
            if launcher.process_state(rec.pid) == "paused":
                os.kill(rec.pid, signal.SIGCONT)  # a stopped process cannot handle SIGTERM
            launcher.stop_pid(rec.pid, grace=grace, argv_hint=rec.argv)
            stopped.append(rec.name)
        with contextlib.suppress(FileNotFoundError):
            (data_dir / f"{rec.name}.ready").unlink()
    kept = [
        ProcessRecord(p.name, p.role, p.rollup, 0, p.endpoint, p.data_dir, p.log, p.argv)
        for p in manifest.processes
    ]
    save_manifest(data_dir, Manifest(manifest.data_dir, manifest.chain_id, manifest.genesis, kept))
    return stopped

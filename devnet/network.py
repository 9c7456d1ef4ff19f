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
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devnet import launcher
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


@dataclass
class _Start:
    """One process of the devnet to start: its argv on its previous ports, and the
    argv on any port to start it again with when those are taken (None: it had no
    previous port)."""

    name: str
    role: str
    rollup: str | None
    proc_dir: Path
    argv: list[str]
    argv_any_port: list[str] | None
    health: bool = True


def _on_ports(
    name: str,
    role: str,
    rollup: str | None,
    proc_dir: Path,
    listen: str,
    argv_for: Callable[[str], list[str]],
    health: bool = True,
) -> _Start:
    """A process listening on one port: `listen` (its previous one), else any."""
    retry = argv_for(ANY_PORT) if listen != ANY_PORT else None
    return _Start(name, role, rollup, proc_dir, argv_for(listen), retry, health)


class _Starter:
    """The devnet's processes starting side by side: spawn() one, wait() until some
    are up while watching every one (a failure anywhere raises at once), stop() all
    of them. One that fails on its previous ports starts again once on any port:
    another program may hold them now."""

    def __init__(self, data_dir: Path, timeout: float) -> None:
        self.data_dir = data_dir
        self.timeout = timeout
        self.starting: dict[str, tuple[_Start, launcher.Starting]] = {}
        self.up: dict[str, launcher.Launched] = {}
        self.spawned: list[launcher.Starting] = []  # every attempt, in order

    def spawn(self, start: _Start, any_port: bool = False) -> None:
        argv = start.argv_any_port if any_port else start.argv
        assert argv is not None
        s = launcher.spawn_process(
            start.name,
            start.role,
            start.rollup,
            argv,
            start.proc_dir,
            self.data_dir / "logs" / f"{start.name}.log",
            _ready_file(self.data_dir, start.name),
            self.timeout,
            health=start.health,
        )
        self.starting[start.name] = (start, s)
        self.spawned.append(s)
        if any_port:
            start.argv_any_port = None  # once

    def wait(self, names: list[str]) -> list[launcher.Launched]:
        while True:
            for name, (start, s) in list(self.starting.items()):
                try:
                    launched = launcher.poll_started(s)
                except launcher.LaunchError:
                    if start.argv_any_port is None:
                        raise
                    self.spawn(start, any_port=True)
                    continue
                if launched is not None:
                    del self.starting[name]
                    self.up[name] = launched
            if all(n in self.up for n in names):
                return [self.up[n] for n in names]
            time.sleep(launcher.POLL_S)

    def stop(self) -> None:
        """Stop every process spawned, the last first (nodes before the sequencer)."""
        for s in reversed(self.spawned):
            launcher.stop_pid(s.popen.pid, grace=5.0, popen=s.popen)


def _ready_file(data_dir: Path, name: str) -> Path:
    return data_dir / f"{name}.ready"


def _proxy_start(
    data_dir: Path, target: str, names: list[str], previous: Manifest | None
) -> _Start:
    """The fault proxy: one route per node to the sequencer, on the same ports as
    the previous run of this devnet when it had them. Its fault file is written by
    the first fault (the proxy reads none as no faults)."""
    old = previous.get(PROXY) if previous else None
    old_routes = dict(parse_routes(old.argv)) if old else {}
    faults = data_dir / FAULTS
    ready = _ready_file(data_dir, PROXY)
    wanted = {n: old_routes.get(n, ANY_PORT) for n in names}
    any_port = {n: ANY_PORT for n in names}
    return _Start(
        PROXY,
        PROXY,
        None,
        data_dir,
        launcher.proxy_argv(target, wanted, faults, ready),
        None if wanted == any_port else launcher.proxy_argv(target, any_port, faults, ready),
        health=False,
    )


def _pin_routes(p: launcher.Launched, data_dir: Path, target: str) -> launcher.Launched:
    """The proxy's argv with every route on the port it bound, so a restart reuses it."""
    argv = launcher.proxy_argv(
        target, p.info["routes"], data_dir / FAULTS, _ready_file(data_dir, PROXY)
    )
    p.argv = launcher.pin_metrics_listen(argv, p.info)
    return p


def parse_routes(argv: list[str]) -> list[tuple[str, str]]:
    out = []
    for i, arg in enumerate(argv[:-1]):
        if arg == "--route":
            name, _, listen = argv[i + 1].partition("=")
            out.append((name, listen))
    return out


def load_faults(data_dir: Path) -> dict[str, dict[str, Any]]:
    """The proxy's fault state (its format lives in devnet/proxy.py)."""
    from devnet import proxy  # here: its server (relay, metrics) would slow every command

    return proxy.read_faults(data_dir / FAULTS)


def save_faults(data_dir: Path, routes: dict[str, dict[str, Any]]) -> None:
    from devnet import proxy  # as in load_faults

    proxy.write_faults(data_dir / FAULTS, routes)


def _explorer_argv(data_dir: Path, sequencer: str, listen: str) -> list[str]:
    """The web explorer (devnet/explorer): no gRPC health; its ready file gives
    its endpoint and URL. It reads the rest of the devnet from devnet.json."""
    ready = _ready_file(data_dir, EXPLORER)
    argv = [sys.executable, "-m", "devnet.explorer", "--data-dir", str(data_dir)]
    return [*argv, "--sequencer", sequencer, "--listen", listen, "--ready-file", str(ready)]


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

    names = node_names(genesis, replicas)
    starter = _Starter(data_dir, timeout)
    try:
        starter.spawn(
            _on_ports(
                "sequencer",
                "sequencer",
                None,
                data_dir / "sequencer",
                old_listen("sequencer"),
                lambda listen: launcher.sequencer_argv(
                    listen,
                    data_dir / "sequencer",
                    _ready_file(data_dir, "sequencer"),
                    genesis_path,
                    block_interval_ms,
                ),
            )
        )
        [seq] = starter.wait(["sequencer"])
        # Once the sequencer is up, the rest start side by side: the proxy and the
        # explorer at once, the nodes as soon as the proxy has bound their routes.
        starter.spawn(_proxy_start(data_dir, seq.endpoint, [n for n, _ in names], previous))
        if explorer:
            starter.spawn(
                _on_ports(
                    EXPLORER,
                    EXPLORER,
                    None,
                    data_dir,
                    old_listen(EXPLORER),
                    functools.partial(_explorer_argv, data_dir, seq.endpoint),
                    health=False,
                )
            )
        [proxy] = starter.wait([PROXY])
        _pin_routes(proxy, data_dir, seq.endpoint)
        routes: dict[str, str] = proxy.info["routes"]
        for name, rollup in names:
            node_dir = data_dir / name
            argv_for = functools.partial(
                launcher.node_argv,
                rollup,
                routes[name],
                data_dir=node_dir,
                ready_file=_ready_file(data_dir, name),
                genesis=genesis_path,
            )
            starter.spawn(_on_ports(name, "node", rollup, node_dir, old_listen(name), argv_for))
        order = ["sequencer", PROXY, *(n for n, _ in names)] + ([EXPLORER] if explorer else [])
        started = starter.wait(order)
    except BaseException:
        starter.stop()
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

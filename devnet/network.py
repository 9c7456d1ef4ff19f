"""A whole devnet in one directory: the sequencer and one node per rollup (plus
replicas), started as background OS processes, recorded in devnet.json, and
stopped by pid. The `devnet` command and the tests share this."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import signal
import socket
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from devnet import etcd, launcher, starter
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
SEQUENCER = "sequencer"
# devnet up --ha: three sequencer replicas on an etcd cluster (sequencer/ha.py); the
# first keeps the single sequencer's name, so everything that reads "sequencer"
# from devnet.json finds one of them.
REPLICAS = (SEQUENCER, "sequencer-2", "sequencer-3")
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


def _ready_file(data_dir: Path, name: str) -> Path:
    return data_dir / f"{name}.ready"


def _log_file(data_dir: Path, name: str) -> Path:
    return data_dir / "logs" / f"{name}.log"


def free_address() -> str:
    """A loopback HOST:PORT free right now, for a process to listen on (if another
    program takes it first, the process starts again on any port)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


def _starts(
    data_dir: Path,
    genesis_path: Path,
    names: list[tuple[str, str]],
    previous: Manifest | None,
    block_interval_ms: int | None,
    explorer: bool,
    retain_blocks: int | None = None,
    ha: bool = False,
    chain_id: str = "",
    sequencer_args: tuple[str, ...] = (),
) -> list[starter.Start]:
    """Every process of the devnet, in devnet.json's order, on last time's ports.
    The sequencer and the proxy's routes, which others connect to, get ports chosen
    now when they had none, so that the proxy can start beside the sequencer; the
    nodes and the explorer start once what they stream from is up."""

    def old(name: str) -> str | None:
        rec = previous.get(name) if previous else None
        return rec.endpoint if rec else None

    def own(listen: str, any_port: bool) -> str:
        return ANY_PORT if any_port else listen

    seqs = REPLICAS if ha else (SEQUENCER,)
    seq_listens = {n: old(n) or free_address() for n in seqs}
    old_proxy = previous.get(PROXY) if previous else None
    old_routes = dict(parse_routes(old_proxy.argv)) if old_proxy else {}
    routes = {n: old_routes.get(n) or free_address() for n, _ in names}
    # HA: each replica reaches each etcd member through a route of its own, so that a
    # fault can cut one replica off etcd while it serves clients.
    links = {
        etcd_route(r, m): (m, old_routes.get(etcd_route(r, m)) or free_address())
        for r in (seqs if ha else ())
        for m in etcd.MEMBERS
    }
    faults = data_dir / FAULTS  # written by the first fault: the proxy reads none as no faults
    out = etcd.etcd_starts(data_dir, chain_id, previous) if ha else []
    out += [
        _sequencer_start(
            data_dir,
            n,
            seq_listens[n],
            genesis_path,
            block_interval_ms,
            retain_blocks,
            ha,
            sequencer_args,
        )
        for n in seqs
    ]
    out.append(
        starter.Start(
            PROXY,
            PROXY,
            None,
            data_dir,
            _log_file(data_dir, PROXY),
            _ready_file(data_dir, PROXY),
            argv_for=lambda known, any_port: launcher.proxy_argv(
                ",".join(known[n] for n in seqs),
                {
                    **{n: own(listen, any_port) for n, listen in routes.items()},
                    **{n: own(listen, any_port) for n, (_m, listen) in links.items()},
                },
                faults,
                _ready_file(data_dir, PROXY),
                devnet_dir=data_dir,
                route_targets={n: known[m] for n, (m, _listen) in links.items()} or None,
            ),
            needs=(*seqs, *(etcd.MEMBERS if ha else ())),
            offers={
                **{f"route {n}": listen for n, listen in routes.items()},
                **{f"route {n}": listen for n, (_m, listen) in links.items()},
            },
            offered=lambda p: {f"route {n}": listen for n, listen in p.info["routes"].items()},
            movable=True,
            health=False,
        )
    )
    for name, rollup in names:
        node_dir, listen = data_dir / name, old(name) or ANY_PORT
        argv_for = functools.partial(
            _node_argv, rollup, name, listen, node_dir, genesis_path, retain_blocks
        )
        out.append(
            starter.Start(
                name,
                "node",
                rollup,
                node_dir,
                _log_file(data_dir, name),
                _ready_file(data_dir, name),
                argv_for=argv_for,
                needs=(f"route {name}",),
                after=(*seqs, PROXY),
                movable=listen != ANY_PORT,
            )
        )
    if explorer:
        explorer_listen = old(EXPLORER) or ANY_PORT
        out.append(
            starter.Start(
                EXPLORER,
                EXPLORER,
                None,
                data_dir,
                _log_file(data_dir, EXPLORER),
                _ready_file(data_dir, EXPLORER),
                argv_for=lambda known, any_port: _explorer_argv(
                    data_dir, ",".join(known[n] for n in seqs), own(explorer_listen, any_port)
                ),
                needs=seqs,
                after=seqs,
                movable=explorer_listen != ANY_PORT,
                health=False,
            )
        )
    return out


def _sequencer_start(
    data_dir: Path,
    name: str,
    listen: str,
    genesis_path: Path,
    block_interval_ms: int | None,
    retain_blocks: int | None,
    ha: bool,
    extra: tuple[str, ...] = (),
) -> starter.Start:
    """The sequencer, or (ha) one replica of it on the devnet's etcd cluster."""
    seq_dir = data_dir / name
    ready = _ready_file(data_dir, name)
    members = etcd.MEMBERS if ha else ()

    def argv_for(known: Mapping[str, str], any_port: bool) -> list[str]:
        argv = launcher.sequencer_argv(
            ANY_PORT if any_port else listen,
            seq_dir,
            ready,
            genesis_path,
            block_interval_ms,
            retain_blocks=retain_blocks,
        )
        if ha:
            links = ",".join(known[f"route {etcd_route(name, m)}"] for m in members)
            argv += ["--etcd", links, "--replica-name", name]
        return [*argv, *extra]

    return starter.Start(
        name,
        SEQUENCER,
        None,
        seq_dir,
        _log_file(data_dir, name),
        ready,
        argv_for=argv_for,
        needs=tuple(f"route {etcd_route(name, m)}" for m in members),
        offers={name: listen},
        offered=lambda p: {p.name: p.endpoint},
        movable=True,
    )


def is_ha(manifest: Manifest | None) -> bool:
    """Whether the devnet runs an HA sequencer (devnet up --ha): it has etcd members."""
    return manifest is not None and any(p.role == etcd.ROLE for p in manifest.processes)


def sequencer_endpoints(manifest: Manifest) -> str:
    """Every sequencer replica's endpoint as one list "A,B,C" (xrollup.client.Client
    takes it); one endpoint without HA."""
    return ",".join(p.endpoint for p in manifest.processes if p.role == SEQUENCER)


def _node_argv(
    rollup: str,
    name: str,
    listen: str,
    node_dir: Path,
    genesis: Path,
    retain_blocks: int | None,
    known: Mapping[str, str],
    any_port: bool,
) -> list[str]:
    ready = _ready_file(node_dir.parent, name)
    sequencer = known[f"route {name}"]  # its route through the proxy
    listen = ANY_PORT if any_port else listen
    return launcher.node_argv(
        rollup, sequencer, listen, node_dir, ready, genesis, retain_blocks=retain_blocks
    )


def _pin_routes(p: launcher.Launched, data_dir: Path, target: str) -> launcher.Launched:
    """The proxy's argv with every route on the port it bound, so a restart reuses it."""
    argv = launcher.proxy_argv(
        target,
        p.info["routes"],
        data_dir / FAULTS,
        _ready_file(data_dir, PROXY),
        devnet_dir=data_dir,
        route_targets=p.info.get("targets") or None,
    )
    p.argv = launcher.pin_metrics_listen(argv, p.info)
    return p


def parse_routes(argv: list[str]) -> list[tuple[str, str]]:
    """(name, listen) of every --route NAME=LISTEN[=TARGET] in the proxy's argv."""
    out = []
    for i, arg in enumerate(argv[:-1]):
        if arg == "--route":
            name, _, rest = argv[i + 1].partition("=")
            out.append((name, rest.partition("=")[0]))
    return out


def parse_route_targets(argv: list[str]) -> dict[str, str]:
    """{name: target} of the routes with their own target (NAME=LISTEN=TARGET)."""
    out = {}
    for i, arg in enumerate(argv[:-1]):
        if arg == "--route":
            name, _, rest = argv[i + 1].partition("=")
            target = rest.partition("=")[2]
            if target:
                out[name] = target
    return out


def etcd_route(replica: str, member: str) -> str:
    """The proxy route an HA sequencer replica reaches etcd member `member` by
    (partition or delay it to cut the replica off etcd: devnet partition REPLICA)."""
    return f"{replica}.{member}"


def etcd_routes(manifest: Manifest | None, replica: str) -> list[str]:
    """The proxy routes of `replica`'s links to etcd; [] without HA."""
    if not is_ha(manifest):
        return []
    return [etcd_route(replica, m) for m in etcd.MEMBERS]


def load_faults(data_dir: Path) -> dict[str, dict[str, Any]]:
    """The proxy's fault state (its format lives in devnet/proxy.py)."""
    from devnet import proxy  # here: its server (relay, metrics) would slow every command

    return proxy.read_faults(data_dir / FAULTS)


def save_faults(data_dir: Path, routes: dict[str, dict[str, Any]]) -> None:
    from devnet import proxy  # as in load_faults

    rec = load_manifest(data_dir)
    rec_proxy = rec.get(PROXY) if rec else None
    targets = parse_route_targets(rec_proxy.argv) if rec_proxy else {}
    proxy.write_faults(data_dir / FAULTS, routes, targets)


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
    retain_blocks: int | None = None,
    ha: bool = False,
    sequencer_args: Sequence[str] = (),
) -> Manifest:
    """Start the sequencer and the nodes (and, unless explorer=False, the web
    explorer), wait until each is healthy, write devnet.json. On any failure, stop
    what was started and raise LaunchError. `genesis`: see ensure_genesis.
    `retain_blocks`: the sequencer's and every node's --retain-blocks (None: their
    default, 0: keep everything); the proxy keeps the sequencer's prune floor.
    `ha`: an etcd cluster and three sequencer replicas (sequencer/ha.py); a devnet
    once started with it keeps it. `sequencer_args`: more arguments for every
    sequencer process (tests: --unsafe-no-lease-check)."""
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    genesis_path, genesis = ensure_genesis(data_dir, genesis)
    previous = load_manifest(data_dir)
    ha = ha or is_ha(previous)
    if ha and not etcd.is_installed():
        raise launcher.LaunchError(
            f"devnet up --ha needs etcd ({etcd.ETCD}): `make system-deps` installs it"
        )

    names = node_names(genesis, replicas)
    starts = _starts(
        data_dir,
        genesis_path,
        names,
        previous,
        block_interval_ms,
        explorer,
        retain_blocks,
        ha,
        genesis.chain_id,
        tuple(sequencer_args),
    )
    started = starter.start_all(starts, timeout)
    by_name = {p.name: p for p in started}
    _pin_routes(
        by_name[PROXY],
        data_dir,
        ",".join(p.endpoint for p in started if p.role == SEQUENCER),
    )
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

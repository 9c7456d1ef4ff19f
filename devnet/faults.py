"""Fault injection on a running devnet, as a Python API the `devnet` command and
the fault suite share: kill (SIGKILL), pause / resume (SIGSTOP / SIGCONT),
restart (same data directory, same port), and, through the proxy between every
node and the sequencer, partition, delay, byzantine (a tampered block stream:
devnet/tamper.py) and heal, which lifts all three. Every process is addressed
by its name in devnet.json and signalled by its own pid."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devnet import etcd, ha, launcher, network, tamper
from devnet.manifest import (
    Manifest,
    ProcessRecord,
    load_manifest,
    locked_manifest,
    save_manifest,
)
from xrollup.errors import InvalidInput, NotFound
from xrollup.genesis import load_genesis


def _manifest(data_dir: Path) -> Manifest:
    m = load_manifest(data_dir.resolve())
    if m is None:
        raise NotFound(f"no devnet in {data_dir}")
    return m


def resolve_name(data_dir: Path, name: str) -> str:
    """`leader` or `standby`: the HA sequencer replica that has that role now
    (devnet/ha.py), so that a fault can target it; any other name as it is."""
    if name not in ha.ROLE_NAMES:
        return name
    return ha.resolve_replica(_manifest(data_dir), name)


def get_process(data_dir: Path, name: str) -> ProcessRecord:
    m = _manifest(data_dir)
    rec = m.get(resolve_name(data_dir, name))
    if rec is None:
        known = ", ".join(p.name for p in m.processes)
        raise NotFound(f"no process {name!r} in this devnet (processes: {known})")
    return rec


def _require_alive(rec: ProcessRecord) -> None:
    if not network.is_running(rec):
        raise InvalidInput(f"{rec.name} is not running (`devnet restart {rec.name}` starts it)")


def kill(data_dir: Path, name: str, timeout: float = 10.0) -> int:
    """SIGKILL the process; returns its pid once it is gone."""
    rec = get_process(data_dir, name)
    _require_alive(rec)
    os.kill(rec.pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while launcher.is_alive(rec.pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    return rec.pid


def pause(data_dir: Path, name: str) -> int:
    rec = get_process(data_dir, name)
    _require_alive(rec)
    os.kill(rec.pid, signal.SIGSTOP)
    return rec.pid


def resume(data_dir: Path, name: str) -> int:
    rec = get_process(data_dir, name)
    _require_alive(rec)
    os.kill(rec.pid, signal.SIGCONT)
    return rec.pid


def restart(data_dir: Path, name: str, timeout: float = 30.0) -> ProcessRecord:
    """Stop the process if it runs (resuming it first if paused), start it again
    with the same command line (same data directory, same port), wait until
    healthy and record the new pid in devnet.json."""
    data_dir = data_dir.resolve()
    rec = get_process(data_dir, name)
    if network.is_running(rec):
        if launcher.process_state(rec.pid) == "paused":
            os.kill(rec.pid, signal.SIGCONT)
        launcher.stop_pid(rec.pid, grace=10.0, argv_hint=rec.argv)
    ready = data_dir / f"{name}.ready"
    proc = launcher.start_process(
        rec.name,
        rec.role,
        rec.rollup,
        rec.argv,
        Path(rec.data_dir),
        Path(rec.log),
        ready,
        timeout,
        health=rec.role not in (network.PROXY, network.EXPLORER),
        probe=etcd.probe_member if rec.role == etcd.ROLE else None,
    )
    if rec.role == network.PROXY:
        proc.argv = rec.argv
    new = ProcessRecord.from_launched(proc)
    with locked_manifest(data_dir):
        m = _manifest(data_dir)  # again: another restart may have saved meanwhile
        m.processes = [new if p.name == name else p for p in m.processes]
        save_manifest(data_dir, m)
    return new


def _routes(data_dir: Path, name: str) -> list[str]:
    """The proxy routes a link fault on `name` acts on: a node's link to the
    sequencer; an HA sequencer replica's links to the etcd members."""
    rec = get_process(data_dir, name)
    if rec.role == "node":
        return [rec.name]
    links = network.etcd_routes(_manifest(data_dir), rec.name) if rec.role == "sequencer" else []
    if links:
        return links
    raise InvalidInput(
        f"{name} is a {rec.role}; partition, delay and byzantine act on a node's link"
        " to the sequencer (and, with --ha, partition and delay on a sequencer replica's"
        " links to etcd)"
    )


def _route(data_dir: Path, name: str) -> None:
    _routes(data_dir, name)


def partition(data_dir: Path, name: str) -> None:
    """Cut the node off from the sequencer (its connections close, new ones fail);
    an HA sequencer replica: cut it off from every etcd member (it serves clients
    still)."""
    _set_route(data_dir, name, partitioned=True)


def heal(data_dir: Path, name: str) -> dict[str, Any]:
    """Lift partition, delay and byzantine mode from the node's link (a replica's
    links to etcd); returns what was in force ({} when nothing was)."""
    data_dir = data_dir.resolve()
    routes = network.load_faults(data_dir)
    was: dict[str, Any] = {}
    for route in _routes(data_dir, name):
        was |= {k: v for k, v in routes.get(route, {}).items() if v}
    _set_route(data_dir, name, partitioned=False, delay_ms=0, byzantine=None)
    return was


def delay(data_dir: Path, name: str, ms: int) -> None:
    """Hold every chunk between the node and the sequencer for `ms` milliseconds."""
    if not 0 <= ms <= 60_000:
        raise InvalidInput(f"delay must be within 0..60000 ms, got {ms}")
    _set_route(data_dir, name, delay_ms=ms)


def byzantine(data_dir: Path, name: str, mode: str) -> None:
    """Feed the node a byzantine block stream (devnet/tamper.py MODES: corrupt,
    forge-block, forge-decision, equivocate) until `heal`. The node must refuse
    it (GetNodeStatus.refusal); under equivocate it keeps the evidence and stops
    following until restarted."""
    data_dir = data_dir.resolve()
    tamper.check_mode(mode)
    _route(data_dir, name)
    tamper.require_signing_key(load_genesis(Path(_manifest(data_dir).genesis)), mode)
    _set_route(data_dir, name, byzantine=mode)


def _set_route(data_dir: Path, name: str, **changes: Any) -> None:
    data_dir = data_dir.resolve()
    routes = network.load_faults(data_dir)
    for route in _routes(data_dir, name):
        state = {
            "partitioned": False,
            "delay_ms": 0,
            "byzantine": None,
            **routes.get(route, {}),
            **changes,
        }
        if not any(state.values()):
            routes.pop(route, None)
        else:
            routes[route] = state
    network.save_faults(data_dir, routes)


@dataclass(frozen=True)
class FaultRow:
    name: str
    role: str
    pid: int | None
    state: str  # running | paused | dead
    partitioned: bool
    delay_ms: int
    byzantine: str | None  # a devnet.tamper mode on its link, or None

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def list_faults(data_dir: Path) -> list[FaultRow]:
    """Every process with what is in force on it."""
    data_dir = data_dir.resolve()
    m = _manifest(data_dir)
    routes = network.load_faults(data_dir)
    rows = []
    for p in m.processes:
        state = launcher.process_state(p.pid) if network.is_running(p) else "dead"
        links = network.etcd_routes(m, p.name) if p.role == "sequencer" else []
        # A replica's links to etcd count as its link: cut if any is, the longest delay.
        r = routes.get(p.name, {})
        if links:
            states = [routes.get(x, {}) for x in links]
            r = {
                "partitioned": any(x.get("partitioned") for x in states),
                "delay_ms": max(int(x.get("delay_ms", 0)) for x in states),
            }
        rows.append(
            FaultRow(
                p.name,
                p.role,
                p.pid if state != "dead" else None,
                state,
                bool(r.get("partitioned", False)),
                int(r.get("delay_ms", 0)),
                r.get("byzantine") or None,
            )
        )
    return rows


def heal_all(data_dir: Path) -> None:
    """Resume every paused process and clear every partition, delay and byzantine mode."""
    for row in list_faults(data_dir):
        if row.state == "paused" and row.pid:
            os.kill(row.pid, signal.SIGCONT)
    network.save_faults(data_dir.resolve(), {})

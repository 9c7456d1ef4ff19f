"""start_devnet starts the proxy, the explorer and the nodes side by side once the
sequencer is up: a process that fails at start stops every one started and names
itself and its log; a restart puts every process on its previous ports, and one
whose port another program holds now moves alone."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from devnet import launcher, network
from devnet.manifest import MANIFEST, Manifest, ProcessRecord

ORDER = ["sequencer", "proxy", "alpha", "beta", "explorer"]


def get(manifest: Manifest, name: str) -> ProcessRecord:
    rec = manifest.get(name)
    assert rec is not None, name
    return rec


def ports(manifest: Manifest) -> dict[str, str]:
    """Every address a process serves on: endpoints and proxy routes (metrics move:
    devnet up gives each process a metrics port anew)."""
    out = {p.name: p.endpoint for p in manifest.processes}
    out |= {f"route {n}": a for n, a in network.parse_routes(get(manifest, "proxy").argv)}
    return out


def test_a_node_failing_at_start_stops_everything_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """beta's command line is broken (an unknown flag: argparse exits 2) while alpha,
    the proxy and the explorer are starting beside it."""
    spawned: list[launcher.Starting] = []
    spawn = launcher.spawn_process
    node_argv = launcher.node_argv

    def recording_spawn(*args: object, **kwargs: object) -> launcher.Starting:
        s = spawn(*args, **kwargs)  # type: ignore[arg-type]
        spawned.append(s)
        return s

    def broken_for_beta(rollup: str, *args: object, **kwargs: object) -> list[str]:
        argv = node_argv(rollup, *args, **kwargs)  # type: ignore[arg-type]
        return [*argv, "--no-such-flag"] if rollup == "beta" else argv

    monkeypatch.setattr(launcher, "spawn_process", recording_spawn)
    monkeypatch.setattr(launcher, "node_argv", broken_for_beta)
    d = tmp_path / "dn"

    with pytest.raises(launcher.LaunchError) as e:
        network.start_devnet(d, timeout=60.0)

    log = d / "logs" / "beta.log"
    assert str(e.value) == f"beta exited with code 2 at start; see {log}"
    assert "--no-such-flag" in log.read_text()
    assert {s.name for s in spawned} == set(ORDER)
    for s in spawned:
        assert s.popen.returncode is not None, f"{s.name} (pid {s.popen.pid}) still runs"
        assert not launcher.is_alive(s.popen.pid, s.argv)
    assert not (d / MANIFEST).exists()


def test_restart_reuses_every_port_and_a_taken_one_moves_alone(tmp_path: Path) -> None:
    d = tmp_path / "dn"
    first = network.start_devnet(d, timeout=60.0)
    try:
        assert [p.name for p in first.processes] == ORDER
        assert all(launcher.is_alive(p.pid, p.argv) for p in first.processes)
    finally:
        network.stop_devnet(d)
    second = network.start_devnet(d, timeout=60.0)
    try:
        assert [p.name for p in second.processes] == ORDER
        assert ports(second) == ports(first)
    finally:
        network.stop_devnet(d)

    host, _, port = get(first, "alpha").endpoint.rpartition(":")
    with socket.socket() as squatter:
        squatter.bind((host, int(port)))
        squatter.listen()
        third = network.start_devnet(d, timeout=60.0)
    try:
        moved = {k for k, v in ports(third).items() if ports(first)[k] != v}
        assert moved == {"alpha"}
        assert launcher.check_health(get(third, "alpha").endpoint)
    finally:
        network.stop_devnet(d)

"""start_devnet starts the sequencer and the proxy at once, then the nodes and the
explorer: a process that fails at start stops every one started and names itself
and its log; a restart puts every process on its previous ports; a process whose
port another program holds now starts again on any port, and those that connect
to it start again with its new address."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import pytest

from devnet import launcher, network
from devnet.manifest import MANIFEST, Manifest, ProcessRecord
from devnet.status import node_status

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


def test_restart_reuses_every_port(tmp_path: Path) -> None:
    d = tmp_path / "dn"
    first = network.start_devnet(d, timeout=60.0)
    try:
        assert [p.name for p in first.processes] == ORDER
        assert all(launcher.is_alive(p.pid, p.argv) for p in first.processes)
        # The nodes and the explorer start once what they stream from is up: none
        # of them found it missing ("block stream ... failed: UNAVAILABLE").
        assert all(h > 0 for h in node_heights(first).values())
        for p in first.processes:
            assert " WARNING " not in Path(p.log).read_text(), Path(p.log).read_text()
    finally:
        network.stop_devnet(d)
    second = network.start_devnet(d, timeout=60.0)
    try:
        assert [p.name for p in second.processes] == ORDER
        assert ports(second) == ports(first)
        assert all(h > 0 for h in node_heights(second).values())
    finally:
        network.stop_devnet(d)


@pytest.mark.parametrize(
    ("held", "moved"),
    [
        ("alpha", {"alpha"}),  # nobody connects to a node at start: it moves alone
        ("sequencer", {"sequencer"}),  # the proxy and the explorer start again with its address
        # The proxy moves every route (its endpoint is its first); the nodes follow.
        ("route alpha", {"proxy", "route alpha", "route beta"}),
    ],
)
def test_a_taken_port_moves_its_process_and_who_connects_to_it_follows(
    tmp_path: Path, held: str, moved: set[str]
) -> None:
    d = tmp_path / "dn"
    first = network.start_devnet(d, timeout=60.0)
    network.stop_devnet(d)
    host, _, port = ports(first)[held].rpartition(":")
    with socket.socket() as squatter:
        squatter.bind((host, int(port)))
        squatter.listen()
        second = network.start_devnet(d, timeout=60.0)
    try:
        now = ports(second)
        assert {k for k, v in now.items() if ports(first)[k] != v} == moved
        seq = get(second, "sequencer").endpoint
        assert flag(get(second, "proxy").argv, "--target") == seq
        assert flag(get(second, "explorer").argv, "--sequencer") == seq
        for node in ("alpha", "beta"):
            assert flag(get(second, node).argv, "--sequencer") == now[f"route {node}"]
        assert all(h > 0 for h in node_heights(second).values())  # they follow the chain
    finally:
        network.stop_devnet(d)


def flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def node_heights(manifest: Manifest, timeout: float = 20.0) -> dict[str, int]:
    """Each node's applied height once every one has applied a block (or the timeout)."""
    nodes = [p for p in manifest.processes if p.role == "node"]
    deadline = time.monotonic() + timeout
    while True:
        heights = {p.name: asyncio.run(node_status(p.endpoint))["height"] or 0 for p in nodes}
        if all(heights.values()) or time.monotonic() > deadline:
            return heights
        time.sleep(0.1)

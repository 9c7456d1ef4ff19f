"""The etcd members' command lines (devnet/etcd.py), without running etcd: every
flag the HA devnet relies on, fresh ports on a first start, last time's ports
from devnet.json on the next, a client port that may move and a peer port that
may not."""

from __future__ import annotations

from pathlib import Path

import pytest

from devnet import etcd, launcher, starter
from devnet.manifest import Manifest, ProcessRecord


def _flags(argv: list[str]) -> dict[str, str]:
    """--flag value and --flag=value pairs of a command line."""
    out = {}
    for i, arg in enumerate(argv):
        if arg.startswith("--"):
            name, eq, value = arg.partition("=")
            out[name] = value if eq else argv[i + 1]
    return out


def _argvs(starts: list[starter.Start], any_port: bool = False) -> list[list[str]]:
    return [s.argv_for({}, any_port) for s in starts]


def _manifest(d: Path, starts: list[starter.Start]) -> Manifest:
    """devnet.json as start_devnet would record the members, stopped (pid 0)."""
    records = [
        ProcessRecord(s.name, s.role, None, 0, s.offers[s.name], str(s.proc_dir), str(s.log), a)
        for s, a in zip(starts, _argvs(starts), strict=True)
    ]
    return Manifest(str(d), "chain", str(d / "genesis.json"), records)


def test_first_start_gives_every_member_its_flags_and_ports_of_its_own(tmp_path: Path) -> None:
    starts = etcd.etcd_starts(tmp_path, "chain", None)

    assert [s.name for s in starts] == ["etcd-1", "etcd-2", "etcd-3"]
    flags = [_flags(a) for a in _argvs(starts)]
    clients = [f["--listen-client-urls"] for f in flags]
    peers = [f["--listen-peer-urls"] for f in flags]
    assert len(set(clients + peers)) == 6
    assert all(u.startswith("http://127.0.0.1:") for u in clients + peers)
    cluster = ",".join(f"etcd-{n}={p}" for n, p in zip((1, 2, 3), peers, strict=True))
    for n, (s, f, argv) in enumerate(zip(starts, flags, _argvs(starts), strict=True), start=1):
        assert argv[:5] == [etcd.ETCD, "--data-dir", str(tmp_path / f"etcd-{n}"), "--name", s.name]
        assert f["--advertise-client-urls"] == f["--listen-client-urls"]
        assert f["--initial-advertise-peer-urls"] == f["--listen-peer-urls"]
        assert f["--initial-cluster"] == cluster
        assert f["--initial-cluster-state"] == "new"
        assert f["--initial-cluster-token"] == etcd.compute_cluster_token("chain", tmp_path)
        assert f["--heartbeat-interval"] == "50" and f["--election-timeout"] == "500"
        assert f["--pre-vote"] == "true"
        assert f["--max-request-bytes"] == str(8 * 1024 * 1024)
        assert f["--quota-backend-bytes"] == str(1024**3)
        assert f["--snapshot-count"] == "10000"
        assert f["--logger"] == "zap" and f["--log-outputs"] == "stderr"
        assert s.offers == {s.name: f["--listen-client-urls"].removeprefix("http://")}
        assert (s.role, s.rollup, s.proc_dir) == ("etcd", None, tmp_path / s.name)
        assert s.log == tmp_path / "logs" / f"{s.name}.log"
        # A member is only healthy once a quorum runs: none may wait for another.
        assert (s.needs, s.after) == ((), ())
        assert s.probe is etcd.probe_member and s.movable


def test_the_next_start_reuses_last_times_ports(tmp_path: Path) -> None:
    first = etcd.etcd_starts(tmp_path, "chain", None)
    previous = _manifest(tmp_path, first)

    again = etcd.etcd_starts(tmp_path, "chain", previous)

    assert _argvs(again) == _argvs(first)
    assert etcd.client_endpoints(previous) == [s.offers[s.name] for s in first]


def test_a_moved_member_changes_its_client_port_only(tmp_path: Path) -> None:
    starts = etcd.etcd_starts(tmp_path, "chain", None)
    before, moved = _flags(_argvs(starts)[0]), _flags(_argvs(starts, any_port=True)[0])

    assert moved["--listen-client-urls"] != before["--listen-client-urls"]
    assert moved["--advertise-client-urls"] == moved["--listen-client-urls"]
    for peer_flag in ("--listen-peer-urls", "--initial-advertise-peer-urls", "--initial-cluster"):
        assert moved[peer_flag] == before[peer_flag]


def test_a_member_directory_without_its_record_is_refused(tmp_path: Path) -> None:
    """Its peer address is part of the cluster's membership: new ports would leave
    the cluster unable to form, so the start says so instead of timing out."""
    (tmp_path / "etcd-2" / "member").mkdir(parents=True)

    with pytest.raises(launcher.LaunchError, match="etcd-2 holds an etcd member"):
        etcd.etcd_starts(tmp_path, "chain", None)


def test_client_endpoints_follow_member_order_and_skip_other_processes(tmp_path: Path) -> None:
    def rec(name: str, endpoint: str) -> ProcessRecord:
        return ProcessRecord(name, "etcd", None, 0, endpoint, "", "")

    names = ("sequencer", "etcd-3", "etcd-1", "etcd-2")
    ports = (1, 13, 11, 12)
    m = Manifest(
        str(tmp_path),
        "chain",
        "",
        [rec(n, f"127.0.0.1:{p}") for n, p in zip(names, ports, strict=True)],
    )

    assert etcd.client_endpoints(m) == ["127.0.0.1:11", "127.0.0.1:12", "127.0.0.1:13"]
    assert etcd.client_endpoints(Manifest(str(tmp_path), "chain", "", [])) == []

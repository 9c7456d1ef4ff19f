"""The HA devnet's etcd cluster as real processes (devnet/etcd.py): three members
on loopback ports started side by side by the starter, recorded in devnet.json,
killed and restarted through devnet.faults, stopped by pid by stop_devnet.

- every member serves writes and reads, a 2 MiB value (a block) included;
- with one member killed the other two still write (retried: see _write); with two
  killed a write fails within its client timeout (no quorum);
- the first member, restarted on its data directory with its old command line,
  rejoins: writes succeed again and it holds what was written while it was down.

Needs /usr/bin/etcd (Debian's etcd-server; `make system-deps` installs it)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from etcd3gw.exceptions import Etcd3Exception

from devnet import etcd, faults, launcher, network, starter
from devnet.manifest import Manifest, ProcessRecord, load_manifest, save_manifest

CHAIN = "xrollup-etcd-test"
MiB = 1024 * 1024

pytestmark = [
    pytest.mark.skipif(
        not etcd.is_installed(),
        reason=f"etcd is not installed ({etcd.ETCD}; `make system-deps` installs the Debian"
        " package etcd-server)",
    ),
    pytest.mark.timeout(90),
]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[Path, Manifest]]:
    """The three members started in a devnet folder of their own, recorded in its
    devnet.json; every member stopped by pid at the end, whatever happened."""
    d = tmp_path / "dn"
    d.mkdir()
    t0 = time.monotonic()
    started = starter.start_all(etcd.etcd_starts(d, CHAIN, None), timeout=30.0)
    print(f"three etcd members healthy in {time.monotonic() - t0:.2f}s")
    manifest = Manifest(str(d), CHAIN, "", [ProcessRecord.from_launched(p) for p in started])
    save_manifest(d, manifest)
    try:
        yield d, manifest
    finally:
        t0 = time.monotonic()
        stopped = network.stop_devnet(d, grace=5.0)
        print(f"stop_devnet stopped {stopped} in {time.monotonic() - t0:.2f}s")
        for p in started:  # reaps our children; a no-op for those stop_devnet stopped
            launcher.stop_pid(p.pid, grace=5.0, popen=p.popen)
        left = [rec.name for rec in network.running_processes(load_manifest(d))]
        assert left == [], f"still running after stop_devnet: {left}"


def _write(endpoint: str, key: str, value: bytes, within: float = 10.0) -> None:
    """Put, retried: a request that a follower forwarded to a leader killed just
    then is lost in flight and answers only at etcd's request timeout (5 s + two
    election timeouts), even once a new leader is elected; a short timeout and a
    retry (a put is idempotent) get through in about one election."""
    t0 = time.monotonic()
    attempts = 0
    while True:
        attempts += 1
        client = etcd.open_client(endpoint, timeout=1.5)
        try:
            client.put(key, value)
            break
        except Etcd3Exception:
            if time.monotonic() - t0 > within:
                raise
        finally:
            client.session.close()
    if attempts > 1:
        print(f"put {key} via {endpoint}: {attempts} attempts, {time.monotonic() - t0:.2f}s")


def _read(endpoint: str, key: str, serializable: bool = False) -> bytes | None:
    """The value, None when absent. serializable: from the member's own copy."""
    client = etcd.open_client(endpoint, 5.0)
    try:
        values = client.get(key, serializable=serializable)
    finally:
        client.session.close()
    return values[0] if values else None


def test_members_start_as_recorded_processes(cluster: tuple[Path, Manifest]) -> None:
    d, manifest = cluster
    endpoints = etcd.client_endpoints(manifest)
    assert [p.name for p in manifest.processes] == list(etcd.MEMBERS)
    assert [p.endpoint for p in manifest.processes] == endpoints
    for rec in manifest.processes:
        assert rec.role == etcd.ROLE and rec.rollup is None
        assert network.is_running(rec), f"{rec.name} (pid {rec.pid}) not recognised"
        assert Path(f"/proc/{rec.pid}/exe").resolve() == Path(etcd.ETCD).resolve()
        assert rec.data_dir == str(d / rec.name) and (d / rec.name / "member").is_dir()
        assert rec.log == str(d / "logs" / f"{rec.name}.log")
        assert rec.metrics == f"http://{rec.endpoint}/metrics"
        assert etcd.check_health(rec.endpoint)

    statuses = [etcd.get_status(e) for e in endpoints]
    assert all(s is not None for s in statuses)
    leaders = {s.leader_id for s in statuses if s}
    assert len(leaders) == 1, f"members disagree on the leader: {statuses}"
    assert sum(s.is_leader for s in statuses if s) == 1
    assert all(s and s.db_size > 0 and s.version.startswith("3.") for s in statuses)


def test_writes_need_a_quorum_and_a_restarted_member_rejoins(
    cluster: tuple[Path, Manifest],
) -> None:
    d, manifest = cluster
    e1, e2, e3 = etcd.client_endpoints(manifest)
    for i, e in enumerate((e1, e2, e3)):
        _write(e, f"k{i}", f"v{i}".encode())
    for e in (e1, e2, e3):
        assert [_read(e, f"k{i}") for i in range(3)] == [b"v0", b"v1", b"v2"]
    block = bytes(range(256)) * (2 * MiB // 256)  # a 2 MiB block in one request
    _write(e2, "block", block)
    assert _read(e3, "block") == block

    old = manifest.get("etcd-1")
    assert old is not None
    faults.kill(d, "etcd-1")  # SIGKILL by pid
    _write(e2, "after-one", b"2")
    _write(e3, "after-one", b"3")
    assert _read(e2, "after-one") == b"3"

    faults.kill(d, "etcd-2")
    client = etcd.open_client(e3, timeout=1.0)
    t0 = time.monotonic()
    with pytest.raises(Etcd3Exception):
        client.put("no-quorum", b"x")  # its outcome is unknown: it may still commit later
    took = time.monotonic() - t0
    assert took < 3.0, f"a write without a quorum took {took:.2f}s to fail"
    client.session.close()
    assert not etcd.check_health(e3, timeout=2.0)

    t0 = time.monotonic()
    rec = faults.restart(d, "etcd-1", timeout=20.0)
    print(f"etcd-1 restarted and healthy in {time.monotonic() - t0:.2f}s")
    assert rec.argv == old.argv and rec.endpoint == e1 and rec.pid != old.pid
    assert network.is_running(rec)
    _write(e1, "after-restart", b"1")
    _write(e3, "after-restart", b"3")
    assert _read(e1, "after-restart") == b"3"
    # etcd-1's own copy (a serializable read answers from it) holds what was written
    # while it was down.
    deadline = time.monotonic() + 5.0
    while _read(e1, "after-one", serializable=True) != b"3" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _read(e1, "after-one", serializable=True) == b"3"
    assert _read(e1, "block", serializable=True) == block

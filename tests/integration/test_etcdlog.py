"""The HA sequencer's log on a real three-member etcd cluster (sequencer/etcdlog.py),
without sequencer processes: the election's term is the leader key's create
revision; an append is fenced by it (a superseded term's append is refused and
writes nothing, a taken height is refused); an append sent again after it had
committed (a timed-out request retried on another member) is a success, not a
fence; trimming is fenced too and keeps what is above the cut.

Needs /usr/bin/etcd (Debian's etcd-server; `make system-deps` installs it)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from devnet import etcd, launcher, network, starter
from devnet.manifest import Manifest, ProcessRecord, save_manifest
from sequencer.etcdlog import EtcdLog
from xrollup.endpoints import split_endpoint

CHAIN = "xrollup-etcdlog-test"

pytestmark = [
    pytest.mark.skipif(not etcd.is_installed(), reason=f"etcd is not installed ({etcd.ETCD})"),
    pytest.mark.timeout(90),
]


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdLog]:
    d = tmp_path_factory.mktemp("etcdlog")
    started = starter.start_all(etcd.etcd_starts(d, CHAIN, None), timeout=30.0)
    manifest = Manifest(str(d), CHAIN, "", [ProcessRecord.from_launched(p) for p in started])
    save_manifest(d, manifest)
    try:
        yield EtcdLog([split_endpoint(p.endpoint) for p in started], CHAIN, 2.0)
    finally:
        network.stop_devnet(d, grace=5.0)
        for p in started:
            launcher.stop_pid(p.pid, grace=5.0, popen=p.popen)


def _lead(log: EtcdLog, name: str, ttl: int = 2) -> tuple[int, int]:
    """Campaign with a fresh lease until elected (the previous leader's key may
    still be expiring): (lease, term)."""
    lease = log.grant_lease(ttl)
    deadline = time.monotonic() + 10
    while (won := log.campaign(name, f"{name}:1", lease)) is None:
        assert time.monotonic() < deadline, "no election"
        time.sleep(0.1)
    return lease, won.term


def test_a_superseded_leaders_append_is_refused_and_writes_nothing(log: EtcdLog) -> None:
    lease_a, term_a = _lead(log, "a")
    assert log.leader() is not None and log.leader().term == term_a  # type: ignore[union-attr]
    assert log.append(term_a, 1, b"block-1-a", b"h1a".ljust(32, b"\0"))
    # a's lease lapses (a paused process renews nothing); b is elected with a higher term.
    log.revoke(lease_a)
    lease_b, term_b = _lead(log, "b")
    assert term_b > term_a
    assert log.append(term_b, 2, b"block-2-b", b"h2b".ljust(32, b"\0"))
    # a, resumed, believes it leads and appends the next height: etcd refuses it.
    assert not log.append(term_a, 3, b"block-3-a", b"h3a".ljust(32, b"\0"))
    assert [raw for _, raw in log.read(1)] == [b"block-1-a", b"block-2-b"]
    assert log.head() == (2, b"h2b".ljust(32, b"\0"))
    # A taken height is refused even to the leader (never an overwrite).
    assert not log.append(term_b, 2, b"other", b"h2x".ljust(32, b"\0"))
    # The same block sent again (a request that timed out but had committed): a success.
    assert log.append(term_b, 2, b"block-2-b", b"h2b".ljust(32, b"\0"))
    log.resign(term_b)
    log.revoke(lease_b)


def test_trim_is_fenced_and_keeps_what_is_above_the_cut(log: EtcdLog) -> None:
    lease, term = _lead(log, "c")
    head, _ = log.head()
    for h in range(head + 1, head + 11):
        assert log.append(term, h, f"b{h}".encode(), bytes(32))
    assert log.trim(term - 1, head + 5) == 0  # a superseded term trims nothing
    assert log.first_height() == 1
    assert log.trim(term, head + 5) > 0
    assert log.first_height() == head + 5
    assert [h for h, _ in log.read(1)] == list(range(head + 5, head + 11))
    log.report("c", head + 10)
    assert log.replicas()["c"] == head + 10
    log.resign(term)
    log.revoke(lease)

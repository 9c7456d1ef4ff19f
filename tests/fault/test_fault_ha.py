"""The HA sequencer's fault rows (issue 12; `make faults`, marked slow): FULL_RUNS
seeded runs of every fault kind in faultsupport.HA_KINDS, each kind on its own
`devnet up --ha` devnet (three etcd members, three sequencer replicas, nodes with
replicas) reused across its runs: kill the leader, pause it past its lease and
resume it, cut it off etcd (it serves clients still) and heal it, kill a standby,
kill one etcd member, kill two (no ordering, no violation, ordering again once one
returns). Every run, as in test_fault_full.py:
a journalled load, the fault, recovery, and every invariant check with the run's
journal (no acknowledged submission lost, no fork: every node's applied header is
the log's, the replicas' copies agree, terms never go down, I1-I4). The table adds
the failover time (the fault to the first new block acknowledged), p50 and max.

    XR_FAULT_RUNS=3 pytest -m slow tests/fault/test_fault_ha.py -k kill-leader"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from faultsupport import HA_KINDS, FaultNet, RunRecord, run_series

from devnet import etcd

FULL_RUNS = int(os.environ.get("XR_FAULT_RUNS", "20"))


@pytest.mark.slow
@pytest.mark.skipif(not etcd.is_installed(), reason="etcd is not installed")
@pytest.mark.timeout(60 * 25)
@pytest.mark.parametrize("fault", list(HA_KINDS))
def test_ha_fault_runs(
    fault: str, tmp_path: Path, seed: int, fault_records: list[RunRecord]
) -> None:
    net = FaultNet(tmp_path / "devnet", ha=True)
    try:
        net.start()
        records = run_series(net, HA_KINDS[fault], seed, FULL_RUNS, "full", fault_records)
    finally:
        net.stop()
    failed = [r for r in records if r.violations or r.recovery_s is None]
    assert not failed, "\n".join(
        f"run {r.run} seed {r.seed}: {'; '.join(r.violations) or 'no recovery'}" for r in failed
    )
    assert all(r.failover_s is not None for r in records), "a run measured no failover"

"""The full fault suite (`make faults`, marked slow): FULL_RUNS seeded runs of
every fault kind in faultsupport.KINDS, each kind on its own devnet (with
replicas) reused across its runs. Every run: a short journalled load, the
fault at a seeded instant, the fault lifted, the network live again within
faultsupport.RECOVERY_BOUND_S (measured: the recovery time), and every
invariant check passing, durability against the run's journal included. The
session ends with the table (fault, runs, violations, recovery p50 and max,
seeds), also written to .devnet-faults/report.json.

    XR_SEED=<seed> make faults          replays every kind's runs from that seed
    XR_FAULT_RUNS=3 pytest -m slow tests/fault -k kill-storm   fewer runs"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from faultsupport import KINDS, FaultNet, RunRecord, run_series

FULL_RUNS = int(os.environ.get("XR_FAULT_RUNS", "20"))


@pytest.mark.slow
@pytest.mark.timeout(60 * 20)
@pytest.mark.parametrize("fault", list(KINDS))
def test_fault_runs(fault: str, tmp_path: Path, seed: int, fault_records: list[RunRecord]) -> None:
    net = FaultNet(tmp_path / "devnet")
    try:
        net.start()
        records = run_series(net, KINDS[fault], seed, FULL_RUNS, "full", fault_records)
    finally:
        net.stop()
    failed = [r for r in records if r.violations or r.recovery_s is None]
    assert not failed, "\n".join(
        f"run {r.run} seed {r.seed}: {'; '.join(r.violations) or 'no recovery'}" for r in failed
    )

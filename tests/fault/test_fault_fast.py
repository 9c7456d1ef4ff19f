"""The fault suite's fast subset, in the default `make test`: one seeded run of
a few faults under load, on one devnet (with replicas) shared by the module.
Each run: load, the fault at a seeded instant, the fault lifted, the network
live again within faultsupport.RECOVERY_BOUND_S, and every invariant check
passing (durability against the run's load journal). The full suite, 20 runs
of every fault, is test_fault_full.py (`make faults`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from faultsupport import KINDS, FaultNet, RunRecord, run_series

FAST = (
    "kill-sequencer",
    "kill-node",
    "pause-deadline",
    "partition",
    "kill-in-decision",
    "kill-storm",
    # Byzantine links (I7): the validly signed lie, and equivocation last (its
    # evidence stays in the node's store; later runs on this devnet expect it).
    "forge-decision",
    "equivocate",
)


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultNet]:
    net = FaultNet(tmp_path_factory.mktemp("faults") / "devnet")
    try:
        net.start()
        yield net
    finally:
        net.stop()


@pytest.mark.timeout(240)
@pytest.mark.parametrize("fault", FAST)
def test_fault(fault: str, net: FaultNet, seed: int, fault_records: list[RunRecord]) -> None:
    [record] = run_series(net, KINDS[fault], seed, 1, "fast", fault_records)
    assert not record.violations, "\n".join(record.violations)
    assert record.recovery_s is not None

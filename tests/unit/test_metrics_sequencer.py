"""The sequencer's metrics as its runtime updates them: a real Sequencer over a
LevelDB store in a temporary directory, blocks sealed by hand (no sealer task),
read back through the process's own registry. And the admission counters by
outcome and status code, for single submissions and a batch."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sequencer.core import admission
from sequencer.metrics import BUNDLE, TX, SequencerMetrics
from sequencer.runtime import Sealable, Sequencer
from sequencer.store import LevelDBBlockStore
from xrollup import codec
from xrollup.client import build_transfer
from xrollup.errors import BadSignature, LimitExceeded
from xrollup.genesis import dev_genesis
from xrollup.keys import derive_dev_account, derive_sequencer_key

GENESIS = dev_genesis()


def _sequencer(tmp_path: Path) -> tuple[Sequencer, SequencerMetrics, LevelDBBlockStore]:
    store = LevelDBBlockStore(tmp_path / "seq")
    seq = Sequencer(GENESIS, store, derive_sequencer_key())
    metrics = SequencerMetrics(seq)
    seq.metrics = metrics
    return seq, metrics, store


def test_sealed_blocks_update_height_sizes_pool_and_ack_latency(tmp_path: Path) -> None:
    seq, metrics, store = _sequencer(tmp_path)
    sample = metrics.registry.get_sample_value
    alice, bob = derive_dev_account(0), derive_dev_account(1)
    msgs = [build_transfer(alice, "alpha", bob.address, "USDC", 1 + i, 100) for i in range(5)]
    sizes: list[int] = []

    async def run() -> None:
        waiting = []
        for msg in msgs:
            tx = admission.admit_tx(msg, GENESIS, seq.next_height)
            entry = Sealable(codec.encode_canonical_tx(msg), ("alpha",))
            sizes.append(entry.entry.ByteSize())
            waiting.append(asyncio.create_task(seq.enqueue(entry, tx.id, 100)))
        await asyncio.sleep(0.01)  # every submission is in the pool, waiting
        assert sample("xrollup_sequencer_pool_entries", {"lane": "user"}) == 5
        assert sample("xrollup_sequencer_pool_entries", {"lane": "protocol"}) == 0
        assert sample("xrollup_sequencer_ack_latency_seconds_count") == 0
        await seq.seal_block()
        acks = await asyncio.gather(*waiting)
        assert {a.height for a in acks} == {1}
        await asyncio.sleep(0.005)
        await seq.seal_block()  # an empty block: the interval between the two is observed
        await seq.stop()

    try:
        assert sample("xrollup_sequencer_head_height") == 0
        asyncio.run(run())
    finally:
        store.close()

    assert sample("xrollup_sequencer_head_height") == 2
    assert sample("xrollup_sequencer_pool_entries", {"lane": "user"}) == 0
    assert sample("xrollup_sequencer_block_size_entries_count") == 2
    assert sample("xrollup_sequencer_block_size_entries_sum") == 5
    assert sample("xrollup_sequencer_block_size_entries_bucket", {"le": "0.0"}) == 1
    assert sample("xrollup_sequencer_block_size_entries_bucket", {"le": "5.0"}) == 2
    assert sample("xrollup_sequencer_block_size_bytes_sum") == sum(sizes)
    assert sample("xrollup_sequencer_ack_latency_seconds_count") == 5
    latency = sample("xrollup_sequencer_ack_latency_seconds_sum")
    assert latency is not None and 0 < latency < 5 * 10.0
    assert sample("xrollup_sequencer_block_interval_seconds_count") == 1
    interval = sample("xrollup_sequencer_block_interval_seconds_sum")
    assert interval is not None and interval >= 0.005
    assert sample("xrollup_sequencer_stream_subscribers") == 0
    assert sample("xrollup_sequencer_undecided_bundles") == 0
    # A single sequencer leads for good, with term 0 and nothing fenced (HA: sequencer/ha.py).
    assert sample("xrollup_sequencer_leading") == 1
    assert sample("xrollup_sequencer_term") == 0
    assert sample("xrollup_sequencer_fenced_appends_total") == 0
    seq.follow()
    seq.term, seq.fenced_appends = 7, 1
    assert sample("xrollup_sequencer_leading") == 0
    assert sample("xrollup_sequencer_term") == 7
    assert sample("xrollup_sequencer_fenced_appends_total") == 1


def test_admissions_are_counted_by_kind_outcome_and_code(tmp_path: Path) -> None:
    _seq, metrics, store = _sequencer(tmp_path)
    store.close()

    def admissions(kind: str, outcome: str, code: str) -> float | None:
        labels = {"kind": kind, "outcome": outcome, "code": code}
        return metrics.registry.get_sample_value("xrollup_sequencer_admissions_total", labels)

    metrics.count_accepted(TX)
    metrics.count_refused(TX, BadSignature("signature does not verify"))
    metrics.count_refused(BUNDLE, LimitExceeded("too many legs"))
    metrics.count_refused(BUNDLE, RuntimeError("a bug"))  # answered INTERNAL
    # A batch of 10: two refused RESOURCE_EXHAUSTED (8), one INVALID_ARGUMENT (3).
    metrics.count_batch(10, [8, 3, 8])
    # A batch refused whole counts each of its transactions.
    metrics.count_refused(TX, LimitExceeded("batch too large"), 1001)

    assert admissions(TX, "accepted", "OK") == 1 + 7
    assert admissions(TX, "refused", "UNAUTHENTICATED") == 1
    assert admissions(TX, "refused", "INVALID_ARGUMENT") == 1
    assert admissions(TX, "refused", "RESOURCE_EXHAUSTED") == 2 + 1001
    assert admissions(BUNDLE, "refused", "RESOURCE_EXHAUSTED") == 1
    assert admissions(BUNDLE, "refused", "INTERNAL") == 1
    assert admissions(BUNDLE, "accepted", "OK") == 0

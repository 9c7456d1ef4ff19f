"""A standby takes committed blocks into its copy (Sequencer.ingest, real LevelDB):
in order and linked; a call cancelled while its write is under way still moves
the head with the write (the fault suite's kill-etcd-2 found a standby whose
stream was dropped mid-write: its store was a block ahead of its head, and the
same block taken again stopped the replica), and that block given again is taken
once."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

from sequencer.runtime import Sequencer
from sequencer.store import LevelDBBlockStore
from xrollup.blocks import GENESIS_PARENT
from xrollup.errors import Refused
from xrollup.genesis import compute_genesis_hash, dev_genesis
from xrollup.keys import derive_sequencer_key
from xrollup.v1 import types_pb2 as pb
from xrollup.verify import seal_entries

GENESIS = dev_genesis()
KEY = derive_sequencer_key()


def chain(n: int, term: int = 5) -> list[pb.Block]:
    """n empty blocks sealed as an HA leader of `term` would."""
    out: list[pb.Block] = []
    parent = GENESIS_PARENT
    for height in range(1, n + 1):
        block = seal_entries(
            [],
            [],
            height,
            parent,
            1_000 + height,
            GENESIS.rollup_names,
            compute_genesis_hash(GENESIS),
            KEY,
            term=term,
        )
        out.append(block)
        parent = bytes(block.hash)
    return out


class GatedStore(LevelDBBlockStore):
    """The real store, whose appends wait until the test lets them write, so a
    call can be cancelled exactly while its write is under way."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, sync=False)
        self.writing = threading.Event()
        self.go = threading.Event()
        self.go.set()

    def append(self, block: pb.Block, ids: Sequence[bytes]) -> None:
        self.writing.set()
        assert self.go.wait(10)
        super().append(block, ids)


def test_a_cancelled_ingest_still_moves_the_head_and_the_block_is_taken_once(
    tmp_path: Path,
) -> None:
    store = GatedStore(tmp_path / "copy")
    seq = Sequencer(GENESIS, store, KEY)
    seq.follow()
    b1, b2, b3 = chain(3)

    async def run() -> None:
        await seq.ingest(b1)
        store.go.clear()
        store.writing.clear()
        call = asyncio.create_task(seq.ingest(b2.SerializeToString()))
        await asyncio.to_thread(store.writing.wait, 10)  # the write is under way
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        store.go.set()
        await seq.ingest(b2)  # the stream, restarted, sends it again
        assert (seq.head_height, seq.head_hash) == (2, bytes(b2.hash))
        await seq.ingest(b3)
        with pytest.raises(Refused, match="does not extend"):
            await seq.ingest(b1)
        await seq.stop()

    try:
        asyncio.run(run())
        assert store.head() == (3, bytes(b3.hash))
        assert seq.term == 5
    finally:
        store.close()

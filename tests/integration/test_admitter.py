"""The sequencer's admission worker processes start with the first batch, not
with the sequencer: a sequencer is serving with none running; the first batch
starts them (once, however many batches come at once); when they cannot start,
the batches waiting for them are UNAVAILABLE and later ones are admitted on
threads."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from devnet.launcher import Launched
from sequencer.admitter import Admitter
from xrollup.client import Client, build_transfer
from xrollup.errors import Unavailable
from xrollup.genesis import dev_genesis
from xrollup.keys import derive_dev_account

ALICE, BOB = derive_dev_account(0), derive_dev_account(1)


def children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def raw_transfers(n: int) -> list[bytes]:
    return [
        build_transfer(ALICE, "alpha", BOB.address, "USDC", 1, 100, nonce=i).SerializeToString()
        for i in range(n)
    ]


def test_a_sequencer_starts_its_workers_with_the_first_batch(
    start_sequencer: Callable[..., Launched],
) -> None:
    seq = start_sequencer()
    assert children(seq.pid) == [], "admission workers before any batch"

    async def two_batches_at_once() -> None:
        async with Client(seq.endpoint) as c:
            expiry = await c.expiry()
            txs = [
                build_transfer(ALICE, "alpha", BOB.address, "USDC", 1, expiry, nonce=n)
                for n in range(4)
            ]
            first, second = await asyncio.gather(c.submit_batch(txs[:2]), c.submit_batch(txs[2:]))
            assert all(item.ok for item in first + second), first + second

    asyncio.run(two_batches_at_once())
    assert len(children(seq.pid)) == (os.cpu_count() or 1)  # the default: one per core


def test_workers_that_cannot_start_refuse_the_waiting_batches_then_threads_take_over(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "executable", "/bin/false")  # the workers exit at once

    async def run() -> None:
        admitter = Admitter(dev_genesis(), 2)
        assert admitter.available  # not started yet: the first batch starts it
        try:
            waiting = await asyncio.gather(
                admitter.admit_many(raw_transfers(1), 1),
                admitter.admit_many(raw_transfers(1), 1),
                return_exceptions=True,
            )
            assert [type(e) for e in waiting] == [Unavailable, Unavailable]
            assert not admitter.available  # the service admits on threads from now on
        finally:
            admitter.close()
        assert all(w.proc.returncode is not None for w in admitter._workers)

    asyncio.run(run())

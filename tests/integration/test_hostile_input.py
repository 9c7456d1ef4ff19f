"""Valid but hostile input cannot stall a node (I6): validly signed transfers
padded with ~1.5 MiB of unknown protobuf field each (within the 4 MiB request
limit), sent at once, and submissions repeating one signature eight times. The
padding never reaches the log (entries are re-encoded field by field), the
repeated signatures are refused before any is verified, and an honest transfer
sent afterwards is applied on every node within a few blocks."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import grpc
from grpc import aio

from devnet.manifest import Manifest
from xrollup.client import Client, NodeClient, build_transfer, node_clients
from xrollup.keys import derive_dev_account
from xrollup.v1 import types_pb2 as pb

ALICE, BOB = derive_dev_account(0), derive_dev_account(1)
PAD = 1_500_000  # bytes of unknown field per transfer


def pad(tx: pb.SignedTx, field_number: int = 999) -> pb.SignedTx:
    """The same signed transfer carrying `PAD` bytes of an unknown field."""
    key = (field_number << 3) | 2  # length-delimited
    extra = _varint(key) + _varint(PAD) + b"\x00" * PAD
    padded = pb.SignedTx.FromString(tx.SerializeToString() + extra)
    assert padded.ByteSize() > PAD  # the unknown field travels with it
    return padded


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def repeat_signature(tx: pb.SignedTx, times: int = 8) -> pb.SignedTx:
    return pb.SignedTx(body=tx.body, signatures=[tx.signatures[0]] * times)


def test_padded_and_repeated_signature_submissions_never_stall_a_node(
    start_devnet: Callable[..., Manifest],
) -> None:
    manifest = start_devnet()
    seq = manifest.get("sequencer")
    assert seq is not None
    nodes = {p.name: p.endpoint for p in manifest.processes if p.role == "node"}

    async def run() -> None:
        async with Client(seq.endpoint) as c, node_clients(nodes) as ns:
            expiry = await c.expiry()
            padded = [
                pad(build_transfer(ALICE, r, BOB.address, "USDC", 1, expiry, nonce=n))
                for n, r in enumerate(["alpha", "beta", "alpha"])
            ]
            repeated = [
                repeat_signature(build_transfer(BOB, r, ALICE.address, "USDC", 1, expiry, nonce=n))
                for n, r in enumerate(["alpha", "beta"] * 4)
            ]

            async def refused(tx: pb.SignedTx) -> grpc.StatusCode:
                try:
                    await c.submit_tx(tx)
                except aio.AioRpcError as e:
                    assert "signs more than once" in (e.details() or "")
                    return e.code()
                return grpc.StatusCode.OK

            results = await asyncio.gather(
                *(c.submit_tx(tx) for tx in padded), *(refused(tx) for tx in repeated)
            )
            acks, codes = results[: len(padded)], results[len(padded) :]
            assert all(code == grpc.StatusCode.INVALID_ARGUMENT for code in codes), codes
            for ack in acks:  # ordered, without the padding
                block = await c.get_block(ack.height)
                assert block.ByteSize() < 64 * 1024, f"block {ack.height} carries the padding"
                assert block.entries[ack.index].tx.ByteSize() < 1024

            # The same through a batch (admitted in the worker processes).
            batch = [
                pad(build_transfer(ALICE, "alpha", BOB.address, "USDC", 1, expiry, nonce=10 + n))
                for n in range(2)
            ]
            for item in await c.submit_batch(batch):
                assert item.ok, item.message
                block = await c.get_block(item.height)
                assert block.entries[item.index].tx.ByteSize() < 1024, "padding in the log"

            honest = [
                await c.build_transfer(ALICE, r, BOB.address, "USDC", 2) for r in ("alpha", "beta")
            ]
            sent = [await c.submit_tx(tx) for tx in honest]
            for ack, rollup in zip(sent, ("alpha", "beta"), strict=True):
                for name, n in ns.items():
                    if name.startswith(rollup):
                        # Applied at its height, and the node keeps up with the head
                        # (25 blocks = 0.5 s): not stuck behind the padded block.
                        r = await n.wait_for_receipt(ack.id, timeout=10)
                        assert r.ok and r.height == ack.height
                        head = (await c.status()).height
                        status = await n.status()
                        assert status.applied_height + 25 >= head, (status, head)
                        assert not status.HasField("refusal") and not status.stream_error
            await _no_stall(ns)

    asyncio.run(run())


async def _no_stall(ns: dict[str, NodeClient]) -> None:
    for n in ns.values():
        s = await n.status()
        assert s.lag <= 25, f"{s.rollup} lags {s.lag} blocks"

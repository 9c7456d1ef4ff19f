"""The explorer's follower: the sequencer's block stream (Client.follow: each
block once, in order, resuming after restarts), every block verified against
genesis and the previous block as a node verifies it, then filed in the index."""

from __future__ import annotations

import asyncio
import logging

import grpc
from grpc import aio

from devnet.explorer.index import ChainIndex, verify_summary
from devnet.explorer.sources import Sources
from xrollup.blocks import GENESIS_PARENT

log = logging.getLogger("explorer")
RETRY_S = 1.0


def describe_error(e: BaseException) -> str:
    """One line for a failed call: the gRPC status and details, or the exception."""
    if isinstance(e, aio.AioRpcError):
        return f"{e.code().name}: {e.details()}"
    return f"{type(e).__name__}: {e}"


async def follow_chain(sources: Sources, index: ChainIndex) -> None:
    """Index blocks until cancelled: from the head less the index's capacity on
    the first start (not below the first block the sequencer keeps, whose parent
    link is then taken as it is: retention), from the block after the last indexed
    one after an error, and afresh when the sequencer has pruned past that."""
    while True:
        try:
            client = sources.sequencer()
            parent: bytes | None
            if index.head:
                start, parent = index.head + 1, index.head_hash or GENESIS_PARENT
            else:
                status = await client.status()
                first = max(1, status.first_height)
                start = max(first, status.height - index.max_blocks + 1)
                if start == 1:
                    parent = GENESIS_PARENT
                elif start > first:
                    parent = (await client.get_block(start - 1)).hash
                else:
                    parent = None  # the first block kept: a checkpoint
            async for msg in client.follow(start):
                if parent is None:
                    parent = bytes(msg.header.parent_hash)
                block, ok, note = verify_summary(msg, sources.genesis, sources.genesis_hash, parent)
                if not ok:
                    log.warning("block %d does not verify: %s", block.height, note)
                index.add_block(block, ok, note)
                index.stream_error = ""
                parent = block.hash
        except asyncio.CancelledError:
            raise
        except Exception as e:  # the sequencer down or gone: say so, try again
            if (
                isinstance(e, aio.AioRpcError)
                and e.code() == grpc.StatusCode.FAILED_PRECONDITION
                and "pruned" in (e.details() or "")
            ):
                log.warning("the sequencer pruned past block %d: indexing afresh", index.head + 1)
                index.clear()
            index.stream_error = describe_error(e)
            log.warning("block stream: %s; again in %.0f s", index.stream_error, RETRY_S)
            await asyncio.sleep(RETRY_S)

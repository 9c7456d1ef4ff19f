"""The sequencer's SnapshotService: a copy of its log up to a height, written
into `<data dir>/snapshots/<name>/` on a thread while it keeps sealing. Blocks
never change once sealed, so any height up to the head can be copied; a height
ahead of the head is waited for (at most MAX_AHEAD_BLOCKS ahead)."""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any

from grpc import aio

from sequencer.runtime import Sequencer
from xrollup.errors import LimitExceeded, Unavailable
from xrollup.grpc_status import grpc_method
from xrollup.snapshots import (
    MAX_AHEAD_BLOCKS,
    SnapshotDir,
    validate_snapshot_height,
    validate_snapshot_name,
)
from xrollup.v1 import snapshot_pb2 as snpb
from xrollup.v1 import snapshot_pb2_grpc as snpb_grpc

Context = aio.ServicerContext[Any, Any]
log = logging.getLogger(__name__)


class SequencerSnapshotService(snpb_grpc.SnapshotServiceServicer):
    def __init__(self, sequencer: Sequencer, data_dir: Path) -> None:
        self.seq = sequencer
        self.snapshots = SnapshotDir(data_dir)

    @grpc_method
    async def SaveSnapshot(
        self, request: snpb.SaveSnapshotRequest, context: Context
    ) -> snpb.SaveSnapshotResponse:
        height = request.height
        validate_snapshot_name(request.name)
        validate_snapshot_height(height)
        if height > self.seq.head_height + MAX_AHEAD_BLOCKS:
            raise LimitExceeded(
                f"snapshot height {height} is more than {MAX_AHEAD_BLOCKS} blocks past"
                f" the head {self.seq.head_height}"
            )
        res = self.snapshots.reserve(request.name)
        try:
            if not await self.seq.wait_for_height(height):
                raise Unavailable("sequencer is shutting down")
        except BaseException:
            res.abandon()
            raise
        block_hash, keys = await res.fill_shielded(
            functools.partial(self.seq.store.save_copy, height)
        )
        log.info("snapshot %r of the log up to height %d: %d keys", res.name, height, keys)
        return snpb.SaveSnapshotResponse(
            height=height, block_hash=block_hash, path=str(res.final), keys=keys
        )

"""The sequencer's storage seam: append a block, read from a height, read the
head, find an id. The embedded engine is LevelDB; a replicated log (etcd) can
sit behind the same seam later.

LevelDB keys (all integers big-endian):
    b"B" + height u64          -> encoded Block
    b"I" + id (32 bytes)       -> height u64 + index u32
    b"H"                       -> head height u64 + head hash (32 bytes)
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol

import plyvel

from xrollup.blocks import GENESIS_PARENT
from xrollup.errors import Unavailable
from xrollup.v1 import types_pb2 as pb

_BLOCK = b"B"
_ID = b"I"
_HEAD = b"H"


class BlockStore(Protocol):
    def append(self, block: pb.Block, ids: Sequence[bytes]) -> None:
        """Durably append the block at head + 1 (synced) with its id index."""

    def head(self) -> tuple[int, bytes]:
        """(height, hash) of the last block; (0, zeros) when empty."""

    def get_block(self, height: int) -> bytes | None:
        """The encoded block at `height`, or None."""

    def read_from(self, height: int) -> Iterator[bytes]:
        """Encoded blocks from `height` up to the head at the time of the call."""

    def find(self, entry_id: bytes) -> tuple[int, int] | None:
        """(height, index) of an ordered id, or None."""

    def close(self) -> None: ...


def _height_key(height: int) -> bytes:
    return _BLOCK + struct.pack(">Q", height)


class LevelDBBlockStore:
    """BlockStore on LevelDB. Every append is one synced transactional batch."""

    def __init__(self, path: Path, sync: bool = True) -> None:
        path.mkdir(parents=True, exist_ok=True)
        try:
            # Every submission looks its id up (duplicates get the first result); nearly
            # all are misses, which a bloom filter answers without reading table blocks.
            self._db = plyvel.DB(str(path), create_if_missing=True, bloom_filter_bits=10)
        except plyvel.IOError as e:
            raise Unavailable(
                f"cannot open block store {path}: {e} (is another sequencer using it?)"
            ) from None
        self._sync = sync
        raw = self._db.get(_HEAD)
        if raw is None:
            self._head = (0, GENESIS_PARENT)
        else:
            height = struct.unpack(">Q", raw[:8])[0]
            self._head = (height, raw[8:])
            assert self._db.get(_height_key(height)) is not None, "head block missing from store"

    def append(self, block: pb.Block, ids: Sequence[bytes]) -> None:
        height = block.header.height
        assert height == self._head[0] + 1, f"append {height} after head {self._head[0]}"
        assert block.header.parent_hash == self._head[1], "parent hash does not match head"
        with self._db.write_batch(transaction=True, sync=self._sync) as wb:
            wb.put(_height_key(height), block.SerializeToString())
            for index, entry_id in enumerate(ids):
                wb.put(_ID + entry_id, struct.pack(">QI", height, index))
            wb.put(_HEAD, struct.pack(">Q", height) + block.hash)
        self._head = (height, bytes(block.hash))

    def head(self) -> tuple[int, bytes]:
        return self._head

    def get_block(self, height: int) -> bytes | None:
        if height < 1 or height > self._head[0]:
            return None
        value: bytes | None = self._db.get(_height_key(height))
        return value

    def read_from(self, height: int) -> Iterator[bytes]:
        stop = _height_key(self._head[0] + 1)
        for _key, value in self._db.iterator(start=_height_key(max(1, height)), stop=stop):
            yield value

    def find(self, entry_id: bytes) -> tuple[int, int] | None:
        raw = self._db.get(_ID + entry_id)
        if raw is None:
            return None
        height, index = struct.unpack(">QI", raw)
        return height, index

    def close(self) -> None:
        self._db.close()

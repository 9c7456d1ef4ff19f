"""The sequencer's storage seam: append a block, read from a height, read the
head, find an id. The embedded engine is LevelDB; a replicated log (etcd) can
sit behind the same seam later.

LevelDB keys (all integers big-endian):
    b"B" + height u64          -> encoded Block
    b"I" + id (32 bytes)       -> height u64 + index u32
    b"H"                       -> head height u64 + head hash (32 bytes)

A snapshot (`save_copy`) is a new store of the same keys: the blocks up to its
height, the ids they order, and that block as head.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Protocol

import plyvel

from xrollup.blocks import GENESIS_PARENT
from xrollup.errors import Unavailable
from xrollup.v1 import types_pb2 as pb

_BLOCK = b"B"
_ID = b"I"
_HEAD = b"H"
_COPY_BATCH = 10_000  # keys per write batch when copying a store


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

    def save_copy(self, height: int, path: Path) -> tuple[bytes, int]:
        """Write the log up to `height` (<= head) as a new store at `path`, while
        appends go on: (hash of block `height`, keys written)."""

    def close(self) -> None: ...


def _height_key(height: int) -> bytes:
    return _BLOCK + struct.pack(">Q", height)


def _write_all(db: plyvel.DB, items: Iterable[tuple[bytes, bytes]]) -> int:
    """Put every item into a new store, in batches; how many. (The copy is written
    under a temporary name and renamed when whole, so batches need not be atomic.)"""
    n = 0
    wb = db.write_batch()
    for key, value in items:
        wb.put(key, value)
        n += 1
        if n % _COPY_BATCH == 0:
            wb.write()
            wb = db.write_batch()
    wb.write()
    return n


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

    def save_copy(self, height: int, path: Path) -> tuple[bytes, int]:
        # Blocks never change once appended, so a LevelDB snapshot taken any time
        # after `height` holds blocks 1..height as they will always be; the copy's id
        # index keeps the ids ordered up to `height`, and its head is block `height`.
        assert 1 <= height <= self._head[0], f"copy at {height} past head {self._head[0]}"
        snap = self._db.snapshot()
        try:
            raw = snap.get(_height_key(height))
            assert raw is not None, f"block {height} missing from store"
            block_hash = bytes(pb.Block.FromString(raw).hash)
            blocks = snap.iterator(start=_height_key(1), stop=_height_key(height + 1))
            ids = (
                (k, v)
                for k, v in snap.iterator(prefix=_ID)
                if struct.unpack(">Q", v[:8])[0] <= height
            )
            head = [(_HEAD, struct.pack(">Q", height) + block_hash)]
            out = plyvel.DB(
                str(path), create_if_missing=True, error_if_exists=True, bloom_filter_bits=10
            )
            try:
                keys = _write_all(out, itertools.chain(blocks, ids, head))
            finally:
                out.close()
        finally:
            snap.close()
        return block_hash, keys

    def close(self) -> None:
        self._db.close()

"""The sequencer's storage seam: append a block, read from a height, read the
head, find an id. The embedded engine is LevelDB; a replicated log (etcd) can
sit behind the same seam later.

LevelDB keys (all integers big-endian):
    b"B" + height u64          -> encoded Block
    b"I" + id (32 bytes)       -> height u64 + index u32
    b"X" + height u64          -> the ids that block orders, 32 bytes each (to prune b"I")
    b"H"                       -> head height u64 + head hash (32 bytes)
    b"F"                       -> first height whose block is kept u64 (absent: 1)
    b"f"                       -> first height whose ids are kept u64 (absent: 1)
    b"P"                       -> the prune floor last set (SetPruneFloor) u64
    b"S"                       -> empty; written synced to make earlier appends durable

Retention (`prune`, sequencer/core/retention.py says what may go) deletes blocks
and ids from the bottom, a bounded number of heights per call, in one batch with
the new first heights; the head is never pruned.

A snapshot (`save_copy`) is a new store of the same keys: the blocks up to its
height (from the first kept), the ids they order, and that block as head.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Protocol

import plyvel

from xrollup.blocks import GENESIS_PARENT
from xrollup.errors import Refused, Unavailable
from xrollup.v1 import types_pb2 as pb

_BLOCK = b"B"
_ID = b"I"
_HEAD = b"H"
_IDS = b"X"
_FIRST_BLOCK = b"F"
_FIRST_IDS = b"f"
_FLOOR = b"P"
_SYNCED = b"S"  # written synced by sync(): flushes the unsynced appends before it
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

    def first_height(self) -> int:
        """The first height whose block is kept (1 when nothing was pruned)."""

    def prune(self, blocks_from: int, ids_from: int, step: int) -> tuple[int, int]:
        """Delete blocks below `blocks_from` and ids of heights below `ids_from`
        (never the head), at most `step` heights of each: the new first heights."""

    def load_floor(self) -> int:
        """The prune floor last saved (0: none)."""

    def save_floor(self, height: int) -> None: ...

    def sync(self) -> None:
        """Make every append so far durable (a store opened with sync=False)."""

    def close(self) -> None: ...


def _height_key(height: int) -> bytes:
    return _BLOCK + struct.pack(">Q", height)


def _get_u64(db: plyvel.DB, key: bytes, default: int) -> int:
    raw = db.get(key)
    return default if raw is None else int(struct.unpack(">Q", raw)[0])


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
        self._first_block = _get_u64(self._db, _FIRST_BLOCK, 1)
        self._first_ids = _get_u64(self._db, _FIRST_IDS, 1)
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
            if ids:
                wb.put(_IDS + struct.pack(">Q", height), b"".join(ids))
            wb.put(_HEAD, struct.pack(">Q", height) + block.hash)
        self._head = (height, bytes(block.hash))

    def head(self) -> tuple[int, bytes]:
        return self._head

    def get_block(self, height: int) -> bytes | None:
        if height < self._first_block or height > self._head[0]:
            return None
        value: bytes | None = self._db.get(_height_key(height))
        return value

    def read_from(self, height: int) -> Iterator[bytes]:
        stop = _height_key(self._head[0] + 1)
        start = _height_key(max(self._first_block, height))
        for _key, value in self._db.iterator(start=start, stop=stop):
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
            if raw is None:
                raise Refused(
                    f"block {height} is pruned: this sequencer keeps blocks from"
                    f" {self._first_block} on (retention)"
                )
            block_hash = bytes(pb.Block.FromString(raw).hash)
            blocks = snap.iterator(start=_height_key(1), stop=_height_key(height + 1))
            ids = (
                (k, v)
                for k, v in snap.iterator(prefix=_ID)
                if struct.unpack(">Q", v[:8])[0] <= height
            )
            id_lists = snap.iterator(start=_IDS, stop=_IDS + struct.pack(">Q", height + 1))
            firsts = [(k, v) for k in (_FIRST_BLOCK, _FIRST_IDS) if (v := snap.get(k)) is not None]
            head = [*firsts, (_HEAD, struct.pack(">Q", height) + block_hash)]
            out = plyvel.DB(
                str(path), create_if_missing=True, error_if_exists=True, bloom_filter_bits=10
            )
            try:
                keys = _write_all(out, itertools.chain(blocks, ids, id_lists, head))
            finally:
                out.close()
        finally:
            snap.close()
        return block_hash, keys

    def first_height(self) -> int:
        return self._first_block

    def prune(self, blocks_from: int, ids_from: int, step: int) -> tuple[int, int]:
        # Called from one thread at a time, beside appends (other keys) and reads: a
        # reader finds a block either whole or gone, and says "pruned" for gone.
        head = self._head[0]
        blocks_to = min(blocks_from, head, self._first_block + step)
        ids_to = min(ids_from, head, self._first_ids + step)
        if blocks_to <= self._first_block and ids_to <= self._first_ids:
            return self._first_block, self._first_ids
        with self._db.write_batch(transaction=True) as wb:
            for h in range(self._first_ids, ids_to):
                listed = self._db.get(_IDS + struct.pack(">Q", h))
                if listed is not None:
                    for i in range(0, len(listed), 32):
                        wb.delete(_ID + listed[i : i + 32])
                    wb.delete(_IDS + struct.pack(">Q", h))
            for h in range(self._first_block, blocks_to):
                wb.delete(_height_key(h))
            first_block = max(self._first_block, blocks_to)
            first_ids = max(self._first_ids, ids_to)
            wb.put(_FIRST_BLOCK, struct.pack(">Q", first_block))
            wb.put(_FIRST_IDS, struct.pack(">Q", first_ids))
        self._first_block, self._first_ids = first_block, first_ids
        return first_block, first_ids

    def load_floor(self) -> int:
        return _get_u64(self._db, _FLOOR, 0)

    def save_floor(self, height: int) -> None:
        self._db.put(_FLOOR, struct.pack(">Q", height), sync=True)

    def sync(self) -> None:
        # One synced write flushes LevelDB's log, with every unsynced batch before it.
        self._db.put(_SYNCED, b"", sync=True)

    def close(self) -> None:
        self._db.close()

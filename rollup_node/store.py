"""The node's LevelDB store: the only code here that touches plyvel.

Keys (integers big-endian):
    b"s" + state key      -> value (see rollup_node/core/state.py for state keys)
    b"r" + id             -> receipt: height u64, index u32, ok u8, reason (utf-8)
    b"R" + height u64     -> state root (32 bytes) after that height
    b"m"                  -> applied height u64 + block hash 32 + accumulator 256
    b"g"                  -> blake3 of the genesis this directory was started with
    b"h" + height u64     -> the applied block's header, hash and signature (an encoded
                             Block without entries): the first half of any evidence
    b"e" + height u64     -> evidence of equivocation at that height (an encoded Equivocation)
    b"x" + height u64     -> the ids (32 bytes each) whose receipts that height wrote
    b"f"                  -> the first height whose root, header and receipts are kept u64
    b"S" + height u64     -> b"": a snapshot was taken at that height; its root is kept

A block's state writes, receipts, root and new applied height go into one
transactional write batch: a node killed at any instant restarts on a block
boundary. Unsynced: kill -9 loses nothing LevelDB was handed; a machine crash
may lose the tail, which the node replays from the sequencer.

Retention (`retain_blocks` N > 0, the node's --retain-blocks): the batch that saves
height h also deletes the root, header and receipts of height h - N (and, when
retention was just turned on or lowered, up to PRUNE_STEP older heights per
block until it has caught up), so the node keeps the last N heights. The root of
a height a snapshot was taken at stays (`pin_root`): a node started from that
snapshot checks its root against this node's. State is never pruned here: what
state leaves, it leaves by the state transition (rollup_node/core/retention.py).

A snapshot (`freeze`, then `Frozen.save_copy`) is a new store of every key as
they were between two blocks."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import plyvel

from rollup_node.core.execute import BlockOutcome, Receipt
from rollup_node.core.root import ACC_BYTES, decode_accumulator, encode_accumulator
from xrollup.errors import InvalidInput, Unavailable
from xrollup.v1 import node_pb2 as npb
from xrollup.v1 import types_pb2 as pb

_STATE = b"s"
_RECEIPT = b"r"
_ROOT = b"R"
_META = b"m"
_GENESIS = b"g"
_HEADER = b"h"
_EVIDENCE = b"e"
_RECEIPT_IDS = b"x"
_FIRST = b"f"
_PINNED = b"S"
_COPY_BATCH = 10_000  # keys per write batch when copying the store
PRUNE_STEP = 16  # heights pruned at most per block beyond the one due


def _height_key(height: int) -> bytes:
    return struct.pack(">Q", height)


def _u64(raw: bytes) -> int:
    value: int = struct.unpack(">Q", raw)[0]
    return value


@dataclass(frozen=True, slots=True)
class Applied:
    height: int
    block_hash: bytes
    accumulator: int


def encode_receipt(r: Receipt) -> bytes:
    return struct.pack(">QIB", r.height, r.index, 1 if r.ok else 0) + r.reason.encode()


def decode_receipt(entry_id: bytes, raw: bytes) -> Receipt:
    height, index, ok = struct.unpack(">QIB", raw[:13])
    return Receipt(entry_id, height, index, bool(ok), raw[13:].decode())


class _Reader:
    """StateReader over a LevelDB database or snapshot."""

    def __init__(self, db: plyvel.DB) -> None:
        self._db = db

    def get(self, key: bytes) -> bytes | None:
        value: bytes | None = self._db.get(_STATE + key)
        return value

    def iterate(self, start: bytes, stop: bytes) -> Iterator[tuple[bytes, bytes]]:
        for key, value in self._db.iterator(start=_STATE + start, stop=_STATE + stop):
            yield key[1:], value


class Frozen:
    """The whole store at one instant, for a copy taken while blocks keep applying."""

    def __init__(self, snap: plyvel.Snapshot) -> None:
        self._snap = snap

    def save_copy(self, path: Path) -> int:
        """Write every key (state, receipts, roots, headers, evidence, applied height
        and genesis) to a new store at `path`; the number of keys. The copy is
        written whole before anyone opens it, so its batches need not be atomic."""
        db = plyvel.DB(str(path), create_if_missing=True, error_if_exists=True)
        n = 0
        try:
            wb = db.write_batch()
            for key, value in self._snap.iterator():
                wb.put(key, value)
                n += 1
                if n % _COPY_BATCH == 0:
                    wb.write()
                    wb = db.write_batch()
            wb.write()
        finally:
            db.close()
        return n

    def close(self) -> None:
        self._snap.close()


class NodeStore:
    def __init__(self, path: Path, genesis_hash: bytes) -> None:
        path.mkdir(parents=True, exist_ok=True)
        try:
            self._db = plyvel.DB(str(path), create_if_missing=True)
        except plyvel.IOError as e:
            raise Unavailable(
                f"cannot open node store {path}: {e} (is another node using it?)"
            ) from None
        stored = self._db.get(_GENESIS)
        if stored is None:
            self._db.put(_GENESIS, genesis_hash, sync=True)
        elif stored != genesis_hash:
            self._db.close()
            raise InvalidInput(
                f"{path} was created with a different genesis; use another --data-dir"
            )
        self.state = _Reader(self._db)
        self.retain_blocks = 0  # 0: keep every height
        raw = self._db.get(_FIRST)
        self._first = 0 if raw is None else _u64(raw)

    def applied(self) -> Applied | None:
        raw = self._db.get(_META)
        if raw is None:
            return None
        height = struct.unpack(">Q", raw[:8])[0]
        return Applied(height, raw[8:40], decode_accumulator(raw[40 : 40 + ACC_BYTES]))

    def save_block(
        self,
        outcome: BlockOutcome,
        block_hash: bytes,
        accumulator: int,
        root: bytes,
        header: pb.Block | None = None,
    ) -> None:
        """Write one block's effects atomically. The first receipt of an id stands."""
        with self._db.write_batch(transaction=True) as wb:
            if header is not None:
                wb.put(_HEADER + struct.pack(">Q", outcome.height), header.SerializeToString())
            for key, value in outcome.writes.items():
                if value is None:
                    wb.delete(_STATE + key)
                else:
                    wb.put(_STATE + key, value)
            written: dict[bytes, None] = {}  # an id can recur within one block (expired, malformed)
            for r in outcome.receipts:
                if r.id not in written and self._db.get(_RECEIPT + r.id) is None:
                    wb.put(_RECEIPT + r.id, encode_receipt(r))
                    written[r.id] = None
            if written:
                wb.put(_RECEIPT_IDS + _height_key(outcome.height), b"".join(written))
            wb.put(_ROOT + struct.pack(">Q", outcome.height), root)
            wb.put(
                _META,
                struct.pack(">Q", outcome.height) + block_hash + encode_accumulator(accumulator),
            )
            first = self._prune(wb, int(outcome.height))
        self._first = first

    def _prune(self, wb: plyvel.WriteBatch, height: int) -> int:
        """Into the batch of `height`: delete what heights up to height - N keep
        beside state, at most PRUNE_STEP + 1 of them; the new first kept height."""
        if self.retain_blocks <= 0 or height - self.retain_blocks < self._first:
            return self._first
        stop = min(height - self.retain_blocks, self._first + PRUNE_STEP)
        for h in range(self._first, stop + 1):
            key = _height_key(h)
            ids = self._db.get(_RECEIPT_IDS + key)
            if ids is not None:
                for i in range(0, len(ids), 32):
                    wb.delete(_RECEIPT + ids[i : i + 32])
                wb.delete(_RECEIPT_IDS + key)
            if self._db.get(_PINNED + key) is None:
                wb.delete(_ROOT + key)
            wb.delete(_HEADER + key)
        wb.put(_FIRST, _height_key(stop + 1))
        return stop + 1

    def retained_from(self) -> int:
        """The first height whose root, header and receipts this node keeps (0:
        nothing pruned); roots of snapshot heights are kept below it."""
        return self._first

    def pin_root(self, height: int) -> None:
        """Keep the root of `height` whatever the retention: a snapshot was taken there."""
        self._db.put(_PINNED + _height_key(height), b"")

    def get_header(self, height: int) -> pb.Block | None:
        raw = self._db.get(_HEADER + struct.pack(">Q", height))
        return None if raw is None else pb.Block.FromString(raw)

    def save_equivocation(self, height: int, first: pb.Block, second: pb.Block) -> None:
        """Keep evidence; the first pair found for a height stands."""
        key = _EVIDENCE + struct.pack(">Q", height)
        if self._db.get(key) is None:
            ev = npb.Equivocation(height=height, first=first, second=second)
            self._db.put(key, ev.SerializeToString(), sync=True)

    def get_equivocation(self) -> npb.Equivocation | None:
        """The latest evidence of equivocation this node holds, if any."""
        for _key, raw in self._db.iterator(prefix=_EVIDENCE, reverse=True):
            return npb.Equivocation.FromString(raw)
        return None

    def get_receipt(self, entry_id: bytes) -> Receipt | None:
        raw = self._db.get(_RECEIPT + entry_id)
        return None if raw is None else decode_receipt(entry_id, raw)

    def get_root(self, height: int) -> bytes | None:
        value: bytes | None = self._db.get(_ROOT + struct.pack(">Q", height))
        return value

    def snapshot_reader(self) -> tuple[_Reader, int]:
        """A consistent view of the state and the height it reflects."""
        snap = self._db.snapshot()
        raw = snap.get(_META)
        height = 0 if raw is None else struct.unpack(">Q", raw[:8])[0]
        return _Reader(snap), height

    def iterate_state(self) -> Iterator[tuple[bytes, bytes]]:
        yield from self.state.iterate(b"", b"\xff" * 8)

    def freeze(self) -> Frozen:
        """The whole store as it is now (a LevelDB snapshot: cheap to take)."""
        return Frozen(self._db.snapshot())

    def close(self) -> None:
        self._db.close()

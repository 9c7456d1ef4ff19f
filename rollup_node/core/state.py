"""State access and the storage keys of every module, in one place (pinned by
tests/unit/test_state_keys.py: a change here changes every state root).

All integers are big-endian; an address is 20 bytes; ids are 32 bytes. Records
are canonical JSON (sorted keys, no spaces, bytes as hex, enums as integers).

    b"bal:" + address + asset        -> amount u64            (bank)
    b"sup:" + asset                  -> total supply u64      (bank)
    b"px:" + base + b"/" + quote     -> price u64 + height u64 (oracle)
    b"seen:" + id                    -> expiry height u64     (replay protection)
    b"exp:" + expiry u64 + id        -> b""                   (prunes seen ids)
    b"lien:" + lien id               -> Lien record            (collateral)
    b"opt:" + option id              -> OptionPosition record  (options)
    b"esc:" + bundle id              -> Escrow record: held amounts, typed commit
                                        and abort effects     (bundles)
    b"bnd:" + bundle id              -> BundleRecord: status, vote, reason code,
                                        heights, leg outcomes (bundles)
    b"opn:" + bundle id              -> OpenBundle: rollups, height, deadline,
                                        counted votes          (decision rule)
    b"ddl:" + deadline u64 + id      -> b""                   (deadline index)
    b"ret:" + due u64 + record key   -> b""                   (retention index: a
                                        finished bnd:/lien:/opt: record to delete
                                        at height `due`; rollup_node/core/retention.py)

Account indexes (GetAccount reads an account's holds without scanning the state;
each key exists exactly while its record says so, written where the record is):

    b"acl:" + owner + lien id        -> b""   a lien of `owner` holding funds
                                              (LOCKED or PENDING; collateral.save_lien)
    b"ace:" + owner + bundle id      -> b""   an undecided escrow holding some of
                                              `owner`'s funds (an abort Credit to it;
                                              bundles.save_escrow / delete_escrow)
    b"aco:" + account + option id    -> b""   an option `account` writes or holds,
                                              OPEN or SETTLING (options.save_option;
                                              deleted with the record by retention)

A block's writes are collected in a `State` over a read-only base; a journal
lets one transaction roll back so an invalid one changes nothing."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from typing import Protocol

from xrollup.keys import Address

BALANCE = b"bal:"
SUPPLY = b"sup:"
PRICE = b"px:"
SEEN = b"seen:"
EXPIRY = b"exp:"
LIEN = b"lien:"
OPTION = b"opt:"
ESCROW = b"esc:"
BUNDLE = b"bnd:"
OPEN = b"opn:"
DEADLINE = b"ddl:"
RETIRE = b"ret:"
ACCOUNT_LIEN = b"acl:"
ACCOUNT_ESCROW = b"ace:"
ACCOUNT_OPTION = b"aco:"
PREFIXES = (
    BALANCE,
    SUPPLY,
    PRICE,
    SEEN,
    EXPIRY,
    LIEN,
    OPTION,
    ESCROW,
    BUNDLE,
    OPEN,
    DEADLINE,
    RETIRE,
    ACCOUNT_LIEN,
    ACCOUNT_ESCROW,
    ACCOUNT_OPTION,
)


def balance_key(address: Address, asset: str) -> bytes:
    return BALANCE + address + asset.encode()


def supply_key(asset: str) -> bytes:
    return SUPPLY + asset.encode()


def price_key(base: str, quote: str) -> bytes:
    return PRICE + base.encode() + b"/" + quote.encode()


def seen_key(entry_id: bytes) -> bytes:
    return SEEN + entry_id


def expiry_key(expiry_height: int, entry_id: bytes) -> bytes:
    return EXPIRY + struct.pack(">Q", expiry_height) + entry_id


def deadline_key(deadline: int, bundle_id: bytes) -> bytes:
    return DEADLINE + struct.pack(">Q", deadline) + bundle_id


def retire_key(due: int, record_key: bytes) -> bytes:
    return RETIRE + struct.pack(">Q", due) + record_key


def account_lien_key(owner: Address, lien_id: bytes) -> bytes:
    return ACCOUNT_LIEN + owner + lien_id


def account_escrow_key(owner: Address, bundle_id: bytes) -> bytes:
    return ACCOUNT_ESCROW + owner + bundle_id


def account_option_key(account: Address, option_id: bytes) -> bytes:
    return ACCOUNT_OPTION + account + option_id


def compute_prefix_end(prefix: bytes) -> bytes:
    """The least key above every key that starts with `prefix` (the stop of
    iterate): the prefix with its last byte below 0xff incremented."""
    stripped = prefix.rstrip(b"\xff")
    assert stripped, "a prefix of 0xff bytes only has no end"
    return stripped[:-1] + bytes([stripped[-1] + 1])


def encode_record(fields: dict[str, object]) -> bytes:
    """The one canonical encoding of state records."""
    return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()


def encode_u64(value: int) -> bytes:
    return struct.pack(">Q", value)


def decode_u64(raw: bytes) -> int:
    value: int = struct.unpack(">Q", raw)[0]
    return value


class StateReader(Protocol):
    """Read-only state at the end of the previous block."""

    def get(self, key: bytes) -> bytes | None: ...

    def iterate(self, start: bytes, stop: bytes) -> Iterator[tuple[bytes, bytes]]:
        """(key, value) pairs with start <= key < stop, in key order."""
        ...


class MemoryState:
    """A StateReader over a dict: for tests and for replaying without LevelDB."""

    def __init__(self, items: dict[bytes, bytes] | None = None) -> None:
        self.items: dict[bytes, bytes] = dict(items or {})

    def get(self, key: bytes) -> bytes | None:
        return self.items.get(key)

    def iterate(self, start: bytes, stop: bytes) -> Iterator[tuple[bytes, bytes]]:
        for key in sorted(k for k in self.items if start <= k < stop):
            yield key, self.items[key]

    def apply(self, writes: dict[bytes, bytes | None]) -> None:
        for key, value in writes.items():
            if value is None:
                self.items.pop(key, None)
            else:
                self.items[key] = value


_ABSENT = object()


class State:
    """The state one block transitions: reads fall through to `base`; writes are
    collected (None = delete). `begin`/`commit`/`rollback` bracket one
    transaction so a failing one leaves no trace."""

    def __init__(self, base: StateReader) -> None:
        self._base = base
        self.writes: dict[bytes, bytes | None] = {}
        self._journal: list[tuple[bytes, object]] | None = None

    def get(self, key: bytes) -> bytes | None:
        if key in self.writes:
            return self.writes[key]
        return self._base.get(key)

    def get_base(self, key: bytes) -> bytes | None:
        """The value as of the previous block (this block's writes not included)."""
        return self._base.get(key)

    def iterate_base(self, start: bytes, stop: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Keys in [start, stop) as of the previous block (this block's writes not included)."""
        return self._base.iterate(start, stop)

    def put(self, key: bytes, value: bytes) -> None:
        self._remember(key)
        self.writes[key] = value

    def delete(self, key: bytes) -> None:
        self._remember(key)
        self.writes[key] = None

    def _remember(self, key: bytes) -> None:
        if self._journal is not None:
            self._journal.append((key, self.writes.get(key, _ABSENT)))

    def begin(self) -> None:
        assert self._journal is None, "transactions do not nest"
        self._journal = []

    def commit(self) -> None:
        assert self._journal is not None
        self._journal = None

    def rollback(self) -> None:
        assert self._journal is not None
        for key, old in reversed(self._journal):
            if old is _ABSENT:
                del self.writes[key]
            else:
                self.writes[key] = old  # type: ignore[assignment]
        self._journal = None

"""The pending pool: admitted entries waiting for a block, in arrival order,
bounded, with no id twice. Protocol entries (votes) take a lane of their own so
a pool full of user traffic cannot starve the bundle protocol."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from xrollup.errors import PoolFull

P = TypeVar("P")


@dataclass(frozen=True, slots=True)
class Pending(Generic[P]):
    id: bytes
    expiry_height: int  # 0: never expires (votes, decisions)
    payload: P  # the encoded entry; opaque to the core
    size: int = 0  # its encoded bytes, counted against the block's byte budget


@dataclass(frozen=True, slots=True)
class Taken(Generic[P]):
    included: list[Pending[P]]
    expired: list[Pending[P]]
    full: bool = False  # stopped at the byte budget with entries left waiting


class Pool(Generic[P]):
    def __init__(self, capacity: int, protocol_capacity: int = 1024) -> None:
        assert capacity > 0 and protocol_capacity > 0
        self.capacity = capacity
        self.protocol_capacity = protocol_capacity
        self._user: dict[bytes, Pending[P]] = {}
        self._protocol: dict[bytes, Pending[P]] = {}

    def __len__(self) -> int:
        return len(self._user) + len(self._protocol)

    def __contains__(self, entry_id: bytes) -> bool:
        return entry_id in self._user or entry_id in self._protocol

    @property
    def user_entries(self) -> int:
        return len(self._user)

    @property
    def protocol_entries(self) -> int:
        return len(self._protocol)

    @property
    def free(self) -> int:
        return self.capacity - len(self._user)

    def add(self, pending: Pending[P], protocol: bool = False) -> None:
        """Queue an entry; raises PoolFull when its lane is at capacity."""
        assert pending.id not in self, "callers check for duplicates first"
        lane, cap = (
            (self._protocol, self.protocol_capacity) if protocol else (self._user, self.capacity)
        )
        if len(lane) >= cap:
            kind = "protocol" if protocol else "pending"
            raise PoolFull(f"{kind} pool is full ({cap} entries); retry after the next block")
        lane[pending.id] = pending

    def take(self, max_entries: int, height: int, max_bytes: int | None = None) -> Taken[P]:
        """Remove up to `max_entries` entries, `max_bytes` in all, for block
        `height`: protocol lane first, then user entries in arrival order. The first
        entry that would pass the byte budget stays, with everything after it, for
        the next block. Entries whose expiry height is below `height` are removed
        and returned as expired."""
        included: list[Pending[P]] = []
        expired: list[Pending[P]] = []
        budget = max_bytes if max_bytes is not None else -1
        full = False
        for lane in (self._protocol, self._user):
            while lane and len(included) < max_entries:
                entry_id = next(iter(lane))
                p = lane[entry_id]
                if p.expiry_height and p.expiry_height < height:
                    expired.append(lane.pop(entry_id))
                    continue
                if budget >= 0:
                    if p.size > budget:
                        full = True
                        break
                    budget -= p.size
                included.append(lane.pop(entry_id))
        return Taken(included, expired, full)

"""The pending pool (sequencer/core/pool.py): bounded per lane, arrival order,
protocol lane first, expired entries dropped at take time, no id twice."""

from __future__ import annotations

import pytest

from sequencer.core.pool import Pending, Pool
from xrollup.errors import LimitExceeded, PoolFull


def pending(n: int, expiry: int = 100) -> Pending[str]:
    return Pending(n.to_bytes(32, "big"), expiry, f"entry-{n}")


def ids(entries: list[Pending[str]]) -> list[int]:
    return [int.from_bytes(p.id, "big") for p in entries]


def test_add_then_take_in_arrival_order() -> None:
    pool: Pool[str] = Pool(capacity=10)
    for n in (5, 1, 9, 3):
        pool.add(pending(n))
    assert len(pool) == 4 and pool.free == 6
    assert pending(9).id in pool and pending(2).id not in pool

    taken = pool.take(max_entries=10, height=1)

    assert ids(taken.included) == [5, 1, 9, 3]
    assert [p.payload for p in taken.included] == ["entry-5", "entry-1", "entry-9", "entry-3"]
    assert taken.expired == []
    assert len(pool) == 0 and pool.free == 10


def test_take_respects_max_entries_and_keeps_the_rest_in_order() -> None:
    pool: Pool[str] = Pool(capacity=10)
    for n in range(7):
        pool.add(pending(n))

    first = pool.take(max_entries=3, height=1)
    second = pool.take(max_entries=3, height=2)
    third = pool.take(max_entries=3, height=3)

    assert (ids(first.included), ids(second.included), ids(third.included)) == (
        [0, 1, 2],
        [3, 4, 5],
        [6],
    )
    assert len(pool) == 0


def test_full_pool_refuses_and_is_unchanged() -> None:
    pool: Pool[str] = Pool(capacity=3)
    for n in range(3):
        pool.add(pending(n))
    assert pool.free == 0

    with pytest.raises(PoolFull, match="pool is full") as err:
        pool.add(pending(99))

    assert isinstance(err.value, LimitExceeded)  # RESOURCE_EXHAUSTED
    assert "3 entries" in str(err.value)
    assert len(pool) == 3 and pending(99).id not in pool
    assert ids(pool.take(10, 1).included) == [0, 1, 2]
    pool.add(pending(99))  # room again after a block
    assert pending(99).id in pool


def test_protocol_lane_has_its_own_bound_and_goes_first() -> None:
    pool: Pool[str] = Pool(capacity=2, protocol_capacity=2)
    pool.add(pending(1))
    pool.add(pending(2))
    with pytest.raises(PoolFull):
        pool.add(pending(3))
    # A user pool full of traffic does not block votes.
    pool.add(pending(10), protocol=True)
    pool.add(pending(11), protocol=True)
    with pytest.raises(PoolFull, match="protocol pool is full"):
        pool.add(pending(12), protocol=True)
    assert len(pool) == 4
    assert pool.free == 0  # `free` counts the user lane only

    taken = pool.take(max_entries=3, height=1)

    assert ids(taken.included) == [10, 11, 1]
    assert ids(pool.take(max_entries=3, height=2).included) == [2]


def test_expired_entries_are_dropped_and_reported() -> None:
    pool: Pool[str] = Pool(capacity=10)
    pool.add(pending(1, expiry=4))  # expired at height 5
    pool.add(pending(2, expiry=5))  # may still be ordered at 5
    pool.add(pending(3, expiry=0))  # never expires
    pool.add(pending(4, expiry=6))
    pool.add(pending(5, expiry=1), protocol=True)

    taken = pool.take(max_entries=10, height=5)

    assert ids(taken.included) == [2, 3, 4]
    assert sorted(ids(taken.expired)) == [1, 5]
    assert len(pool) == 0


def test_expired_entries_do_not_use_block_space() -> None:
    pool: Pool[str] = Pool(capacity=10)
    for n in range(3):
        pool.add(pending(n, expiry=1))
    for n in range(3, 6):
        pool.add(pending(n, expiry=100))

    taken = pool.take(max_entries=2, height=2)

    assert ids(taken.expired) == [0, 1, 2]
    assert ids(taken.included) == [3, 4]
    assert ids(pool.take(max_entries=2, height=3).included) == [5]


def test_same_id_twice_is_a_caller_bug() -> None:
    pool: Pool[str] = Pool(capacity=10)
    pool.add(pending(1))
    with pytest.raises(AssertionError):
        pool.add(pending(1))
    with pytest.raises(AssertionError):
        pool.add(pending(1), protocol=True)
    assert len(pool) == 1


def test_take_stops_at_the_byte_budget_and_keeps_the_rest_in_order() -> None:
    pool: Pool[str] = Pool(capacity=10)
    for n, size in enumerate((400, 300, 500, 100)):
        pool.add(Pending(n.to_bytes(32, "big"), 100, f"entry-{n}", size))

    first = pool.take(max_entries=10, height=1, max_bytes=1000)

    # 400 + 300 fit; 500 would pass 1000, so it and everything after it wait.
    assert ids(first.included) == [0, 1] and first.full
    second = pool.take(max_entries=10, height=2, max_bytes=1000)
    assert ids(second.included) == [2, 3] and not second.full
    assert len(pool) == 0


def test_the_protocol_lane_counts_against_the_same_budget() -> None:
    pool: Pool[str] = Pool(capacity=10)
    pool.add(Pending(b"\x01" * 32, 0, "vote", 700), protocol=True)
    pool.add(Pending(b"\x02" * 32, 100, "tx", 400))
    taken = pool.take(max_entries=10, height=1, max_bytes=1000)
    assert [p.payload for p in taken.included] == ["vote"] and taken.full

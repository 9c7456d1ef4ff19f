"""The state root (rollup_node/core/root.py): an additive multiset hash over
every (key, value) pair. Built from scratch or updated by a block's writes, it
is the same number; it does not depend on order, and it sees every change."""

from __future__ import annotations

import random

from statesupport import ALICE, BOB, Chain, transfer

from rollup_node.core.root import (
    ACC_BYTES,
    MODULUS,
    compute_accumulator,
    compute_item_hash,
    compute_state_root,
    decode_accumulator,
    encode_accumulator,
    update_accumulator,
)
from rollup_node.core.state import MemoryState

ITEMS = {b"bal:a": b"\x01", b"bal:b": b"\x02", b"sup:USDC": b"\x03", b"seen:x": b""}


def test_accumulator_does_not_depend_on_order(seed: int) -> None:
    items = list(ITEMS.items())
    shuffled = items[:]
    random.Random(seed).shuffle(shuffled)

    assert compute_accumulator(items) == compute_accumulator(shuffled)
    assert compute_accumulator(items) == compute_accumulator(reversed(items))


def test_empty_state_has_accumulator_zero_and_a_fixed_root() -> None:
    assert compute_accumulator([]) == 0
    assert compute_state_root(0) == compute_state_root(compute_accumulator([]))
    assert compute_state_root(0) != compute_state_root(compute_accumulator(ITEMS.items()))
    assert len(compute_state_root(0)) == 32


def test_item_hash_separates_key_from_value() -> None:
    # The key length is hashed too, so moving a byte across the boundary changes the item.
    assert compute_item_hash(b"ab", b"c") != compute_item_hash(b"a", b"bc")
    assert compute_item_hash(b"k", b"") != compute_item_hash(b"k", b"\x00")
    assert 0 <= compute_item_hash(b"k", b"v") < MODULUS


def test_every_change_changes_the_root() -> None:
    base = compute_state_root(compute_accumulator(ITEMS.items()))
    changed_value = {**ITEMS, b"bal:a": b"\x02"}
    removed = {k: v for k, v in ITEMS.items() if k != b"seen:x"}
    added = {**ITEMS, b"bal:c": b"\x01"}
    renamed = {(b"bal:z" if k == b"bal:a" else k): v for k, v in ITEMS.items()}

    roots = {
        compute_state_root(compute_accumulator(s.items()))
        for s in (changed_value, removed, added, renamed)
    }
    assert len(roots) == 4 and base not in roots


def test_update_adds_removes_and_replaces_items() -> None:
    acc = compute_accumulator(ITEMS.items())
    changes = [
        (b"bal:a", b"\x01", b"\x09"),  # replaced
        (b"seen:x", b"", None),  # removed
        (b"bal:c", None, b"\x07"),  # added
        (b"bal:b", b"\x02", b"\x02"),  # written back unchanged
        (b"nothing", None, None),  # deleted while absent
    ]

    updated = update_accumulator(acc, changes)

    after = {b"bal:a": b"\x09", b"bal:b": b"\x02", b"sup:USDC": b"\x03", b"bal:c": b"\x07"}
    assert updated == compute_accumulator(after.items())


def test_adding_then_removing_returns_to_the_same_accumulator() -> None:
    acc = compute_accumulator(ITEMS.items())

    added = update_accumulator(acc, [(b"tmp", None, b"x")])
    removed = update_accumulator(added, [(b"tmp", b"x", None)])

    assert added != acc and removed == acc


def test_accumulator_stays_below_the_modulus_and_round_trips() -> None:
    # Removing an item from the empty accumulator wraps around instead of going negative.
    acc = update_accumulator(0, [(b"k", b"v", None)])
    assert 0 <= acc < MODULUS
    assert acc == MODULUS - compute_item_hash(b"k", b"v")
    assert update_accumulator(acc, [(b"k", None, b"v")]) == 0

    raw = encode_accumulator(acc)
    assert len(raw) == ACC_BYTES and decode_accumulator(raw) == acc


def test_incremental_root_over_blocks_equals_the_root_from_all_items() -> None:
    chain = Chain("alpha")  # checks incremental == from scratch after every block too
    blocks = [
        [transfer(ALICE, BOB.address, "USDC", 5, nonce=1)],
        [transfer(BOB, ALICE.address, "ETH", 7, nonce=2)],
        [transfer(ALICE, BOB.address, "USDC", 10**18, nonce=3)],  # overspend: seen-marker only
        [],  # an empty block (nothing to prune yet) changes nothing
    ]

    for entries in blocks:
        state_before = MemoryState(chain.state.items)
        outcome = chain.apply(entries)
        changes = [(k, state_before.get(k), v) for k, v in outcome.writes.items()]
        incremental = update_accumulator(compute_accumulator(state_before.items.items()), changes)
        assert incremental == compute_accumulator(chain.state.items.items())
        assert chain.root == compute_state_root(incremental)

    assert len(set(chain.roots[:4])) == 4  # genesis and each non-empty block differ
    assert chain.roots[4] == chain.roots[3]

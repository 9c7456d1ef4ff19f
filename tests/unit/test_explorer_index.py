"""The explorer's index (devnet/explorer/index.py), pure: blocks sealed with the
dev sequencer key, verified and filed; what each entry files (where it was
ordered, the addresses and positions it touches, votes and decisions by bundle);
a block that does not verify is filed as such; the oldest block leaves with
everything it filed; rates over the last window of header time."""

from __future__ import annotations

from blocksupport import signed_vote

from devnet.explorer.index import BlockSummary, ChainIndex, compute_rates, verify_summary
from xrollup import codec
from xrollup.blocks import GENESIS_PARENT
from xrollup.client import build_open_option, build_transfer
from xrollup.genesis import compute_genesis_hash, dev_genesis
from xrollup.keys import derive_dev_account, derive_sequencer_key
from xrollup.model import BundleVote, OptionKind, ReasonCode
from xrollup.numeric import Height
from xrollup.v1 import types_pb2 as pb
from xrollup.verify import seal_block

GENESIS = dev_genesis()
GENESIS_HASH = compute_genesis_hash(GENESIS)
A0, A1, WRITER, HOLDER = (derive_dev_account(i) for i in range(4))
T0 = 1_700_000_000_000


def seal(height: int, parent: bytes, entries: list[pb.Entry], ms: int | None = None) -> pb.Block:
    ts = T0 + 20 * height if ms is None else ms
    key = derive_sequencer_key()
    return seal_block(entries, height, parent, ts, GENESIS, GENESIS_HASH, key)


def option_story() -> tuple[list[pb.Block], bytes, bytes]:
    """Block 1: a transfer and an option-open bundle; block 2: both rollups'
    yes votes and the commit. Returns the blocks, the transfer's and the bundle's ids."""
    tx = build_transfer(A0, "alpha", A1.address, "USDC", 5, 100)
    bundle = build_open_option(WRITER, HOLDER, OptionKind.PUT, 2_800, 2, 50, 1, 100)
    bundle_id = codec.decode_bundle(bundle).id
    b1 = seal(1, GENESIS_PARENT, [pb.Entry(tx=tx), pb.Entry(bundle=bundle)])
    yes = [BundleVote(bundle_id, True, ReasonCode.NONE, Height(1))]
    votes = [codec.encode_entry(signed_vote(r, 1, yes, GENESIS)) for r in ("alpha", "beta")]
    commit = codec.encode_decision(bundle_id, True, ReasonCode.ALL_YES)
    b2 = seal(2, bytes(b1.hash), [*votes, commit])
    return [b1, b2], codec.decode_tx(tx).id, bundle_id


def file_blocks(index: ChainIndex, msgs: list[pb.Block]) -> list[BlockSummary]:
    parent = index.head_hash or GENESIS_PARENT
    out = []
    for msg in msgs:
        block, ok, note = verify_summary(msg, GENESIS, GENESIS_HASH, parent)
        out.append(index.add_block(block, ok, note))
        parent = block.hash
    return out


def test_a_block_files_where_each_entry_is_and_what_it_touches() -> None:
    blocks, tx_id, bundle_id = option_story()
    index = ChainIndex()

    s1, s2 = file_blocks(index, blocks)

    assert (s1.verified, s2.verified) == (True, True)
    assert (s1.counts, s2.counts) == ({"tx": 1, "bundle": 1}, {"vote": 2, "decision": 1})
    assert (index.head, index.first, index.head_hash) == (2, 1, bytes(blocks[1].hash))
    tx, bundle = index.entries[tx_id], index.entries[bundle_id]
    assert (tx.height, tx.index, tx.kind, tx.rollups) == (1, 0, "tx", ("alpha",))
    assert (bundle.height, bundle.index, bundle.rollups) == (1, 1, ("alpha", "beta"))
    assert [i for i, _ in index.address_entries(A1.address, 10)] == [tx_id]
    assert [i for i, _ in index.address_entries(WRITER.address, 10)] == [bundle_id]
    assert sorted(index.address_positions(WRITER.address)) == [
        ("lien", bundle_id, "alpha"),
        ("option", bundle_id, "beta"),
    ]
    assert index.address_positions(HOLDER.address) == [("option", bundle_id, "beta")]
    assert sorted(v.rollup for v in index.votes[bundle_id]) == ["alpha", "beta"]
    assert all(v.yes and v.height == 2 for v in index.votes[bundle_id])
    assert index.bundle_state(bundle_id) == "committed"
    assert list(index.recent_bundles) == [bundle_id]
    assert [b.height for b in index.recent_busy(5)] == [2, 1]


def test_a_block_that_does_not_verify_is_filed_with_the_reason() -> None:
    blocks, _, _ = option_story()
    forged = pb.Block()
    forged.CopyFrom(blocks[1])
    forged.header.timestamp_ms += 1  # the signed hash no longer covers the header
    index = ChainIndex()

    _, s2 = file_blocks(index, [blocks[0], forged])

    assert s2.verified is False and s2.note.startswith("BAD_HEADER")
    assert index.head == 2  # shown, flagged, not hidden


def test_the_oldest_block_leaves_with_everything_it_filed() -> None:
    blocks, tx_id, bundle_id = option_story()
    index = ChainIndex(max_blocks=2)
    file_blocks(index, blocks)

    file_blocks(index, [seal(3, bytes(blocks[1].hash), [])])

    assert (index.first, index.head, list(index.blocks)) == (2, 3, [2, 3])
    assert tx_id not in index.entries and bundle_id not in index.entries
    assert index.by_address == {} and index.positions == {}
    assert bundle_id not in index.votes and bundle_id not in index.decisions
    assert index.bundle_state(bundle_id) == "pending"  # no longer known


def test_rates_count_the_blocks_of_the_last_window_by_header_time() -> None:
    index = ChainIndex()
    parent = GENESIS_PARENT
    for h in range(1, 31):  # a block every 500 ms, 4 transfers in every third
        txs = [
            pb.Entry(tx=build_transfer(A0, "alpha", A1.address, "USDC", 1, 100, nonce=h * 10 + i))
            for i in range(4 if h % 3 == 0 else 0)
        ]
        (summary,) = file_blocks(index, [seal(h, parent, txs, ms=T0 + 500 * h)])
        parent = summary.hash
    now = T0 + 500 * 30

    rates = compute_rates(index.newest_first(), now, window_ms=10_000)

    # (now - 10 s, now] holds blocks 11..30: 20 blocks, 7 of them (12, 15, .., 30) with 4 transfers.
    assert (rates.blocks_per_s, rates.tx_per_s, rates.bundles_per_s) == (2.0, 2.8, 0.0)
    assert compute_rates(iter(()), now).blocks_per_s == 0.0
    young = compute_rates(index.newest_first(), T0 + 500 * 30, window_ms=60_000)
    assert young.blocks_per_s == round(30 / 14.5, 1)  # the window is as old as the index


def test_the_index_is_bounded_in_estimated_bytes_and_can_start_afresh() -> None:
    msgs, parent = [], GENESIS_PARENT
    for h in range(1, 31):
        tx = build_transfer(A0, "alpha", A1.address, "USDC", h, 100, nonce=h)
        msg = seal(h, parent, [pb.Entry(tx=tx)])
        msgs.append(msg)
        parent = bytes(msg.hash)
    one_block = file_blocks(ChainIndex(), msgs[:1])[0].index_bytes
    assert one_block == 400 + 300 + 2 * 80  # a block, a transfer, its two addresses
    index = ChainIndex(max_bytes=10 * one_block)
    file_blocks(index, msgs)

    assert (index.first, index.head, len(index.blocks)) == (21, 30, 10)
    assert index.held_bytes == 10 * one_block and len(index.entries) == 10
    index.clear()
    assert (index.head, index.held_bytes, index.entries, index.by_address) == (0, 0, {}, {})

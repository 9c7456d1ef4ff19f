"""The invariant checker's log checks on a log that starts above height 1
(sequencer retention): the chain from its first block as a checkpoint, decisions
of bundles ordered before it not judged, journal entries before it skipped; and
what must still fail does."""

from __future__ import annotations

from blocksupport import decision
from statesupport import ALICE, BOB, GENESIS, GENESIS_HASH, transfer

from devnet.checker import check_chain, check_decisions, check_journal
from xrollup.blocks import GENESIS_PARENT
from xrollup.client import build_open_option
from xrollup.codec import decode_bundle, encode_entry
from xrollup.keys import derive_sequencer_key
from xrollup.model import Entry, OptionKind
from xrollup.v1 import types_pb2 as pb
from xrollup.verify import seal_block

OLD = decode_bundle(
    build_open_option(ALICE, BOB, OptionKind.PUT, 2_800 * 10**6, 10**9, 50, 10**6, 100, nonce=1)
)
TX = transfer(ALICE, BOB.address, "USDC", 5, nonce=2)


def chain(top: int, entries: dict[int, list[Entry]]) -> list[pb.Block]:
    out, parent = [], GENESIS_PARENT
    for h in range(1, top + 1):
        wire = [encode_entry(e) for e in entries.get(h, [])]
        msg = seal_block(
            wire, h, parent, 1_700_000_000_000 + h, GENESIS, GENESIS_HASH, derive_sequencer_key()
        )
        out.append(msg)
        parent = bytes(msg.hash)
    return out


def test_a_log_from_height_f_verifies_from_f_and_judges_only_bundles_it_holds() -> None:
    whole = chain(10, {2: [OLD], 6: [decision(OLD.id, False)], 7: [TX]})
    kept = whole[3:]  # blocks 4..10: 1..3 pruned

    r, blocks = check_chain(kept, GENESIS)
    assert r.ok and r.figures == {"blocks": 7, "from_height": 4}

    d, summary = check_decisions(blocks, GENESIS)
    assert d.ok, d.violations
    assert d.figures["decisions_of_pruned_bundles"] == 1 and summary.bundles == {}

    journal = [
        {"id": OLD.id.hex(), "height": 2, "index": 0},  # before the first kept block
        {"id": TX.id.hex(), "height": 7, "index": 0},
    ]
    j = check_journal(journal, blocks)
    assert j.ok and j.figures == {"acknowledged": 2, "before_first_block": 1}


def test_what_the_kept_log_holds_is_still_checked() -> None:
    whole = chain(8, {5: [TX]})
    kept = whole[3:]
    kept[2].header.timestamp_ms += 1  # block 6 altered: its hash no longer matches
    r, _ = check_chain(kept, GENESIS)
    assert not r.ok
    j = check_journal(
        [{"id": TX.id.hex(), "height": 5, "index": 1}], check_chain(whole[3:], GENESIS)[1]
    )
    assert not j.ok  # acknowledged at index 1, the log has it at 0
    # the whole log, from 1, still decides every bundle it orders
    d, _ = check_decisions(check_chain(chain(60, {2: [OLD]}), GENESIS)[1], GENESIS)
    assert not d.ok  # no decision logged by the deadline (the honest sequencer logs one)

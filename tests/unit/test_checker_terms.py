"""The invariant checker's leader-term check (devnet/checker.py check_terms): the
term never decreases along the log, and each node's term is the log's at the
height it applied. A single sequencer's log is all term 0 and passes."""

from __future__ import annotations

from statesupport import GENESIS, GENESIS_HASH

from devnet.checker import check_terms
from xrollup.blocks import GENESIS_PARENT
from xrollup.keys import derive_sequencer_key
from xrollup.v1 import types_pb2 as pb
from xrollup.verify import seal_block


def chain(terms: list[int], first: int = 1) -> list[pb.Block]:
    """Blocks first.. with these leader terms, each on the one before."""
    out, parent = [], GENESIS_PARENT
    for h, term in enumerate(terms, start=first):
        ts = 1_700_000_000_000 + h
        msg = seal_block([], h, parent, ts, GENESIS, GENESIS_HASH, derive_sequencer_key(), term)
        out.append(msg)
        parent = bytes(msg.hash)
    return out


def test_a_single_sequencers_log_is_all_term_0() -> None:
    r = check_terms(chain([0, 0, 0]), {"alpha": (3, 0), "beta": (2, 0)})

    assert r.ok, r.violations
    assert r.figures == {"term_starts": {"0": 1}, "nodes_compared": 2}


def test_terms_that_rise_through_failovers_pass() -> None:
    r = check_terms(chain([3, 3, 7, 7, 12]), {"alpha": (4, 7), "beta": (5, 12)})

    assert r.ok, r.violations
    assert r.figures["term_starts"] == {"3": 1, "7": 3, "12": 5}


def test_a_block_of_a_lower_term_in_the_log_is_a_violation() -> None:
    r = check_terms(chain([3, 7, 3, 7]), {})

    assert r.violations == [
        "block 3 has term 3, below term 7 of block 2: a superseded leader's block in the log"
    ]


def test_a_node_whose_term_is_not_the_logs_at_its_height_is_a_violation() -> None:
    log = chain([3, 3, 7], first=5)  # retention: the log holds 5..7

    r = check_terms(log, {"alpha": (7, 3), "beta": (6, 3), "gamma": (4, 0), "delta": (9, 0)})

    assert r.figures["nodes_compared"] == 2  # gamma below the log, delta past it: skipped
    assert len(r.violations) == 1
    assert r.violations[0].startswith("alpha at height 7 says term 3, the log's block there has")

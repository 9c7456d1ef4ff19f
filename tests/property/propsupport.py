"""Shared by the property tests: run a hypothesis test under the pytest `seed`,
and build what a log carries (sealed blocks, signed votes, decisions) the way
the sequencer and the nodes do."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import hypothesis
from blocksupport import decision, signed_vote
from hypothesis import HealthCheck, Phase, settings

from xrollup.codec import encode_entry
from xrollup.genesis import Genesis, compute_genesis_hash
from xrollup.keys import derive_sequencer_key
from xrollup.model import Block, Entry
from xrollup.verify import seal_block, verify_block

SEQUENCER = derive_sequencer_key()


def run_seeded(
    seed: int, max_examples: int, shrink: bool = True
) -> Callable[[Callable[..., None]], None]:
    """Run a @given test under hypothesis with the pytest `seed`. `shrink=False`
    reports the first failing example as found: for long interactive histories,
    whose shrinking can outlast the test timeout."""

    def run(test: Callable[..., None]) -> None:
        phases = [p for p in Phase if shrink or p not in (Phase.shrink, Phase.explain)]
        configured = settings(
            max_examples=max_examples,
            deadline=None,
            database=None,
            print_blob=True,
            phases=phases,
            suppress_health_check=[HealthCheck.too_slow],
        )(test)
        hypothesis.seed(seed)(configured)()

    return run


def seal(height: int, parent: bytes, entries: Sequence[Entry], genesis: Genesis) -> Block:
    """The next block of these entries, sealed with the dev sequencer key and
    verified as a node verifies it."""
    genesis_hash = compute_genesis_hash(genesis)
    msg = seal_block(
        [encode_entry(e) for e in entries],
        height,
        parent,
        1_700_000_000_000 + height,
        genesis,
        genesis_hash,
        SEQUENCER,
    )
    return verify_block(msg, genesis, genesis_hash, height, parent)


__all__ = ["decision", "run_seeded", "seal", "signed_vote"]

"""The decision rule as a refusal (xrollup/decisions.py) and on the node
(rollup_node/core/protocol.py through apply_block). The sequencer is not trusted
for atomicity: a logged decision that is not the one the counted votes give at
its place in the log is refused with its whole block, and a vote counts only
when it is signed by the rollup's genesis vote key, bound to this genesis and to
the bundle's height, and is that rollup's first. Nodes derive the decisions the
log omits, deadline aborts included. A refused block changes nothing: apply_block
raises, and its writes are only ever returned."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import pytest
import statesupport
from statesupport import (
    ALICE,
    BOB,
    DAVE,
    ETH_GENESIS,
    GENESIS,
    USDC_GENESIS,
    Chain,
    decision,
    signed_vote,
    transfer,
)

from rollup_node.core import bundles, protocol
from rollup_node.core.execute import apply_block
from rollup_node.core.state import DEADLINE, OPEN, State, deadline_key
from xrollup.blocks import BlockRefused, RefusalCode
from xrollup.client import build_bundle
from xrollup.codec import decode_bundle
from xrollup.decisions import (
    DecisionSpec,
    OpenBundle,
    compute_decision,
    is_counted_vote,
    open_bundle,
    record_vote,
    validate_decision,
)
from xrollup.genesis import Limits
from xrollup.keys import derive_rollup_vote_key
from xrollup.model import Bundle, BundleVote, Entry, Leg, ReasonCode, Signature, Transfer, Vote
from xrollup.numeric import Amount, Height

B1 = b"\x01" * 32
BOTH = ("alpha", "beta")
NONE, ALL_YES, VOTED_NO, DEADLINE_CODE = (
    ReasonCode.NONE,
    ReasonCode.ALL_YES,
    ReasonCode.VOTED_NO,
    ReasonCode.DEADLINE,
)
SHORT = dataclasses.replace(GENESIS, limits=dataclasses.replace(Limits(), bundle_deadline_blocks=3))


def yes(bundle_id: bytes = B1, height: int = 5) -> BundleVote:
    return BundleVote(bundle_id, True, NONE, Height(height))


def no(bundle_id: bytes = B1, height: int = 5) -> BundleVote:
    return BundleVote(bundle_id, False, ReasonCode.INSUFFICIENT_FUNDS, Height(height))


def with_votes(b: OpenBundle, *votes: tuple[str, BundleVote]) -> OpenBundle:
    for rollup, v in votes:
        counted = record_vote(b, rollup, v)
        assert counted is not None
        b = counted
    return b


# ---------------------------------------------------------------- the rule's refusals


def refusal(b: OpenBundle | None, commit: bool, code: ReasonCode, height: int) -> str:
    with pytest.raises(BlockRefused) as err:
        validate_decision(b, decision(B1, commit, code), height)
    assert (err.value.code, err.value.height) == (RefusalCode.BAD_DECISION, height)
    return str(err.value)


def test_a_commit_contradicting_a_no_is_refused() -> None:
    b = with_votes(open_bundle(B1, BOTH, 5, 10), ("alpha", yes()), ("beta", no()))
    assert "contradicts the logged votes, which give abort (VOTED_NO)" in refusal(
        b, True, ALL_YES, 6
    )
    validate_decision(b, decision(B1, False, VOTED_NO), 6)  # the rule's decision passes


def test_a_commit_with_a_vote_missing_before_the_deadline_is_refused() -> None:
    b = with_votes(open_bundle(B1, BOTH, 5, 10), ("alpha", yes()))
    text = refusal(b, True, ALL_YES, 14)
    assert "no vote yet from beta and the deadline 15 has not passed" in text
    # at the deadline the rule gives an abort, never a commit
    assert "contradicts" in refusal(b, True, ALL_YES, 15)
    validate_decision(b, decision(B1, False, DEADLINE_CODE), 15)


def test_an_early_abort_with_a_vote_missing_is_refused() -> None:
    b = open_bundle(B1, BOTH, 5, 10)
    for code in (VOTED_NO, DEADLINE_CODE):
        assert "no vote yet from alpha, beta" in refusal(b, False, code, 14)


def test_a_decision_before_its_bundle_or_a_second_one_is_refused() -> None:
    assert "no undecided bundle with that id" in refusal(None, True, ALL_YES, 3)
    assert "no undecided bundle with that id" in refusal(None, False, VOTED_NO, 3)


def test_an_abort_while_every_vote_is_yes_is_refused() -> None:
    b = with_votes(open_bundle(B1, BOTH, 5, 10), ("alpha", yes()), ("beta", yes()))
    for code in (VOTED_NO, DEADLINE_CODE, ALL_YES):
        text = refusal(b, False, code, 6)
        assert "which give commit (ALL_YES)" in text
    # even at the deadline: the votes are complete, the rule commits
    assert "which give commit (ALL_YES)" in refusal(b, False, DEADLINE_CODE, 15)
    # and a commit must carry the rule's code
    assert "which give commit (ALL_YES)" in refusal(b, True, DEADLINE_CODE, 6)


def test_compute_decision_gives_the_rule() -> None:
    b = open_bundle(B1, BOTH, 5, 10)
    assert compute_decision(b, 14) is None
    assert compute_decision(b, 15) == DecisionSpec(B1, False, DEADLINE_CODE)
    a = with_votes(b, ("alpha", yes()))
    assert compute_decision(a, 6) is None
    assert compute_decision(with_votes(a, ("beta", yes())), 6) == DecisionSpec(B1, True, ALL_YES)
    assert compute_decision(with_votes(b, ("beta", no())), 6) == DecisionSpec(B1, False, VOTED_NO)


# ---------------------------------------------------------------- votes that do not count


def test_only_the_first_vote_of_an_involved_rollup_at_the_bundles_height_counts() -> None:
    b = open_bundle(B1, BOTH, 5, 10)
    assert record_vote(b, "gamma", yes()) is None  # not one of its rollups
    assert record_vote(b, "alpha", yes(height=4)) is None  # bound to another height
    first = record_vote(b, "alpha", no())
    assert first is not None
    assert record_vote(first, "alpha", yes()) is None  # a second vote of alpha
    assert first.vote_of("alpha") == (False, ReasonCode.INSUFFICIENT_FUNDS)


def test_a_vote_counts_only_when_signed_by_its_rollups_key_for_this_genesis() -> None:
    good = signed_vote("alpha", 5, [yes()])
    assert is_counted_vote(good, GENESIS)

    flipped = bytearray(good.signature.signature)
    flipped[10] ^= 1
    bad_signature = dataclasses.replace(
        good, signature=Signature(good.signature.public_key, bytes(flipped))
    )
    not_counted = {
        "wrong genesis hash": signed_vote("alpha", 5, [yes()], genesis_hash=b"\x09" * 32),
        "other chain id": signed_vote("alpha", 5, [yes()], chain_id="another-chain"),
        "key of another rollup": signed_vote(
            "alpha", 5, [yes()], key=derive_rollup_vote_key("beta")
        ),
        "an account's key": signed_vote("alpha", 5, [yes()], key=ALICE),
        "bad signature": bad_signature,
        "body altered after signing": dataclasses.replace(
            good, body_bytes=signed_vote("alpha", 5, [no()]).body_bytes
        ),
        "unknown rollup": signed_vote("gamma", 5, [yes()], key=derive_rollup_vote_key("gamma")),
    }
    for what, vote in not_counted.items():
        assert not is_counted_vote(vote, GENESIS), what


# ---------------------------------------------------------------- on the node


def transfers(nonce: int = 1, amount: int = 5_000_000) -> Bundle:
    legs = [
        Leg("alpha", ALICE.address, Transfer(DAVE.address, "USDC", Amount(amount))),
        Leg("beta", BOB.address, Transfer(DAVE.address, "ETH", Amount(7))),
    ]
    return decode_bundle(build_bundle(legs, [ALICE, BOB], 100, nonce=nonce))


class Pair(statesupport.Pair):
    def refuse(self, *entries: Entry, rollups: Sequence[str] = BOTH) -> list[str]:  # type: ignore[override]
        """Each rollup named refuses the next block carrying `entries` as a bad
        decision (apply_block raises, nothing is written); the messages."""
        refusals = super().refuse(*entries, rollups=rollups)
        assert {e.code for e in refusals} == {RefusalCode.BAD_DECISION}
        return [str(e) for e in refusals]

    def is_open(self, bundle_id: bytes) -> tuple[bool, bool]:
        return (
            protocol.get_open(State(self.alpha.state), bundle_id) is not None,
            protocol.get_open(State(self.beta.state), bundle_id) is not None,
        )


def honest_votes(b: Bundle, height: int, alpha_yes: bool = True) -> list[Vote]:
    alpha = yes(b.id, height) if alpha_yes else no(b.id, height)
    return [signed_vote("alpha", height, [alpha]), signed_vote("beta", height, [yes(b.id, height)])]


def test_the_node_tracks_every_bundle_and_derives_a_commit_from_the_logged_votes() -> None:
    p = Pair()
    b = transfers()
    p.apply(b)
    for chain in (p.alpha, p.beta):
        tracked = protocol.get_open(State(chain.state), b.id)
        assert tracked == open_bundle(b.id, BOTH, 1, GENESIS.limits.bundle_deadline_blocks)
        assert deadline_key(tracked.deadline, b.id) in chain.state.items

    a_out, b_out = p.apply(*honest_votes(b, 1))  # the votes, and no decision

    assert [(r.id, r.status, r.code) for r in a_out.finished] == [
        (b.id, bundles.COMMITTED, ALL_YES)
    ]
    assert [r.status for r in b_out.finished] == [bundles.COMMITTED]
    assert p.alpha.balance(DAVE, "USDC") == USDC_GENESIS + 5_000_000
    assert p.is_open(b.id) == (False, False)
    assert not any(k.startswith((OPEN, DEADLINE)) for k in p.alpha.state.items)
    # the sequencer's late decision is now a second one: refused
    p.refuse(decision(b.id, True))


def test_a_vote_in_one_block_and_the_other_later_commits_when_complete() -> None:
    p = Pair()
    b = transfers()
    p.apply(b)
    alpha_vote, beta_vote = honest_votes(b, 1)

    a_out, _ = p.apply(alpha_vote)
    assert a_out.finished == () and p.is_open(b.id) == (True, True)
    a_out, _ = p.apply(beta_vote)
    assert [r.status for r in a_out.finished] == [bundles.COMMITTED]


def test_a_deadline_abort_with_no_decision_logged() -> None:
    p = Pair(SHORT)
    b = transfers()
    p.apply(b)  # height 1, deadline 4
    p.apply(signed_vote("alpha", 1, [yes(b.id, 1)]))  # beta's vote never arrives
    a_out, _ = p.apply()
    assert a_out.finished == () and p.is_open(b.id) == (True, True)

    a_out, b_out = p.apply()  # height 4

    assert [(r.id, r.status, r.code, r.decision_height) for r in a_out.finished] == [
        (b.id, bundles.ABORTED, DEADLINE_CODE, 4)
    ]
    assert [r.status for r in b_out.finished] == [bundles.ABORTED]
    assert p.alpha.balance(ALICE, "USDC") == USDC_GENESIS  # the escrow came back
    assert p.is_open(b.id) == (False, False)
    # a late vote or decision changes nothing / is refused
    a_out, _ = p.apply(signed_vote("beta", 1, [yes(b.id, 1)]))
    assert a_out.finished == ()
    p.refuse(decision(b.id, True))


def test_a_logged_decision_the_votes_do_not_give_refuses_the_block() -> None:
    p = Pair()
    b = transfers()
    p.apply(b)
    alpha_vote, beta_vote = honest_votes(b, 1)
    no_vote = signed_vote("alpha", 1, [no(b.id, 1)])

    cases = {
        "commit with a vote missing": ([alpha_vote], True, ALL_YES, "no vote yet from beta"),
        "commit with no votes": ([], True, ALL_YES, "no vote yet from alpha, beta"),
        "commit contradicting a no": ([no_vote, beta_vote], True, ALL_YES, "contradicts"),
        "abort while every vote is yes": (
            [alpha_vote, beta_vote],
            False,
            VOTED_NO,
            "which give commit (ALL_YES)",
        ),
        "deadline abort before the deadline": ([], False, DEADLINE_CODE, "no vote yet"),
    }
    for what, (votes, commit, code, words) in cases.items():
        for message in p.refuse(*votes, decision(b.id, commit, code)):
            assert words in message, what
    assert p.is_open(b.id) == (True, True)
    assert p.alpha.height == 1  # nothing applied

    a_out, _ = p.apply(alpha_vote, beta_vote, decision(b.id, True))  # the honest block
    assert [r.status for r in a_out.finished] == [bundles.COMMITTED]


def test_a_decision_before_its_bundle_changes_nothing() -> None:
    # A node judges the decisions of the bundles it tracks (a leg on its rollup);
    # one on an id not ordered yet it cannot place (a node on a filtered stream
    # never sees other rollups' bundles), so it ignores it, and the bundle, once
    # ordered, is decided by its votes. The log's rule (devnet check) refuses it.
    p = Pair()
    b = transfers()
    p.apply(decision(b.id, True, ALL_YES), b)
    assert p.is_open(b.id) == (True, True)
    p.apply(signed_vote("alpha", 1, [no(b.id, 1)]), decision(b.id, False, VOTED_NO))
    assert p.is_open(b.id) == (False, False)


def test_votes_that_do_not_count_cannot_make_a_commit() -> None:
    p = Pair()
    b = transfers()
    p.apply(b)
    alpha_vote, _ = honest_votes(b, 1)
    forged_beta = {
        "signed with alpha's key": signed_vote("beta", 1, [yes(b.id, 1)], key=ALICE),
        "key of another rollup": signed_vote(
            "beta", 1, [yes(b.id, 1)], key=derive_rollup_vote_key("alpha")
        ),
        "wrong genesis hash": signed_vote("beta", 1, [yes(b.id, 1)], genesis_hash=bytes(32)),
        "wrong bundle height": signed_vote("beta", 1, [yes(b.id, 2)]),
    }
    for what, vote in forged_beta.items():
        for message in p.refuse(alpha_vote, vote, decision(b.id, True)):
            assert "no vote yet from beta" in message, what
    # nor does a second vote turn alpha's no into a yes
    first_no = signed_vote("alpha", 1, [no(b.id, 1)])
    _, beta_vote = honest_votes(b, 1)
    p.refuse(first_no, alpha_vote, beta_vote, decision(b.id, True))
    # the forged votes are ignored when the block carries the rule's decision
    p.apply(*forged_beta.values(), first_no, alpha_vote, beta_vote, decision(b.id, False))
    assert p.alpha.balance(ALICE, "USDC") == USDC_GENESIS  # nothing moved
    assert p.beta.balance(BOB, "ETH") == ETH_GENESIS


def test_a_commit_of_a_bundle_this_rollup_voted_no_on_is_refused_by_it() -> None:
    # Only a compromised vote key can get here (a yes signed by beta's key while
    # beta's node voted no): the rule commits, beta refuses the block rather than
    # apply a commit it never agreed to.
    p = Pair()
    b = transfers(amount=USDC_GENESIS + 1)  # alpha votes no
    a_out, _ = p.apply(b)
    assert not a_out.votes[0].yes
    compromised = signed_vote("alpha", 1, [yes(b.id, 1)])  # alpha's key, a yes
    _, beta_vote = honest_votes(b, 1)

    (message,) = p.refuse(compromised, beta_vote, decision(b.id, True), rollups=("alpha",))

    assert "which this rollup voted no on" in message
    p.beta.apply([compromised, beta_vote, decision(b.id, True)])  # beta follows the rule


def test_a_refused_block_writes_nothing_even_after_earlier_entries_applied() -> None:
    # The refusal comes after a transfer and a bundle of the same block were run:
    # their writes lived only in the returned State and are dropped with the error.
    chain = Chain("alpha")
    b = transfers()
    pay = transfer(ALICE, BOB.address, "USDC", 1)
    before = dict(chain.state.items)
    block = chain.next_block([pay, b, decision(b.id, True)])

    with pytest.raises(BlockRefused):
        apply_block(chain.state, block, "alpha", GENESIS)

    assert chain.state.items == before and chain.height == 0

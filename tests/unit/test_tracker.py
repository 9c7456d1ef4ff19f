"""The shared decision rule (xrollup/decisions.py) over the sequencer's in-memory
table (BundleTracker), pure: commit once every involved rollup has a counted
yes, abort on the first counted no, abort at the deadline h + K when a vote is
missing; a second vote, a vote from an uninvolved rollup and a vote bound to
another height do not count, and a bundle is decided once."""

from __future__ import annotations

import pytest

from xrollup.blocks import BlockRefused, RefusalCode, compute_decision_id
from xrollup.decisions import BundleTracker, DecisionSpec, open_bundle, record_vote
from xrollup.model import BundleVote, Decision, ReasonCode
from xrollup.numeric import Height

B1, B2, B3 = b"\x01" * 32, b"\x02" * 32, b"\x03" * 32
BOTH = ("alpha", "beta")
NONE, ALL_YES, VOTED_NO, DEADLINE = (
    ReasonCode.NONE,
    ReasonCode.ALL_YES,
    ReasonCode.VOTED_NO,
    ReasonCode.DEADLINE,
)


def yes(bundle_id: bytes, height: int) -> BundleVote:
    return BundleVote(bundle_id, True, NONE, Height(height))


def no(
    bundle_id: bytes, height: int, code: ReasonCode = ReasonCode.INSUFFICIENT_FUNDS
) -> BundleVote:
    return BundleVote(bundle_id, False, code, Height(height))


def logged(bundle_id: bytes, commit: bool, code: ReasonCode) -> Decision:
    return Decision(compute_decision_id(bundle_id, commit, code), bundle_id, commit, code)


def tracker(deadline: int = 10) -> BundleTracker:
    return BundleTracker(deadline)


def test_commit_once_every_rollup_voted_yes() -> None:
    t = tracker()
    t.observe_bundle(B1, BOTH, height=5)
    t.observe_vote("alpha", [yes(B1, 5)])
    assert t.decide(6) == []  # beta has not voted
    assert B1 in t.open
    t.observe_vote("beta", [yes(B1, 5)])
    assert t.decide(7) == [DecisionSpec(B1, True, ALL_YES)]
    assert B1 not in t.open
    assert t.decide(8) == []  # decided once


def test_abort_on_the_first_no_without_waiting_for_the_rest() -> None:
    t = tracker()
    t.observe_bundle(B1, BOTH, height=5)
    t.observe_vote("beta", [no(B1, 5, ReasonCode.MARGIN)])
    assert t.decide(6) == [DecisionSpec(B1, False, VOTED_NO)]
    assert t.open == {}
    # alpha's late yes changes nothing: the bundle is no longer open
    t.observe_vote("alpha", [yes(B1, 5)])
    assert t.decide(7) == []


def test_a_no_wins_over_a_yes_in_the_same_block() -> None:
    t = tracker()
    t.observe_bundle(B1, BOTH, height=5)
    t.observe_vote("alpha", [yes(B1, 5)])
    t.observe_vote("beta", [no(B1, 5)])
    assert t.decide(6) == [DecisionSpec(B1, False, VOTED_NO)]


def test_deadline_abort_at_h_plus_k_and_not_before() -> None:
    t = tracker(deadline=10)
    t.observe_bundle(B1, BOTH, height=5)
    t.observe_vote("alpha", [yes(B1, 5)])
    assert t.open[B1].deadline == 15
    for h in range(5, 15):
        assert t.decide(h) == [], f"decided early at {h}"
    assert t.decide(15) == [DecisionSpec(B1, False, DEADLINE)]
    assert t.open == {}


def test_deadline_with_no_vote_at_all() -> None:
    t = tracker(deadline=3)
    t.observe_bundle(B1, BOTH, height=1)
    assert t.decide(3) == []
    assert t.decide(4) == [DecisionSpec(B1, False, DEADLINE)]


def test_votes_complete_at_the_deadline_still_commit() -> None:
    # The rule looks at the votes first: a yes from every rollup logged in the
    # deadline block itself commits.
    t = tracker(deadline=3)
    t.observe_bundle(B1, BOTH, height=1)
    t.observe_vote("alpha", [yes(B1, 1)])
    t.observe_vote("beta", [yes(B1, 1)])
    assert t.decide(4) == [DecisionSpec(B1, True, ALL_YES)]


def test_second_vote_of_a_rollup_is_ignored() -> None:
    t = tracker()
    t.observe_bundle(B1, BOTH, height=5)
    t.observe_vote("alpha", [yes(B1, 5)])
    t.observe_vote("alpha", [no(B1, 5)])  # ignored: the first vote counts
    assert t.open[B1].votes == (("alpha", True, NONE),)
    t.observe_vote("beta", [yes(B1, 5)])
    (d,) = t.decide(6)
    assert d.commit

    t.observe_bundle(B2, BOTH, height=6)
    t.observe_vote("beta", [no(B2, 6)])
    t.observe_vote("beta", [yes(B2, 6)])  # ignored: cannot turn a no into a yes
    t.observe_vote("alpha", [yes(B2, 6)])
    assert t.decide(7) == [DecisionSpec(B2, False, VOTED_NO)]


def test_vote_from_an_uninvolved_rollup_is_ignored() -> None:
    t = tracker(deadline=4)
    t.observe_bundle(B1, ("alpha",), height=5)
    t.observe_vote("beta", [no(B1, 5)])  # beta has no leg in B1
    assert t.open[B1].votes == ()
    assert t.decide(6) == []
    t.observe_vote("alpha", [yes(B1, 5)])
    assert t.decide(7) == [DecisionSpec(B1, True, ALL_YES)]


def test_a_vote_bound_to_another_height_is_ignored() -> None:
    # A vote names the height that ordered its bundle: a vote on an earlier
    # ordering of the same id (or a made-up one) does not count.
    b = open_bundle(B1, BOTH, 5, 10)
    assert record_vote(b, "alpha", yes(B1, 4)) is None
    assert record_vote(b, "alpha", yes(B1, 6)) is None
    counted = record_vote(b, "alpha", yes(B1, 5))
    assert counted is not None and counted.vote_of("alpha") == (True, NONE)
    assert b.votes == ()  # records are immutable: the original is unchanged

    t = tracker()
    t.observe_bundle(B1, BOTH, height=5)
    t.observe_vote("alpha", [yes(B1, 4)])
    t.observe_vote("beta", [no(B1, 6)])
    assert t.open[B1].votes == () and t.decide(6) == []


def test_votes_on_unknown_or_decided_bundles_are_ignored() -> None:
    t = tracker()
    t.observe_vote("alpha", [yes(B3, 1)])  # never ordered
    assert t.open == {} and t.decide(1) == []
    t.observe_bundle(B1, ("alpha",), height=1)
    t.observe_vote("alpha", [yes(B1, 1)])
    t.observe_decision(logged(B1, True, ALL_YES), 1)  # decided in the log
    assert t.open == {}
    t.observe_vote("alpha", [yes(B1, 1)])
    assert t.decide(2) == []


def test_one_vote_message_covers_several_bundles_decided_in_log_order() -> None:
    t = tracker()
    t.observe_bundle(B2, BOTH, height=3)
    t.observe_bundle(B1, BOTH, height=3)
    t.observe_vote("alpha", [yes(B1, 3), yes(B2, 3)])
    t.observe_vote("beta", [yes(B1, 3), no(B2, 3, ReasonCode.EXPIRED)])
    assert t.decide(4) == [DecisionSpec(B2, False, VOTED_NO), DecisionSpec(B1, True, ALL_YES)]


def test_a_bundle_observed_twice_keeps_its_first_height() -> None:
    t = tracker(deadline=5)
    t.observe_bundle(B1, ("beta", "alpha", "beta"), height=2)
    t.observe_bundle(B1, BOTH, height=4)
    assert t.open[B1].rollups == BOTH
    assert (t.open[B1].height, t.open[B1].deadline) == (2, 7)
    assert t.decide(6) == []
    assert [d.bundle_id for d in t.decide(7)] == [B1]


def test_observe_decision_refuses_what_the_votes_do_not_give() -> None:
    t = tracker()
    t.observe_bundle(B1, BOTH, height=5)
    t.observe_vote("alpha", [yes(B1, 5)])
    t.observe_vote("beta", [no(B1, 5)])
    for wrong in (logged(B1, True, ALL_YES), logged(B1, False, DEADLINE)):
        with pytest.raises(BlockRefused, match="contradicts the logged votes") as err:
            t.observe_decision(wrong, 6)
        assert (err.value.code, err.value.height) == (RefusalCode.BAD_DECISION, 6)
        assert B1 in t.open  # a refused decision changes nothing
    t.observe_decision(logged(B1, False, VOTED_NO), 6)
    assert t.open == {}

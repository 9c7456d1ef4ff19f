"""The sequencer's bundle decisions (xrollup/decisions.py), pure: commit once
every involved rollup voted yes, abort on the first no, abort at the deadline when
a vote is missing; a second vote and a vote from an uninvolved rollup are ignored,
and a decided bundle is decided once."""

from __future__ import annotations

from xrollup.decisions import BundleTracker, DecisionSpec

B1, B2, B3 = b"\x01" * 32, b"\x02" * 32, b"\x03" * 32
BOTH = ("alpha", "beta")


def tracker(deadline: int = 10) -> BundleTracker:
    return BundleTracker(deadline)


def test_commit_once_every_rollup_voted_yes() -> None:
    t = tracker()
    t.observe_bundle(B1, BOTH, height=5)
    t.observe_vote("alpha", [(B1, True, "")])
    assert t.decide(6) == []  # beta has not voted
    assert B1 in t.open
    t.observe_vote("beta", [(B1, True, "")])
    assert t.decide(7) == [DecisionSpec(B1, True, "every rollup voted yes")]
    assert B1 not in t.open
    assert t.decide(8) == []  # decided once


def test_abort_on_the_first_no_without_waiting_for_the_rest() -> None:
    t = tracker()
    t.observe_bundle(B1, BOTH, height=5)
    t.observe_vote("beta", [(B1, False, "legs[1] on beta: margin too thin")])
    (d,) = t.decide(6)
    assert d.bundle_id == B1 and not d.commit
    assert d.reason == "beta voted no: legs[1] on beta: margin too thin"
    assert t.open == {}
    # alpha's late yes changes nothing: the bundle is no longer open
    t.observe_vote("alpha", [(B1, True, "")])
    assert t.decide(7) == []


def test_a_no_wins_over_a_yes_in_the_same_block() -> None:
    t = tracker()
    t.observe_bundle(B1, BOTH, height=5)
    t.observe_vote("alpha", [(B1, True, "")])
    t.observe_vote("beta", [(B1, False, "insufficient ETH")])
    (d,) = t.decide(6)
    assert not d.commit and "beta voted no" in d.reason


def test_deadline_abort_names_the_missing_rollup_and_not_before() -> None:
    t = tracker(deadline=10)
    t.observe_bundle(B1, BOTH, height=5)
    t.observe_vote("alpha", [(B1, True, "")])
    for h in range(6, 15):
        assert t.decide(h) == [], f"decided early at {h}"
    (d,) = t.decide(15)
    assert not d.commit
    assert d.reason == "deadline height 15 passed with no vote from beta"
    assert t.open == {}


def test_deadline_with_no_vote_at_all_names_both() -> None:
    t = tracker(deadline=3)
    t.observe_bundle(B1, BOTH, height=1)
    (d,) = t.decide(4)
    assert d.reason == "deadline height 4 passed with no vote from alpha, beta"


def test_second_vote_of_a_rollup_is_ignored() -> None:
    t = tracker()
    t.observe_bundle(B1, BOTH, height=5)
    t.observe_vote("alpha", [(B1, True, "")])
    t.observe_vote("alpha", [(B1, False, "changed my mind")])  # ignored: first vote counts
    assert t.open[B1].votes == {"alpha": (True, "")}
    t.observe_vote("beta", [(B1, True, "")])
    (d,) = t.decide(6)
    assert d.commit

    t.observe_bundle(B2, BOTH, height=6)
    t.observe_vote("beta", [(B2, False, "no")])
    t.observe_vote("beta", [(B2, True, "")])  # ignored: cannot turn a no into a yes
    t.observe_vote("alpha", [(B2, True, "")])
    (d,) = t.decide(7)
    assert not d.commit and "beta voted no" in d.reason


def test_vote_from_an_uninvolved_rollup_is_ignored() -> None:
    t = tracker(deadline=4)
    t.observe_bundle(B1, ("alpha",), height=5)
    t.observe_vote("beta", [(B1, False, "not mine")])  # beta has no leg in B1
    assert t.open[B1].votes == {}
    assert t.decide(6) == []
    t.observe_vote("alpha", [(B1, True, "")])
    assert t.decide(7) == [DecisionSpec(B1, True, "every rollup voted yes")]


def test_votes_on_unknown_or_decided_bundles_are_ignored() -> None:
    t = tracker()
    t.observe_vote("alpha", [(B3, True, "")])  # never ordered
    assert t.open == {} and t.decide(1) == []
    t.observe_bundle(B1, ("alpha",), height=1)
    t.observe_decision(B1)  # decided in the log (e.g. replayed after a restart)
    t.observe_vote("alpha", [(B1, True, "")])
    assert t.decide(2) == []


def test_one_vote_message_covers_several_bundles_decided_in_log_order() -> None:
    t = tracker()
    t.observe_bundle(B2, BOTH, height=3)
    t.observe_bundle(B1, BOTH, height=3)
    t.observe_vote("alpha", [(B1, True, ""), (B2, True, "")])
    t.observe_vote("beta", [(B1, True, ""), (B2, False, "expired")])
    assert [(d.bundle_id, d.commit) for d in t.decide(4)] == [(B2, False), (B1, True)]


def test_a_bundle_observed_twice_keeps_its_first_height() -> None:
    t = tracker(deadline=5)
    t.observe_bundle(B1, ("beta", "alpha", "beta"), height=2)
    t.observe_bundle(B1, BOTH, height=4)
    assert t.open[B1].rollups == BOTH
    assert t.open[B1].deadline == 7
    assert t.decide(6) == []
    assert [d.bundle_id for d in t.decide(7)] == [B1]

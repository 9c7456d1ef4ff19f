"""Property of the bundle protocol under a faulty sequencer: random interleavings
of cross-rollup transfer bundles (some failing on one side), votes and decisions,
fed to an alpha node and a beta node (the pure state machine,
rollup_node/core/execute.apply_block, on blocks sealed and verified as a node
verifies them).

- votes: honest ones, which are the votes the alpha and beta chains actually gave
  when they prepared the bundles (signed with the dev vote keys), logged late,
  in any order, or never; and adversarial ones: signed by a wrong key, bound to
  a wrong bundle height, bound to another genesis, duplicated, and an honest
  vote flipped (yes <-> no) and signed with a wrong key;
- decisions: honest ones, from the sequencer's own BundleTracker.decide at the
  end of a block (sometimes omitted: the nodes derive them), and adversarial
  ones: commit or abort whatever the votes say, decisions before their bundle,
  second decisions; and bundles ordered again. A decision on an id no node has
  seen ordered yet is ignored by the nodes (a node judges the decisions of the
  bundles it tracks: those with a leg on its rollup), refused by the log's rule.

A block either applies on both rollups or is refused (BlockRefused) by both and
dropped; which of the two is predicted by a small model of the rule written here
independently of xrollup/decisions.py, and agrees with the sequencer's tracker.

Checked: every bundle finished on alpha and beta is finished the same way on both
(I1), each outcome (commit or abort, its height and reason code) is the one the
rule gives, and per asset supply is conserved on both after every block (I2).

Runs hypothesis with the `seed` fixture's seed (printed; replay with
XR_SEED=<seed>) and prints a reproduction blob on failure."""

from __future__ import annotations

import copy
import dataclasses
import functools
from dataclasses import dataclass, field

import pytest
from hypothesis import given, note
from hypothesis import strategies as st
from propsupport import decision, run_seeded, seal, signed_vote

from rollup_node.core import bundles
from rollup_node.core.execute import BlockOutcome, apply_block, apply_genesis
from rollup_node.core.state import MemoryState, State
from rollup_node.core.supply import compute_supply
from xrollup.blocks import GENESIS_PARENT, BlockRefused, RefusalCode
from xrollup.client import build_bundle
from xrollup.codec import decode_bundle
from xrollup.decisions import BundleTracker, is_counted_vote
from xrollup.genesis import Limits, compute_genesis_hash, dev_genesis
from xrollup.keys import Keypair, derive_dev_account, derive_rollup_vote_key
from xrollup.model import (
    Bundle,
    BundleVote,
    Decision,
    Entry,
    Leg,
    ReasonCode,
    Transfer,
    Vote,
)
from xrollup.numeric import Amount, Height

K = 4  # a short deadline, so that deadline aborts happen in short histories
GENESIS = dataclasses.replace(
    dev_genesis(), limits=dataclasses.replace(Limits(), bundle_deadline_blocks=K)
)
GENESIS_HASH = compute_genesis_hash(GENESIS)
OTHER_GENESIS_HASH = compute_genesis_hash(dev_genesis())  # same keys, another devnet
ROLLUPS = ("alpha", "beta")
ACCOUNTS = tuple(derive_dev_account(i) for i in range(4))
VOTE_KEYS = {r: derive_rollup_vote_key(r) for r in ROLLUPS}
BALANCE = 10**12  # each dev account's genesis balance of each asset on each rollup
ASSET = {"alpha": "USDC", "beta": "ETH"}
FAR = 10_000  # added to a bundle's height: a height no history here orders it at

# ---------------------------------------------------------------- bundles


@dataclass(frozen=True)
class BundleSpec:
    senders: tuple[int, int]  # (alpha leg, beta leg)
    to: tuple[int, int]
    amounts: tuple[int, int]
    nonce: int


@functools.cache
def make_bundle(spec: BundleSpec) -> Bundle:
    """Each distinct bundle is signed once per module (signing costs ~0.3 ms)."""
    legs = [
        Leg(
            rollup,
            ACCOUNTS[spec.senders[i]].address,
            Transfer(ACCOUNTS[spec.to[i]].address, ASSET[rollup], Amount(spec.amounts[i])),
        )
        for i, rollup in enumerate(ROLLUPS)
    ]
    signers = [ACCOUNTS[i] for i in sorted(set(spec.senders))]
    return decode_bundle(build_bundle(legs, signers, 1_000, nonce=spec.nonce))


# one leg in five spends more than its sender holds: that side votes no
amounts = st.integers(0, 4).flatmap(
    lambda i: st.just(2 * BALANCE) if i == 0 else st.integers(1, 10**6)
)


@st.composite
def bundle_specs(draw: st.DrawFn) -> BundleSpec:
    account = st.integers(0, len(ACCOUNTS) - 1)
    return BundleSpec(
        senders=(draw(account), draw(account)),
        to=(draw(account), draw(account)),
        amounts=(draw(amounts), draw(amounts)),
        nonce=draw(st.integers(0, 10**6)),
    )


# ---------------------------------------------------------------- votes


@dataclass(frozen=True)
class LoggedVote:
    """A vote entry and what the model may know of it: whether it is signed by its
    rollup's genesis vote key and bound to this genesis (it then counts for each
    bundle it names at that bundle's height, if it is the rollup's first)."""

    entry: Vote
    signed_ok: bool


def vote_entry(
    rollup: str,
    height: int,
    votes: list[BundleVote],
    key: Keypair | None = None,
    genesis_hash: bytes = GENESIS_HASH,
) -> LoggedVote:
    entry = signed_vote(rollup, height, votes, GENESIS, key=key, genesis_hash=genesis_hash)
    ok = (key is None or key == VOTE_KEYS[rollup]) and genesis_hash == GENESIS_HASH
    return LoggedVote(entry, ok)


def flipped(v: BundleVote) -> BundleVote:
    if v.yes:
        return BundleVote(v.bundle_id, False, ReasonCode.INSUFFICIENT_FUNDS, v.bundle_height)
    return BundleVote(v.bundle_id, True, ReasonCode.NONE, v.bundle_height)


# ---------------------------------------------------------------- the rule, as a model


@dataclass
class Tracked:
    height: int
    votes: dict[str, bool] = field(default_factory=dict)  # first counted vote per rollup


APPLY, IGNORE, REFUSE = "apply", "ignore", "refuse"


class RuleModel:
    """The decision rule of DESIGN.md, written out plainly: a vote counts when it
    is well signed for this genesis, names a tracked bundle at the height that
    ordered it, and is its rollup's first; a decision is due on a no (abort), on
    a yes from both rollups (commit) or at height + K (abort); a logged decision
    that is not the one due at its place is a refusal of the block."""

    def __init__(self) -> None:
        self.open: dict[bytes, Tracked] = {}
        # the first decision of each bundle id: (commit, code, height)
        self.first: dict[bytes, tuple[bool, ReasonCode, int]] = {}

    def bundle(self, bundle_id: bytes, height: int) -> None:
        self.open.setdefault(bundle_id, Tracked(height))

    def vote(self, logged: LoggedVote) -> None:
        if not logged.signed_ok:
            return
        rollup = logged.entry.body.rollup
        for v in logged.entry.body.votes:
            t = self.open.get(v.bundle_id)
            if t is not None and v.bundle_height == t.height and rollup not in t.votes:
                t.votes[rollup] = v.yes

    def due(self, t: Tracked, height: int) -> tuple[bool, ReasonCode] | None:
        if False in t.votes.values():
            return False, ReasonCode.VOTED_NO
        if len(t.votes) == len(ROLLUPS):
            return True, ReasonCode.ALL_YES
        if height >= t.height + K:
            return False, ReasonCode.DEADLINE
        return None

    def close(self, bundle_id: bytes, commit: bool, code: ReasonCode, height: int) -> None:
        del self.open[bundle_id]
        self.first.setdefault(bundle_id, (commit, code, height))

    def decision(self, d: Decision, height: int) -> str:
        """APPLY, IGNORE (a decision on an id never ordered so far: a node tracks
        only bundles it has seen, so it cannot judge it and it changes nothing; the
        log's rule and `devnet check` refuse it) or REFUSE (the block)."""
        t = self.open.get(d.bundle_id)
        if t is None and d.bundle_id not in self.first:
            return IGNORE
        if t is None or self.due(t, height) != (d.commit, d.code):
            return REFUSE
        self.close(d.bundle_id, d.commit, d.code, height)
        return APPLY

    def end_of_block(self, height: int) -> None:
        for bundle_id, t in sorted(self.open.items(), key=lambda kv: (kv[1].height, kv[0])):
            due = self.due(t, height)
            if due is not None:
                self.close(bundle_id, *due, height)


# ---------------------------------------------------------------- the nodes


class Node:
    """One rollup's state over the accepted blocks."""

    def __init__(self, rollup: str) -> None:
        self.rollup = rollup
        self.state = MemoryState()
        self.state.apply(apply_genesis(self.state, GENESIS, rollup).writes)
        self.minted = self.supply()

    def supply(self) -> dict[str, int]:
        report = compute_supply(self.state.items.items())
        for a in report.assets.values():
            assert a.conserved, f"{self.rollup}: {a} is not conserved"
        return {a.asset: a.minted for a in report.assets.values()}

    def record(self, bundle_id: bytes) -> bundles.BundleRecord | None:
        return bundles.get_record(State(self.state), bundle_id)


@dataclass
class World:
    alpha: Node = field(default_factory=lambda: Node("alpha"))
    beta: Node = field(default_factory=lambda: Node("beta"))
    model: RuleModel = field(default_factory=RuleModel)
    tracker: BundleTracker = field(default_factory=lambda: BundleTracker(K))
    height: int = 0
    parent: bytes = GENESIS_PARENT
    ordered: dict[bytes, Bundle] = field(default_factory=dict)  # by id, first ordering
    heights: dict[bytes, int] = field(default_factory=dict)  # id -> height of its tracking
    honest: dict[str, list[tuple[int, BundleVote]]] = field(
        default_factory=lambda: {r: [] for r in ROLLUPS}
    )  # votes the nodes gave, not logged yet
    logged: list[LoggedVote] = field(default_factory=list)  # honest votes logged so far
    own: dict[tuple[str, bytes], BundleVote] = field(default_factory=dict)  # each node's vote
    refused: int = 0
    applied: int = 0


def describe(block: list[Entry]) -> str:
    def one(e: Entry) -> str:
        if isinstance(e, Bundle):
            return f"bundle {e.id.hex()[:8]}"
        if isinstance(e, Vote):
            votes = ", ".join(
                f"{v.bundle_id.hex()[:8]}@{int(v.bundle_height)}:{'yes' if v.yes else 'no'}"
                for v in e.body.votes
            )
            return f"vote {e.body.rollup} [{votes}]"
        if isinstance(e, Decision):
            what = "commit" if e.commit else "abort"
            return f"{what} {e.bundle_id.hex()[:8]} {e.code.name}"
        return type(e).__name__

    return "; ".join(one(e) for e in block) or "(empty)"


def run_block(w: World, entries: list[Entry | LoggedVote], with_decisions: bool) -> bool:
    """Offer the next block to the sequencer's tracker, the model and both nodes.
    Either all accept it (True), or all refuse it and it is dropped (False)."""
    height = w.height + 1
    model, tracker = copy.deepcopy(w.model), copy.deepcopy(w.tracker)
    ok = True
    block: list[Entry] = []
    for item in entries:
        entry = item.entry if isinstance(item, LoggedVote) else item
        block.append(entry)
        if isinstance(entry, Bundle):
            model.bundle(entry.id, height)
            tracker.observe_bundle(entry.id, entry.rollups, height)
        elif isinstance(item, LoggedVote):
            model.vote(item)
            if is_counted_vote(item.entry, GENESIS):
                assert item.signed_ok
                tracker.observe_vote(item.entry.body.rollup, item.entry.body.votes)
            else:
                assert not item.signed_ok
        elif isinstance(entry, Decision) and ok:
            verdict = model.decision(entry, height)
            ok = verdict != REFUSE
            try:
                tracker.observe_decision(entry, height)
                assert verdict == APPLY, f"the tracker accepts a decision the model would {verdict}"
            except BlockRefused as e:
                assert verdict != APPLY, f"the tracker refuses a decision the model accepts: {e}"
    if ok:
        for spec in tracker.decide(height):  # what the sequencer appends
            if with_decisions:
                d = decision(spec.bundle_id, spec.commit, spec.code)
                block.append(d)
                assert model.decision(d, height)
        model.end_of_block(height)
        assert model.open.keys() == tracker.open.keys()

    note(f"block {height}: {describe(block)}{'' if ok else ' (refused by the rule)'}")
    sealed = seal(height, w.parent, block, GENESIS)
    outcomes: list[BlockOutcome] = []
    for node in (w.alpha, w.beta):
        before = dict(node.state.items)
        try:
            outcomes.append(apply_block(node.state, sealed, node.rollup, GENESIS))
        except BlockRefused as e:
            assert not ok, f"{node.rollup} refuses a block the rule accepts: {e}"
            assert e.code == RefusalCode.BAD_DECISION
            assert node.state.items == before
    if not ok:
        assert outcomes == [], "a node applies a block the rule refuses"
        w.refused += 1
        return False

    w.applied += 1
    w.model, w.tracker = model, tracker
    w.height, w.parent = height, sealed.hash
    for entry in block:
        if isinstance(entry, Bundle):
            w.ordered.setdefault(entry.id, entry)
    for item in entries:
        if isinstance(item, LoggedVote) and item.signed_ok:
            w.logged.append(item)
    for node, out in zip((w.alpha, w.beta), outcomes, strict=True):
        node.state.apply(out.writes)
        for v in out.votes:
            w.honest[node.rollup].append((height, v))
            w.own[(node.rollup, v.bundle_id)] = v
        node.supply()
    for bundle_id, t in w.model.open.items():
        w.heights[bundle_id] = t.height
    return True


# ---------------------------------------------------------------- drawing a block


def draw_block(data: st.DataObject, w: World) -> tuple[list[Entry | LoggedVote], bool]:
    items: list[Entry | LoggedVote] = []
    if data.draw(st.booleans(), label="prompt nodes"):
        # the nodes' votes of the last block arrive in this one, as they usually do
        for rollup in ROLLUPS:
            last = [v for h, v in w.honest[rollup] if h == w.height]
            if last:
                items.append(vote_entry(rollup, w.height, last))
                w.honest[rollup] = [(h, v) for h, v in w.honest[rollup] if h != w.height]
    for _ in range(data.draw(st.integers(0, 5), label="entries")):
        kind = data.draw(
            st.sampled_from(
                [
                    "bundle",
                    "bundle",
                    "honest",
                    "honest",
                    "honest",
                    "reorder",
                    "duplicate",
                    "wrong key",
                    "wrong height",
                    "other genesis",
                    "flipped",
                    "decision",
                    "early decision",
                ]
            ),
            label="kind",
        )
        known = sorted(w.ordered)
        if kind == "bundle":
            items.append(make_bundle(data.draw(bundle_specs(), label="bundle")))
        elif kind == "honest":
            rollup = data.draw(st.sampled_from(ROLLUPS), label="rollup")
            pending = w.honest[rollup]
            if not pending:
                continue
            # a node's votes of one block, or a single one, in any order
            first = data.draw(st.integers(0, len(pending) - 1), label="vote")
            h, _ = pending[first]
            take = [i for i, (hh, _) in enumerate(pending) if hh == h]
            if data.draw(st.booleans(), label="single"):
                take = [first]
            items.append(vote_entry(rollup, h, [pending[i][1] for i in take]))
            for i in reversed(take):
                del pending[i]
        elif kind == "duplicate" and w.logged:
            items.append(data.draw(st.sampled_from(w.logged), label="again"))
        elif kind == "reorder" and known:
            items.append(w.ordered[data.draw(st.sampled_from(known), label="reorder")])
        elif kind in ("wrong key", "wrong height", "other genesis", "flipped") and known:
            bundle_id = data.draw(st.sampled_from(known), label="target")
            rollup = data.draw(st.sampled_from(ROLLUPS), label="as")
            height = w.heights.get(bundle_id, 1)
            yes = data.draw(st.booleans(), label="yes")
            v = BundleVote(
                bundle_id,
                yes,
                ReasonCode.NONE if yes else ReasonCode.INSUFFICIENT_FUNDS,
                Height(height),
            )
            other = VOTE_KEYS["beta" if rollup == "alpha" else "alpha"]
            signer = data.draw(st.sampled_from(["other rollup", "an account"]), label="key")
            wrong = other if signer == "other rollup" else ACCOUNTS[0]
            if kind == "wrong key":
                items.append(vote_entry(rollup, height, [v], key=wrong))
            elif kind == "wrong height":
                far = dataclasses.replace(v, bundle_height=Height(height + FAR))
                items.append(vote_entry(rollup, height, [far]))
            elif kind == "other genesis":
                items.append(vote_entry(rollup, height, [v], genesis_hash=OTHER_GENESIS_HASH))
            else:
                mine = w.own.get((rollup, bundle_id))
                if mine is not None:
                    items.append(vote_entry(rollup, height, [flipped(mine)], key=wrong))
        elif kind == "decision" and known:
            bundle_id = data.draw(st.sampled_from(known), label="decide")
            commit = data.draw(st.booleans(), label="commit")
            code = data.draw(
                st.sampled_from([ReasonCode.ALL_YES, ReasonCode.VOTED_NO, ReasonCode.DEADLINE]),
                label="code",
            )
            items.append(decision(bundle_id, commit, code))
        elif kind == "early decision":
            # a decision for a bundle not ordered yet, maybe ordered later in the block
            b = make_bundle(data.draw(bundle_specs(), label="future"))
            commit = data.draw(st.booleans(), label="commit")
            items.append(
                decision(b.id, commit, ReasonCode.ALL_YES if commit else ReasonCode.VOTED_NO)
            )
            if data.draw(st.booleans(), label="then ordered"):
                items.append(b)
    return items, data.draw(st.integers(0, 3), label="sequencer decides") > 0


# ---------------------------------------------------------------- the property


def check_outcomes(w: World) -> None:
    for bundle_id in w.ordered:
        a, b = w.alpha.record(bundle_id), w.beta.record(bundle_id)
        assert a is not None and b is not None  # both legs: each node prepared it
        # I1: the same outcome on both rollups, at the same height
        assert (a.status, a.decision_height) == (b.status, b.decision_height)
        first = w.model.first.get(bundle_id)
        if first is None:
            assert a.status == bundles.PREPARED
            continue
        commit, code, height = first
        assert a.status == (bundles.COMMITTED if commit else bundles.ABORTED)
        assert a.decision_height == height
        for rollup, record in (("alpha", a), ("beta", b)):
            mine = w.own[(rollup, bundle_id)]
            assert record.vote == mine.yes
            if commit:
                assert mine.yes and record.code == ReasonCode.ALL_YES
            else:
                # a rollup that voted no keeps its own reason; the other the rule's
                assert record.code == (code if mine.yes else mine.code)


def test_a_faulty_sequencer_cannot_break_atomicity_or_conservation(seed: int) -> None:
    stats = {"applied": 0, "refused": 0, "committed": 0, "aborted": 0}

    @given(st.data())
    def check(data: st.DataObject) -> None:
        w = World()
        for _ in range(data.draw(st.integers(1, 12), label="blocks")):
            pending = copy.deepcopy(w.honest)
            items, with_decisions = draw_block(data, w)
            if not run_block(w, items, with_decisions):
                w.honest = pending  # the votes of a dropped block are sent again
        # let every open bundle reach its deadline
        for _ in range(K):
            run_block(w, [], data.draw(st.booleans(), label="decides"))
        assert w.model.open == {} and w.tracker.open == {}
        check_outcomes(w)
        assert w.alpha.supply() == w.alpha.minted and w.beta.supply() == w.beta.minted
        stats["applied"] += w.applied
        stats["refused"] += w.refused
        for commit, _, _ in w.model.first.values():
            stats["committed" if commit else "aborted"] += 1

    # Not shrunk: a failing history is reported as found, with the notes of each
    # block (shrinking interactive histories of this length outlasts the timeout).
    run_seeded(seed, max_examples=250, shrink=False)(check)
    print(f"blocks and outcomes over all examples: {stats}")
    # the history exercised what it is about
    assert min(stats.values()) > 0, stats


@pytest.mark.parametrize("rollup", ROLLUPS)
def test_the_model_counts_what_is_counted_vote_counts(rollup: str) -> None:
    # The model trusts the label of each vote it is given; the labels agree with
    # xrollup.decisions.is_counted_vote on each kind of vote the property logs.
    v = BundleVote(b"\x01" * 32, True, ReasonCode.NONE, Height(1))
    other = VOTE_KEYS["beta" if rollup == "alpha" else "alpha"]
    for logged in (
        vote_entry(rollup, 1, [v]),
        vote_entry(rollup, 1, [v], key=other),
        vote_entry(rollup, 1, [v], key=ACCOUNTS[0]),
        vote_entry(rollup, 1, [v], genesis_hash=OTHER_GENESIS_HASH),
    ):
        assert is_counted_vote(logged.entry, GENESIS) == logged.signed_ok

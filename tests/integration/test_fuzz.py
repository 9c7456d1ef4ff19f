"""I6 by fuzzing: hypothesis-driven bad input to every gRPC method of a real
devnet (sequencer, alpha, beta as processes). Malformed and oversized messages,
random bytes in signed bodies, bogus and mismatched signatures, replays,
expired and future submissions, absurd amounts (0, 2^64 - 1), unknown rollups
and assets, and arbitrary bytes sent as the serialized request through a
generic channel with identity serializers, so undecodable protobuf reaches the
server.

On every call: the answer is never UNKNOWN or INTERNAL, a refusal carries a
message, and a submission with a known defect gets that defect's status. After
every example the servers answer health SERVING. Nothing is written: a refused
submission's id is never found (GetSubmission NOT_FOUND, never in a block),
and a node's state root is unchanged by queries. Submissions that are
admissible however absurd (an option with strike 2^63 - 1, a vote signed by the
rollup's key on nothing) may be ordered; then they are in the chain at their
acknowledged place and the nodes go on applying blocks.

Profiles: FAST_EXAMPLES per target in the default run (raw bytes: half that
per method on each of the 25 method endpoints); SLOW_EXAMPLES under the `slow`
marker. Each target runs hypothesis with the `seed` fixture's seed
(printed; replay with XR_SEED=<seed>)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import grpc
import hypothesis
import pytest
from chainsupport import NEVER, assert_clean_log
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devnet import network
from devnet.manifest import Manifest
from xrollup.blocks import compute_id
from xrollup.client import CHANNEL_OPTIONS
from xrollup.genesis import DEV_CHAIN_ID, Limits, compute_genesis_hash, dev_genesis
from xrollup.keys import Keypair, derive_dev_account, derive_oracle_key, derive_rollup_vote_key
from xrollup.v1 import node_pb2 as npb
from xrollup.v1 import node_pb2_grpc as npb_grpc
from xrollup.v1 import sequencer_pb2 as spb
from xrollup.v1 import sequencer_pb2_grpc as spb_grpc
from xrollup.v1 import types_pb2 as pb

FAST_EXAMPLES = 60
SLOW_EXAMPLES = 1_000

S = grpc.StatusCode
OK = S.OK
INVALID = S.INVALID_ARGUMENT
UNAUTH = S.UNAUTHENTICATED
DENIED = S.PERMISSION_DENIED
PRECOND = S.FAILED_PRECONDITION
EXHAUSTED = S.RESOURCE_EXHAUSTED
NOT_FOUND = S.NOT_FOUND
REFUSALS = frozenset({INVALID, UNAUTH, DENIED, PRECOND, EXHAUSTED})
MAYBE = REFUSALS | {OK}  # random body bytes that happen to decode to an admissible one

LIMITS = Limits()
# The dev genesis with records kept for good: with retention on, the slow profile
# passes 10,000 blocks and pruning at due heights changes the roots of a quiet
# devnet, which the "a query changed the root" checks would take for a write.
FUZZ_GENESIS = replace(
    dev_genesis(), limits=replace(dev_genesis().limits, record_retention_blocks=0)
)
U64 = 2**64 - 1
ACCOUNTS: tuple[Keypair, ...] = tuple(derive_dev_account(i) for i in range(10))
ORACLE = derive_oracle_key()
VOTE_KEYS = {r: derive_rollup_vote_key(r) for r in ("alpha", "beta")}
ROLLUPS = ("alpha", "beta")
ASSETS = ("USDC", "ETH")
SEQ = "xrollup.v1.SequencerService"
NODE = "xrollup.v1.RollupNodeService"
SEQUENCER_METHODS = (
    "SubmitTransaction",
    "SubmitBundle",
    "SubmitBatch",
    "SubmitVote",
    "GetBlock",
    "StreamBlocks",
    "GetSubmission",
    "GetStatus",
    "SetPruneFloor",
)
NODE_METHODS = (
    "GetBalances",
    "GetReceipt",
    "GetStateRoot",
    "GetNodeStatus",
    "GetPrice",
    "GetBundle",
    "GetLien",
    "GetOption",
    "GetSupply",
    "GetAccount",
)
OVERSIZED = LIMITS.max_message_bytes + 1


# ---------------------------------------------------------------- the devnet under fuzz


@dataclass
class Outcome:
    code: grpc.StatusCode
    details: str
    response: Any = None


@dataclass
class Fuzzed:
    """A devnet and sync channels to it, and what the fuzz got written or refused."""

    manifest: Manifest
    channels: dict[str, grpc.Channel]
    refused: set[bytes] = field(default_factory=set)
    accepted: dict[bytes, tuple[int, int]] = field(default_factory=dict)
    chain_ids: dict[bytes, tuple[int, int]] = field(default_factory=dict)
    scanned_to: int = 0

    @property
    def seq(self) -> spb_grpc.SequencerServiceStub:
        return spb_grpc.SequencerServiceStub(self.channels["sequencer"])

    def node(self, rollup: str) -> npb_grpc.RollupNodeServiceStub:
        return npb_grpc.RollupNodeServiceStub(self.channels[rollup])

    def head(self) -> int:
        return int(self.seq.GetStatus(spb.GetStatusRequest(), timeout=5).height)

    def assert_serving(self) -> None:
        for name, channel in self.channels.items():
            r = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=5
            )
            assert r.status == health_pb2.HealthCheckResponse.SERVING, f"{name}: {r.status}"

    def raw(self, process: str, service: str, method: str) -> Callable[..., Any]:
        """The method with identity serializers: bytes in, bytes out."""
        return self.channels[process].unary_unary(f"/{service}/{method}")

    def raw_stream(self, method: str) -> Callable[..., Any]:
        return self.channels["sequencer"].unary_stream(f"/{SEQ}/{method}")

    def record(self, entry_id: bytes, out: Outcome) -> None:
        """Book a submission's answer: acknowledged ones must be where the ack
        says, refused ones must be nowhere."""
        if out.code == OK:
            where = (int(out.response.height), int(out.response.index))
            assert out.response.id == entry_id
            first = self.accepted.setdefault(entry_id, where)
            assert first == where, f"{entry_id.hex()} acknowledged at {first}, then at {where}"
            return
        self.refused.add(entry_id)
        if entry_id not in self.accepted:
            lookup = call(self.seq.GetSubmission, spb.GetSubmissionRequest(id=entry_id))
            assert lookup.code == NOT_FOUND, f"refused {entry_id.hex()}: GetSubmission {lookup}"

    def scan_chain(self) -> None:
        """Index every entry of the blocks not read yet."""
        head = self.head()
        if head <= self.scanned_to:
            return
        stream = self.seq.StreamBlocks(
            spb.StreamBlocksRequest(from_height=self.scanned_to + 1), timeout=60
        )
        try:
            for block in stream:
                h = int(block.header.height)
                for i, e in enumerate(block.entries):
                    kind = e.WhichOneof("kind")
                    if kind in ("tx", "bundle", "vote"):
                        entry_id = compute_id(getattr(e, kind).body)
                        assert entry_id not in self.chain_ids, f"{entry_id.hex()} ordered twice"
                        self.chain_ids[entry_id] = (h, i)
                self.scanned_to = h
                if h >= head:
                    break
        finally:
            stream.cancel()

    def assert_nothing_written(self) -> None:
        """Every submission in the chain was acknowledged to us where the chain
        has it (the nodes' votes aside), and no refused id is in it."""
        self.scan_chain()
        for entry_id, where in self.accepted.items():
            assert self.chain_ids.get(entry_id) == where, f"{entry_id.hex()}: ack {where}"
        written = (self.refused - set(self.accepted)) & set(self.chain_ids)
        assert not written, f"refused and yet ordered: {[i.hex() for i in written]}"

    def wait_nodes_applied(self, timeout: float = 30.0) -> None:
        """The nodes keep applying blocks (nothing admitted stopped them)."""
        head = self.head()
        deadline = time.monotonic() + timeout
        for rollup in ROLLUPS:
            while True:
                s = self.node(rollup).GetNodeStatus(npb.GetNodeStatusRequest(), timeout=5)
                if s.applied_height >= head:
                    break
                assert time.monotonic() < deadline, f"{rollup} stuck at {s.applied_height} < {head}"
                time.sleep(0.05)

    def wait_quiet(self, timeout: float = 30.0) -> None:
        """No bundle open on any node and every node at the head: state roots stay put."""
        deadline = time.monotonic() + timeout
        while True:
            self.wait_nodes_applied(timeout)
            supplies = [self.node(r).GetSupply(npb.GetSupplyRequest(), timeout=10) for r in ROLLUPS]
            if all(s.open_bundles == 0 for s in supplies):
                return
            assert time.monotonic() < deadline, "bundles still open"
            time.sleep(0.1)

    def assert_logs_clean(self) -> None:
        for p in self.manifest.processes:
            if p.role != network.PROXY:
                assert_clean_log(Path(p.log))


def call(fn: Callable[..., Any], request: Any, timeout: float = 10.0) -> Outcome:
    """One call; its status is never UNKNOWN or INTERNAL and a refusal says why."""
    try:
        out = Outcome(OK, "", fn(request, timeout=timeout))
    except grpc.RpcError as e:
        out = Outcome(e.code(), e.details() or "")
    assert out.code not in NEVER, f"{out.code.name}: {out.details}"
    if out.code != OK:
        assert out.details.strip(), f"{out.code.name} without a message"
    return out


@pytest.fixture(scope="module")
def fz(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzed]:
    data_dir = tmp_path_factory.mktemp("fuzz") / "devnet"
    try:
        manifest = network.start_devnet(data_dir, genesis=FUZZ_GENESIS)
        # The gRPC servers; the proxy relays bytes and the explorer speaks HTTP (it
        # still follows the fuzzed chain: its log must stay clean too).
        channels = {
            p.name: grpc.insecure_channel(p.endpoint, options=CHANNEL_OPTIONS)
            for p in manifest.processes
            if p.role not in (network.PROXY, network.EXPLORER)
        }
        f = Fuzzed(manifest, channels)
        while f.head() < 3:  # so that expiry heights 1..head are in the past
            time.sleep(0.02)
        yield f
        for c in channels.values():
            c.close()
    finally:
        network.stop_devnet(data_dir, grace=5.0)


def run_hypothesis(test: Callable[..., None], seed: int, examples: int) -> None:
    configured = settings(
        max_examples=examples,
        deadline=None,
        database=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )(test)
    hypothesis.seed(seed)(configured)()


# ---------------------------------------------------------------- strategies

u64 = st.integers(0, U64)
absurd = st.sampled_from([0, 1, 2**32, 2**63 - 1, 2**63, U64]) | u64
text = st.text(max_size=24)
unknown_rollup = text.filter(lambda s: s not in ROLLUPS)
unknown_asset = text.filter(lambda s: s not in ASSETS)
not_an_address = st.binary(max_size=48).filter(lambda b: len(b) != 20)
not_an_id = st.binary(max_size=64).filter(lambda b: len(b) != 32)
ids = st.binary(min_size=32, max_size=32)
# Expiry heights still ahead while a run lasts (the head moves 50 blocks a second):
# far from the head the strategy was built at, within the window of the one it is sent at.
LIVE_EXPIRY = st.integers(LIMITS.max_expiry_window // 2, LIMITS.max_expiry_window * 3 // 4)


def unknown_field(size: int) -> bytes:
    """Field number 99, length-delimited: valid protobuf any decoder skips."""
    n, out = size, bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            break
    return b"\x9a\x06" + bytes(out) + b"\x00" * size


@st.composite
def mutated(draw: st.DrawFn, valid: bytes) -> bytes:
    """`valid` with a few bytes flipped, inserted, deleted or cut off."""
    data = bytearray(valid)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(("flip", "insert", "delete", "truncate")))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[pos] ^= draw(st.integers(1, 255))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete" and data:
            del data[pos : pos + draw(st.integers(1, 8))]
        elif op == "truncate":
            data = data[:pos]
    return bytes(data)


def raw_requests(valid: bytes) -> st.SearchStrategy[bytes]:
    return st.binary(max_size=1_024) | mutated(valid)


def transfer_action(draw: st.DrawFn, to: bytes) -> pb.Action:
    return pb.Action(
        transfer=pb.Transfer(
            to=to, asset=draw(st.sampled_from(ASSETS)), amount=draw(st.integers(1, 10**6))
        )
    )


def bundle_only_action(draw: st.DrawFn, writer: bytes) -> pb.Action:
    return draw(
        st.sampled_from(
            [
                pb.Action(
                    lock_collateral=pb.LockCollateral(
                        asset="USDC", amount=5, controller_rollup="beta"
                    )
                ),
                pb.Action(
                    open_option=pb.OpenOption(
                        kind=pb.OPTION_KIND_PUT,
                        underlying="ETH",
                        quote="USDC",
                        strike=2_000 * 10**6,
                        size=10**7,
                        expiry_height=10**6,
                        premium=1,
                        writer=writer,
                        collateral_rollups=["alpha"],
                    )
                ),
                pb.Action(settle_option=pb.SettleOption(option_id=b"\x01" * 32, payout=0)),
                pb.Action(
                    release_lien=pb.ReleaseLien(lien_id=b"\x01" * 32, payout=0, payee=writer)
                ),
            ]
        )
    )


# Each defect makes a transaction inadmissible on its own, with these statuses.
TX_DEFECTS: dict[str, frozenset[grpc.StatusCode]] = {
    "chain_id": frozenset({INVALID}),
    "unknown_rollup": frozenset({INVALID}),
    "sender_length": frozenset({INVALID}),
    "to_length": frozenset({INVALID}),
    "unknown_asset": frozenset({INVALID}),
    "amount_zero": frozenset({INVALID}),
    "amount_absurd": frozenset({EXHAUSTED}),
    "expired": frozenset({PRECOND}),
    "no_expiry": frozenset({INVALID}),
    "far_future": frozenset({INVALID}),
    "bundle_only_action": frozenset({INVALID}),
    "no_action": frozenset({INVALID}),
    "price_not_from_oracle": frozenset({DENIED}),
    "oversized_body": frozenset({EXHAUSTED}),
    "random_body": MAYBE,
}
SIG_DEFECTS: dict[str, frozenset[grpc.StatusCode]] = {
    "flipped_bit": frozenset({UNAUTH}),
    "random_signature": frozenset({UNAUTH}),
    # A well-formed key of another account is the wrong signer before its signature
    # is checked (the signer set is checked first: it costs nothing).
    "random_public_key": frozenset({UNAUTH, DENIED}),
    "key_of_another": frozenset({UNAUTH, DENIED}),
    "wrong_signer": frozenset({DENIED}),
    "extra_signer": frozenset({DENIED}),
    "unsigned": frozenset({INVALID}),
    "too_many_signatures": frozenset({EXHAUSTED}),
}


def sign(draw: st.DrawFn, raw: bytes, signer: Keypair, defect: str | None) -> list[pb.Signature]:
    def by(k: Keypair) -> pb.Signature:
        return pb.Signature(public_key=k.public_key, signature=k.sign(raw))

    other = draw(st.sampled_from([a for a in ACCOUNTS if a.address != signer.address]))
    good = by(signer)
    if defect is None:
        return [good]
    if defect == "flipped_bit":
        sig = bytearray(good.signature)
        bit = draw(st.integers(0, 511))
        sig[bit // 8] ^= 1 << (bit % 8)
        return [pb.Signature(public_key=signer.public_key, signature=bytes(sig))]
    if defect == "random_signature":
        return [pb.Signature(public_key=signer.public_key, signature=draw(st.binary(max_size=96)))]
    if defect == "random_public_key":
        key = draw(st.binary(max_size=64).filter(lambda k: k != signer.public_key))
        return [pb.Signature(public_key=key, signature=good.signature)]
    if defect == "key_of_another":
        return [pb.Signature(public_key=other.public_key, signature=good.signature)]
    if defect == "wrong_signer":
        return [by(other)]
    if defect == "extra_signer":
        return [good, by(other)]
    if defect == "unsigned":
        return []
    assert defect == "too_many_signatures"
    return [good] * draw(st.integers(LIMITS.max_signatures + 1, 3 * LIMITS.max_signatures))


@dataclass(frozen=True)
class Bad:
    """A submission and the statuses it may get (its defects' ones)."""

    msg: Any
    codes: frozenset[grpc.StatusCode]
    defects: tuple[str, ...]

    @property
    def id(self) -> bytes:
        return compute_id(self.msg.body)


def pick_defects(draw: st.DrawFn, body_defects: list[str]) -> tuple[list[str], str | None]:
    chosen = draw(st.lists(st.sampled_from(body_defects), max_size=3, unique=True))
    sig = draw(st.none() | st.sampled_from(sorted(SIG_DEFECTS)))
    if not chosen and sig is None:
        chosen = [draw(st.sampled_from(body_defects))]
    return chosen, sig


@st.composite
def bad_txs(draw: st.DrawFn, head: int) -> Bad:
    sender, to = draw(st.permutations(ACCOUNTS))[:2]
    body = pb.TxBody(
        chain_id=DEV_CHAIN_ID,
        rollup=draw(st.sampled_from(ROLLUPS)),
        sender=sender.address,
        nonce=draw(u64),
        expiry_height=head + draw(LIVE_EXPIRY),
        action=transfer_action(draw, to.address),
    )
    defects, sig_defect = pick_defects(draw, sorted(TX_DEFECTS))
    # Whole-action defects first, so the field defects after them still apply.
    defects.sort(
        key=lambda d: d not in ("bundle_only_action", "no_action", "price_not_from_oracle")
    )
    codes: set[grpc.StatusCode] = set()
    raw_defects = []
    for d in defects:
        if d in ("oversized_body", "random_body"):
            raw_defects.append(d)
            continue
        is_transfer = body.action.WhichOneof("kind") == "transfer"
        if d in ("to_length", "unknown_asset", "amount_zero", "amount_absurd") and not is_transfer:
            continue  # the action was replaced: this defect is moot
        codes |= TX_DEFECTS[d]
        if d == "chain_id":
            body.chain_id = draw(text.filter(lambda s: s != DEV_CHAIN_ID))
        elif d == "unknown_rollup":
            body.rollup = draw(unknown_rollup)
        elif d == "sender_length":
            body.sender = draw(not_an_address)
        elif d == "to_length":
            body.action.transfer.to = draw(not_an_address)
        elif d == "unknown_asset":
            body.action.transfer.asset = draw(unknown_asset)
        elif d == "amount_zero":
            body.action.transfer.amount = 0
        elif d == "amount_absurd":
            body.action.transfer.amount = draw(st.integers(LIMITS.max_amount + 1, U64))
        elif d == "expired":
            body.expiry_height = draw(st.integers(1, head))
        elif d == "no_expiry":
            body.expiry_height = 0
        elif d == "far_future":
            body.expiry_height = draw(st.integers(head + 2 * LIMITS.max_expiry_window, U64))
        elif d == "bundle_only_action":
            body.action.CopyFrom(bundle_only_action(draw, to.address))
        elif d == "no_action":
            body.ClearField("action")
        elif d == "price_not_from_oracle":
            body.action.CopyFrom(
                pb.Action(price_update=pb.PriceUpdate(base="ETH", quote="USDC", price=5))
            )
    raw = body.SerializeToString()
    if "oversized_body" in raw_defects:
        raw += unknown_field(LIMITS.max_body_bytes)
        codes |= TX_DEFECTS["oversized_body"]
    if "random_body" in raw_defects:
        raw = draw(st.binary(max_size=600) | mutated(raw))
        codes = set(MAYBE)
    if sig_defect is not None:
        codes |= SIG_DEFECTS[sig_defect]
    tx = pb.SignedTx(body=raw, signatures=sign(draw, raw, sender, sig_defect))
    return Bad(tx, frozenset(codes), (*defects, *([sig_defect] if sig_defect else [])))


@st.composite
def good_txs(draw: st.DrawFn, head: int) -> pb.SignedTx:
    """Admissible transfers, absurd amounts up to the limit included (those fail
    at execution, insufficient funds, and are still ordered)."""
    sender, to = draw(st.permutations(ACCOUNTS))[:2]
    body = pb.TxBody(
        chain_id=DEV_CHAIN_ID,
        rollup=draw(st.sampled_from(ROLLUPS)),
        sender=sender.address,
        nonce=draw(u64),
        expiry_height=head + draw(LIVE_EXPIRY),
        action=pb.Action(
            transfer=pb.Transfer(
                to=to.address,
                asset=draw(st.sampled_from(ASSETS)),
                amount=draw(st.sampled_from([1, LIMITS.max_amount]) | st.integers(1, 10**6)),
            )
        ),
    )
    raw = body.SerializeToString()
    return pb.SignedTx(
        body=raw,
        signatures=[pb.Signature(public_key=sender.public_key, signature=sender.sign(raw))],
    )


BUNDLE_DEFECTS: dict[str, frozenset[grpc.StatusCode]] = {
    "chain_id": frozenset({INVALID}),
    "expired": frozenset({PRECOND}),
    "no_expiry": frozenset({INVALID}),
    "far_future": frozenset({INVALID}),
    "no_legs": frozenset({INVALID}),
    "too_many_legs": frozenset({EXHAUSTED}),
    "leg_unknown_rollup": frozenset({INVALID}),
    "leg_sender_length": frozenset({INVALID}),
    "leg_no_action": frozenset({INVALID}),
    "leg_price_update": frozenset({INVALID}),
    "leg_amount_zero": frozenset({INVALID}),
    "leg_amount_absurd": frozenset({EXHAUSTED}),
    "leg_unknown_asset": frozenset({INVALID}),
    "lock_without_open": frozenset({INVALID}),
    "settle_without_release": frozenset({INVALID}),
    "second_sender_unsigned": frozenset({DENIED}),
    "oversized_body": frozenset({EXHAUSTED}),
    "random_body": MAYBE,
}


@st.composite
def bad_bundles(draw: st.DrawFn, head: int) -> Bad:
    sender, to, second = draw(st.permutations(ACCOUNTS))[:3]
    legs = [
        pb.Leg(rollup=r, sender=sender.address, action=transfer_action(draw, to.address))
        for r in ROLLUPS
    ]
    body = pb.BundleBody(
        chain_id=DEV_CHAIN_ID,
        nonce=draw(u64),
        expiry_height=head + draw(LIVE_EXPIRY),
        legs=legs,
    )
    defects, sig_defect = pick_defects(draw, sorted(BUNDLE_DEFECTS))
    # Leg-level defects before the defects that replace the legs.
    defects.sort(key=lambda d: d in ("no_legs", "too_many_legs"))
    codes: set[grpc.StatusCode] = set()
    for d in defects:
        if d in ("oversized_body", "random_body"):
            continue
        moot = False  # a defect that found nothing to spoil adds no expected code
        i = draw(st.integers(0, len(body.legs) - 1)) if body.legs else 0
        leg = body.legs[i] if body.legs else None
        if d == "chain_id":
            body.chain_id = draw(text.filter(lambda s: s != DEV_CHAIN_ID))
        elif d == "expired":
            body.expiry_height = draw(st.integers(1, head))
        elif d == "no_expiry":
            body.expiry_height = 0
        elif d == "far_future":
            body.expiry_height = draw(st.integers(head + 2 * LIMITS.max_expiry_window, U64))
        elif d == "no_legs":
            del body.legs[:]
        elif d == "too_many_legs":
            extra = draw(st.integers(LIMITS.max_legs + 1, 2 * LIMITS.max_legs))
            while len(body.legs) < extra:
                body.legs.append(body.legs[0] if body.legs else legs[0])
        elif leg is None:
            moot = True  # no leg left to spoil
        elif d == "leg_unknown_rollup":
            leg.rollup = draw(unknown_rollup)
        elif d == "leg_sender_length":
            leg.sender = draw(not_an_address)
        elif d == "leg_no_action":
            leg.ClearField("action")
        elif d == "leg_price_update":
            leg.action.CopyFrom(
                pb.Action(price_update=pb.PriceUpdate(base="ETH", quote="USDC", price=5))
            )
        elif d in ("leg_amount_zero", "leg_amount_absurd", "leg_unknown_asset"):
            if leg.action.WhichOneof("kind") != "transfer":
                moot = True
            elif d == "leg_amount_zero":
                leg.action.transfer.amount = 0
            elif d == "leg_amount_absurd":
                leg.action.transfer.amount = draw(st.integers(LIMITS.max_amount + 1, U64))
            else:
                leg.action.transfer.asset = draw(unknown_asset)
        elif d == "lock_without_open":
            leg.action.CopyFrom(
                pb.Action(
                    lock_collateral=pb.LockCollateral(
                        asset="USDC", amount=5, controller_rollup="beta"
                    )
                )
            )
        elif d == "settle_without_release":
            leg.action.CopyFrom(
                pb.Action(settle_option=pb.SettleOption(option_id=draw(ids), payout=0))
            )
        elif d == "second_sender_unsigned":
            leg.sender = second.address
        if not moot:
            # Union, never subtraction: two defects can share a status code.
            codes |= BUNDLE_DEFECTS[d]
    if not codes and not {"oversized_body", "random_body"} & set(defects) and sig_defect is None:
        # Every defect was moot (no leg left to spoil): spoil the chain id instead.
        body.chain_id = "not-" + DEV_CHAIN_ID
        codes.add(INVALID)
    raw = body.SerializeToString()
    if "oversized_body" in defects:
        raw += unknown_field(LIMITS.max_body_bytes)
        codes |= BUNDLE_DEFECTS["oversized_body"]
    if "random_body" in defects:
        raw = draw(st.binary(max_size=600) | mutated(raw))
        codes = set(MAYBE)
    if sig_defect is not None:
        codes |= SIG_DEFECTS[sig_defect]
    msg = pb.SignedBundle(body=raw, signatures=sign(draw, raw, sender, sig_defect))
    return Bad(msg, frozenset(codes), (*defects, *([sig_defect] if sig_defect else [])))


@st.composite
def absurd_bundles(draw: st.DrawFn, head: int) -> pb.SignedBundle:
    """Well-formed, signed option flows with absurd terms: some are admitted
    (and then fail or succeed at execution), some refused over a limit."""
    writer, holder = draw(st.permutations(ACCOUNTS))[:2]
    kind = draw(st.sampled_from([pb.OPTION_KIND_PUT, pb.OPTION_KIND_CALL]))
    if draw(st.booleans()):
        legs = [
            pb.Leg(
                rollup="alpha",
                sender=writer.address,
                action=pb.Action(
                    lock_collateral=pb.LockCollateral(
                        asset=draw(st.sampled_from(ASSETS)),
                        amount=draw(absurd.filter(lambda a: a > 0)),
                        controller_rollup="beta",
                    )
                ),
            ),
            pb.Leg(
                rollup="beta",
                sender=holder.address,
                action=pb.Action(
                    open_option=pb.OpenOption(
                        kind=kind,
                        underlying="ETH",
                        quote="USDC",
                        strike=draw(absurd.filter(lambda a: a > 0)),
                        size=draw(absurd.filter(lambda a: a > 0)),
                        expiry_height=draw(absurd.filter(lambda a: a > 0)),
                        premium=draw(absurd),
                        writer=writer.address,
                        collateral_rollups=["alpha"],
                    )
                ),
            ),
        ]
        signers = [writer, holder]
    else:
        option_id = draw(ids)
        payout = draw(absurd)
        legs = [
            pb.Leg(
                rollup="beta",
                sender=holder.address,
                action=pb.Action(settle_option=pb.SettleOption(option_id=option_id, payout=payout)),
            ),
            pb.Leg(
                rollup="alpha",
                sender=holder.address,
                action=pb.Action(
                    release_lien=pb.ReleaseLien(
                        lien_id=option_id, payout=payout, payee=writer.address
                    )
                ),
            ),
        ]
        signers = [holder]
    body = pb.BundleBody(
        chain_id=DEV_CHAIN_ID,
        nonce=draw(u64),
        expiry_height=head + draw(LIVE_EXPIRY),
        legs=legs,
    )
    raw = body.SerializeToString()
    return pb.SignedBundle(
        body=raw,
        signatures=[pb.Signature(public_key=k.public_key, signature=k.sign(raw)) for k in signers],
    )


GENESIS_HASH = compute_genesis_hash(FUZZ_GENESIS)

VOTE_DEFECTS: dict[str, frozenset[grpc.StatusCode]] = {
    "chain_id": frozenset({INVALID}),
    "unknown_rollup": frozenset({INVALID}),
    "no_height": frozenset({INVALID}),
    "bundle_id_length": frozenset({INVALID}),
    "signed_by_an_account": frozenset({DENIED}),
    "signed_by_the_other_rollup": frozenset({DENIED}),
    "flipped_bit": frozenset({UNAUTH}),
    "random_signature": frozenset({UNAUTH}),
    "unsigned": frozenset({INVALID}),
    "oversized_body": frozenset({EXHAUSTED}),
    "random_body": MAYBE,
}


@st.composite
def bad_votes(draw: st.DrawFn) -> Bad:
    rollup = draw(st.sampled_from(ROLLUPS))
    body = pb.VoteBody(
        chain_id=DEV_CHAIN_ID,
        rollup=rollup,
        height=draw(st.integers(1, U64)),
        votes=[
            pb.BundleVote(
                bundle_id=draw(ids),
                yes=draw(st.booleans()),
                code=draw(st.sampled_from([0, 11, 13])),
                bundle_height=draw(st.integers(1, U64)),
            )
            for _ in range(draw(st.integers(0, 3)))
        ],
        genesis_hash=GENESIS_HASH,
    )
    defects = draw(
        st.lists(st.sampled_from(sorted(VOTE_DEFECTS)), min_size=1, max_size=3, unique=True)
    )
    codes: set[grpc.StatusCode] = set()
    key = VOTE_KEYS[rollup]
    signature: pb.Signature | None = None
    for d in defects:
        codes |= VOTE_DEFECTS[d]
        if d == "chain_id":
            body.chain_id = draw(text.filter(lambda s: s != DEV_CHAIN_ID))
        elif d == "unknown_rollup":
            body.rollup = draw(unknown_rollup)
        elif d == "no_height":
            body.height = 0
        elif d == "bundle_id_length":
            body.votes.append(pb.BundleVote(bundle_id=draw(not_an_id), yes=True))
        elif d == "signed_by_an_account":
            key = draw(st.sampled_from(ACCOUNTS))
        elif d == "signed_by_the_other_rollup":
            key = VOTE_KEYS["beta" if rollup == "alpha" else "alpha"]
    raw = body.SerializeToString()
    if "oversized_body" in defects:
        raw += unknown_field(LIMITS.max_body_bytes)
    if "random_body" in defects:
        raw = draw(st.binary(max_size=600) | mutated(raw))
        codes = set(MAYBE)
    signature = pb.Signature(public_key=key.public_key, signature=key.sign(raw))
    if "flipped_bit" in defects:
        bit = draw(st.integers(0, 511))
        sig = bytearray(signature.signature)
        sig[bit // 8] ^= 1 << (bit % 8)
        signature = pb.Signature(public_key=key.public_key, signature=bytes(sig))
    if "random_signature" in defects:
        signature = pb.Signature(public_key=key.public_key, signature=draw(st.binary(max_size=96)))
    msg = pb.SignedVote(body=raw, signature=signature)
    if "unsigned" in defects:
        msg.ClearField("signature")
    return Bad(msg, frozenset(codes), tuple(defects))


# ---------------------------------------------------------------- the targets


def submit_bad(fz: Fuzzed, method: Callable[..., Any], request: Any, bad: Bad) -> None:
    out = call(method, request)
    assert out.code in bad.codes, (
        f"{bad.defects}: {out.code.name} {out.details!r}, want one of"
        f" {sorted(c.name for c in bad.codes)}"
    )
    fz.record(bad.id, out)


def fuzz_submit_transaction(fz: Fuzzed, seed: int, examples: int) -> None:
    head = fz.head()
    stub = fz.seq

    @given(bad=bad_txs(head))
    def test(bad: Bad) -> None:
        submit_bad(fz, stub.SubmitTransaction, spb.SubmitTransactionRequest(tx=bad.msg), bad)
        fz.assert_serving()

    run_hypothesis(test, seed, examples)


def fuzz_submit_bundle(fz: Fuzzed, seed: int, examples: int) -> None:
    head = fz.head()
    stub = fz.seq

    @given(bad=bad_bundles(head))
    def test(bad: Bad) -> None:
        submit_bad(fz, stub.SubmitBundle, spb.SubmitBundleRequest(bundle=bad.msg), bad)
        fz.assert_serving()

    run_hypothesis(test, seed, examples)


def fuzz_absurd_bundles(fz: Fuzzed, seed: int, examples: int) -> None:
    """Admissible bundles with absurd terms: refused over a limit, or ordered
    and then decided, with the nodes applying on."""
    head = fz.head()
    stub = fz.seq

    @given(bundle=absurd_bundles(head))
    def test(bundle: pb.SignedBundle) -> None:
        out = call(stub.SubmitBundle, spb.SubmitBundleRequest(bundle=bundle))
        assert out.code in REFUSALS | {OK}, f"{out.code.name} {out.details}"
        fz.record(compute_id(bundle.body), out)
        fz.assert_serving()

    run_hypothesis(test, seed, examples)
    fz.wait_quiet()
    fz.assert_serving()


def fuzz_submit_batch(fz: Fuzzed, seed: int, examples: int) -> None:
    head = fz.head()
    stub = fz.seq
    items = st.lists(bad_txs(head) | good_txs(head), max_size=8)

    @given(batch=items)
    def test(batch: list[Bad | pb.SignedTx]) -> None:
        txs = [b.msg if isinstance(b, Bad) else b for b in batch]
        out = call(stub.SubmitBatch, spb.SubmitBatchRequest(txs=txs), timeout=30)
        assert out.code == OK, f"{out.code.name} {out.details}"
        results = list(out.response.results)
        assert len(results) == len(batch)
        for b, r in zip(batch, results, strict=True):
            code = S.OK if r.code == 0 else next(c for c in S if c.value[0] == r.code)
            assert code not in NEVER, f"{code.name}: {r.message}"
            entry_id = compute_id(b.msg.body if isinstance(b, Bad) else b.body)
            if isinstance(b, Bad):
                assert code in b.codes, f"{b.defects}: {code.name} {r.message!r}"
                if code != OK:
                    assert r.message and r.height == 0
                fz.record(entry_id, Outcome(code, r.message, r if code == OK else None))
            else:
                assert code == OK, f"a good transfer: {code.name} {r.message}"
                fz.record(entry_id, Outcome(OK, "", r))
        fz.assert_serving()

    run_hypothesis(test, seed, examples)


def fuzz_submit_vote(fz: Fuzzed, seed: int, examples: int) -> None:
    stub = fz.seq

    @given(bad=bad_votes())
    def test(bad: Bad) -> None:
        submit_bad(fz, stub.SubmitVote, spb.SubmitVoteRequest(vote=bad.msg), bad)
        fz.assert_serving()

    run_hypothesis(test, seed, examples)


def fuzz_replays(fz: Fuzzed, seed: int, examples: int) -> None:
    """A transaction sent again (alone, in a batch, with a spoiled signature,
    after it expired) is never ordered twice: a replay gets the first result."""
    stub = fz.seq

    @given(tx=good_txs(fz.head()), spoil=st.integers(0, 511), short=st.booleans())
    def test(tx: pb.SignedTx, spoil: int, short: bool) -> None:
        if short:  # expiring in a few blocks: replayed after it expired
            body = pb.TxBody.FromString(tx.body)
            body.expiry_height = fz.head() + 3
            sender = next(a for a in ACCOUNTS if a.address == body.sender)
            raw = body.SerializeToString()
            tx = pb.SignedTx(
                body=raw,
                signatures=[pb.Signature(public_key=sender.public_key, signature=sender.sign(raw))],
            )
        entry_id = compute_id(tx.body)
        seen = entry_id in fz.accepted  # hypothesis may draw a transaction twice
        first = call(stub.SubmitTransaction, spb.SubmitTransactionRequest(tx=tx))
        assert first.code == OK and first.response.duplicate == seen, first
        fz.record(entry_id, first)
        again = call(stub.SubmitTransaction, spb.SubmitTransactionRequest(tx=tx))
        assert again.code == OK and again.response.duplicate, again
        fz.record(entry_id, again)
        batch = call(stub.SubmitBatch, spb.SubmitBatchRequest(txs=[tx, tx]))
        for r in batch.response.results:
            assert r.code == 0 and r.duplicate, r
            assert (r.height, r.index) == fz.accepted[entry_id]
        sig = bytearray(tx.signatures[0].signature)
        sig[spoil // 8] ^= 1 << (spoil % 8)
        spoiled = pb.SignedTx(
            body=tx.body,
            signatures=[pb.Signature(public_key=tx.signatures[0].public_key, signature=bytes(sig))],
        )
        out = call(stub.SubmitTransaction, spb.SubmitTransactionRequest(tx=spoiled))
        assert out.code == UNAUTH, out
        if short:
            while fz.head() <= pb.TxBody.FromString(tx.body).expiry_height:
                time.sleep(0.02)
            late = call(stub.SubmitTransaction, spb.SubmitTransactionRequest(tx=tx))
            # The first result, or refused as expired: never ordered again.
            assert late.code in (OK, PRECOND), late
            if late.code == OK:
                assert late.response.duplicate
                fz.record(entry_id, late)
        fz.assert_serving()

    run_hypothesis(test, seed, max(5, examples // 4))


def fuzz_sequencer_queries(fz: Fuzzed, seed: int, examples: int) -> None:
    stub = fz.seq

    @given(
        height=st.sampled_from([0, 1, 2**63, U64]) | st.integers(0, 200) | u64,
        sub_id=st.binary(max_size=64),
    )
    def test(height: int, sub_id: bytes) -> None:
        head = fz.head()
        out = call(stub.GetBlock, spb.GetBlockRequest(height=height))
        if 1 <= height <= head:
            assert out.code == OK and out.response.header.height == height, out
        else:
            assert out.code in (NOT_FOUND, INVALID), out
        out = call(stub.GetSubmission, spb.GetSubmissionRequest(id=sub_id))
        assert out.code == (INVALID if len(sub_id) != 32 else NOT_FOUND), out
        out = call(stub.GetStatus, spb.GetStatusRequest())
        assert out.code == OK and out.response.chain_id == DEV_CHAIN_ID
        first = stream_first(fz.seq.StreamBlocks, spb.StreamBlocksRequest(from_height=height))
        if height <= head:
            assert first.code == OK and first.response.header.height == max(1, height), first
        else:
            assert first.code in (OK, S.DEADLINE_EXCEEDED), first
        fz.assert_serving()

    run_hypothesis(test, seed, examples)


def stream_first(method: Callable[..., Any], request: Any, timeout: float = 0.25) -> Outcome:
    """The first message of a server stream (or its status); the stream is then cancelled.
    A stream from a height not reached yet waits: DEADLINE_EXCEEDED here."""
    stream = method(request, timeout=timeout)
    try:
        out = Outcome(OK, "", next(iter(stream)))
    except grpc.RpcError as e:
        out = Outcome(e.code(), e.details() or "")
    except StopIteration:
        out = Outcome(OK, "", None)
    finally:
        stream.cancel()
    assert out.code not in NEVER, f"{out.code.name}: {out.details}"
    return out


def node_roots(fz: Fuzzed) -> dict[str, tuple[int, bytes]]:
    out = {}
    for r in ROLLUPS:
        s = fz.node(r).GetNodeStatus(npb.GetNodeStatusRequest(), timeout=5)
        out[r] = (int(s.applied_height), bytes(s.state_root))
    return out


def fuzz_node_queries(fz: Fuzzed, seed: int, examples: int) -> None:
    """Every node method with arbitrary arguments: never UNKNOWN/INTERNAL, the
    right status, and the state root unchanged."""
    fz.wait_quiet()
    before = {r: root for r, (_, root) in node_roots(fz).items()}

    @given(
        rollup=st.sampled_from(ROLLUPS),
        address=st.binary(max_size=40) | st.sampled_from([a.address for a in ACCOUNTS]),
        some_id=st.binary(max_size=64) | st.sampled_from(sorted(fz.accepted) or [b"\0" * 32]),
        height=st.sampled_from([0, 1, 2**63, U64]) | u64 | st.integers(0, 50),
        base=text | st.sampled_from(ASSETS),
        quote=text | st.sampled_from(ASSETS),
    )
    def test(
        rollup: str, address: bytes, some_id: bytes, height: int, base: str, quote: str
    ) -> None:
        node = fz.node(rollup)
        out = call(node.GetBalances, npb.GetBalancesRequest(address=address))
        assert out.code == (OK if len(address) == 20 else INVALID), out
        bad_id = len(some_id) != 32
        for method, req in (
            (node.GetReceipt, npb.GetReceiptRequest(id=some_id)),
            (node.GetBundle, npb.GetBundleRequest(id=some_id)),
            (node.GetLien, npb.GetLienRequest(id=some_id)),
            (node.GetOption, npb.GetOptionRequest(id=some_id)),
        ):
            out = call(method, req)
            want = {INVALID} if bad_id else {OK, NOT_FOUND}
            assert out.code in want, out
        applied = node.GetNodeStatus(npb.GetNodeStatusRequest(), timeout=5).applied_height
        out = call(node.GetStateRoot, npb.GetStateRootRequest(height=height))
        if height <= applied:
            assert out.code == OK and len(out.response.state_root) == 32, out
        else:
            assert out.code in (NOT_FOUND, OK), out
        out = call(node.GetPrice, npb.GetPriceRequest(base=base, quote=quote))
        assert out.code in (OK, NOT_FOUND, INVALID), out
        assert call(node.GetSupply, npb.GetSupplyRequest()).code == OK
        assert call(node.GetNodeStatus, npb.GetNodeStatusRequest()).code == OK
        fz.assert_serving()
        now = {r: root for r, (_, root) in node_roots(fz).items()}
        assert now == before, "a query changed a node's state root"

    run_hypothesis(test, seed, examples)


RAW_VALID: dict[str, bytes] = {
    "SubmitTransaction": spb.SubmitTransactionRequest(
        tx=pb.SignedTx(body=b"\x0a\x03abc", signatures=[pb.Signature(public_key=b"k" * 32)])
    ).SerializeToString(),
    "SubmitBundle": spb.SubmitBundleRequest(
        bundle=pb.SignedBundle(body=b"\x0a\x03abc")
    ).SerializeToString(),
    "SubmitBatch": spb.SubmitBatchRequest(
        txs=[pb.SignedTx(body=b"\x0a\x03abc")] * 2
    ).SerializeToString(),
    "SubmitVote": spb.SubmitVoteRequest(
        vote=pb.SignedVote(body=b"\x0a\x03abc", signature=pb.Signature(public_key=b"k" * 32))
    ).SerializeToString(),
    "GetBlock": spb.GetBlockRequest(height=1).SerializeToString(),
    "GetSubmission": spb.GetSubmissionRequest(id=b"\x01" * 32).SerializeToString(),
    "GetStatus": b"",
    "SetPruneFloor": spb.SetPruneFloorRequest(height=1).SerializeToString(),
    "GetBalances": npb.GetBalancesRequest(address=b"\x01" * 20).SerializeToString(),
    "GetReceipt": npb.GetReceiptRequest(id=b"\x01" * 32).SerializeToString(),
    "GetStateRoot": npb.GetStateRootRequest(height=1).SerializeToString(),
    "GetNodeStatus": b"",
    "GetPrice": npb.GetPriceRequest(base="ETH", quote="USDC").SerializeToString(),
    "GetBundle": npb.GetBundleRequest(id=b"\x01" * 32).SerializeToString(),
    "GetLien": npb.GetLienRequest(id=b"\x01" * 32).SerializeToString(),
    "GetOption": npb.GetOptionRequest(id=b"\x01" * 32).SerializeToString(),
    "GetSupply": b"",
    "GetAccount": npb.GetAccountRequest(address=b"\x01" * 20).SerializeToString(),
}
REQUEST_TYPES = {
    "SubmitTransaction": spb.SubmitTransactionRequest,
    "SubmitBundle": spb.SubmitBundleRequest,
    "SubmitBatch": spb.SubmitBatchRequest,
    "SubmitVote": spb.SubmitVoteRequest,
}


def would_be_ids(method: str, raw: bytes) -> list[bytes]:
    """The ids a raw submission request would write, when it decodes at all."""
    cls = REQUEST_TYPES.get(method)
    if cls is None:
        return []
    try:
        req = cls.FromString(raw)
    except Exception:
        return []
    if method == "SubmitBatch":
        return [compute_id(t.body) for t in req.txs]
    field_name = {"SubmitTransaction": "tx", "SubmitBundle": "bundle", "SubmitVote": "vote"}[method]
    return [compute_id(getattr(req, field_name).body)] if req.HasField(field_name) else []


def fuzz_raw_bytes(fz: Fuzzed, seed: int, examples: int) -> None:
    """Arbitrary bytes as the serialized request of every method, through a
    generic channel with identity serializers."""
    fz.wait_quiet()
    before = node_roots(fz)
    targets = [("sequencer", SEQ, m) for m in SEQUENCER_METHODS] + [
        (r, NODE, m) for r in ROLLUPS for m in NODE_METHODS
    ]

    @given(target=st.sampled_from(targets), data=st.data())
    def test(target: tuple[str, str, str], data: st.DataObject) -> None:
        process, service, method = target
        if method == "StreamBlocks":
            raw = data.draw(
                raw_requests(spb.StreamBlocksRequest(from_height=1).SerializeToString())
            )
            out = stream_first(fz.raw_stream(method), raw)
            # FAILED_PRECONDITION: a start below the sequencer's prune floor, once a
            # long run has retained only its last blocks (the message says so).
            assert out.code in (OK, INVALID, S.DEADLINE_EXCEEDED, S.FAILED_PRECONDITION), out
            if out.code == S.FAILED_PRECONDITION:
                assert "is pruned" in out.details, out
            fz.assert_serving()
            return
        raw = data.draw(raw_requests(RAW_VALID[method]))
        out = call(fz.raw(process, service, method), raw)
        if method.startswith("Submit"):
            if out.code == OK:  # an empty batch decodes; nothing in it may pass
                assert method == "SubmitBatch", f"{method} admitted raw bytes {raw!r}"
                for r in spb.SubmitBatchResponse.FromString(out.response).results:
                    assert r.code in {c.value[0] for c in REFUSALS}, r
            else:
                assert out.code in REFUSALS, out
            for entry_id in would_be_ids(method, raw):
                fz.record(entry_id, Outcome(INVALID, "refused"))
        else:
            assert out.code in (OK, INVALID, NOT_FOUND), out
        fz.assert_serving()
        if process in ROLLUPS:
            assert node_roots(fz)[process][1] == before[process][1], "a query changed the root"

    run_hypothesis(test, seed, examples * len(targets) // 2)  # ~examples/2 per method


TARGETS: dict[str, Callable[[Fuzzed, int, int], None]] = {
    "SubmitTransaction": fuzz_submit_transaction,
    "SubmitBundle": fuzz_submit_bundle,
    "SubmitBundle-absurd-terms": fuzz_absurd_bundles,
    "SubmitBatch": fuzz_submit_batch,
    "SubmitVote": fuzz_submit_vote,
    "replays": fuzz_replays,
    "sequencer-queries": fuzz_sequencer_queries,
    "node-queries": fuzz_node_queries,
    "raw-bytes": fuzz_raw_bytes,
}


def check_target(fz: Fuzzed, name: str, seed: int, examples: int) -> None:
    TARGETS[name](fz, seed, examples)
    fz.assert_serving()
    fz.wait_nodes_applied()
    fz.assert_nothing_written()
    fz.assert_logs_clean()


@pytest.mark.parametrize("target", list(TARGETS))
def test_fuzz(fz: Fuzzed, target: str, seed: int) -> None:
    check_target(fz, target, seed, FAST_EXAMPLES)


@pytest.mark.slow
@pytest.mark.timeout(60 * 30)
@pytest.mark.parametrize("target", list(TARGETS))
def test_fuzz_slow(fz: Fuzzed, target: str, seed: int) -> None:
    check_target(fz, target, seed, SLOW_EXAMPLES)


# ---------------------------------------------------------------- fixed cases


def test_undecodable_request_is_invalid_argument_on_every_method(fz: Fuzzed) -> None:
    """Regression: grpc.aio answered a request that does not decode UNKNOWN
    ("Unexpected DecodeError"); xrollup.grpc_status.DecodeErrors makes it
    INVALID_ARGUMENT with a message, on every method and on health."""
    corrupt = b"\x0a\xff\xff"  # field 1, length-delimited, a length running past the end
    targets = [("sequencer", SEQ, m) for m in SEQUENCER_METHODS] + [
        (r, NODE, m) for r in ROLLUPS for m in NODE_METHODS
    ]
    for process, service, method in targets:
        if method == "StreamBlocks":
            out = stream_first(fz.raw_stream(method), corrupt, timeout=5)
        else:
            out = call(fz.raw(process, service, method), corrupt)
        assert out.code == INVALID, f"{process} {method}: {out.code.name} {out.details}"
        assert "does not decode" in out.details, f"{method}: {out.details!r}"
    for process in fz.channels:
        health = fz.raw(process, "grpc.health.v1.Health", "Check")
        out = call(health, corrupt)
        assert out.code == INVALID, f"{process} health: {out}"
    fz.assert_serving()


def test_oversized_request_on_every_method(fz: Fuzzed) -> None:
    """A request over the server's max message length is RESOURCE_EXHAUSTED on
    every method, and nothing is written."""
    huge = unknown_field(OVERSIZED)
    targets = [("sequencer", SEQ, m) for m in SEQUENCER_METHODS] + [
        (r, NODE, m) for r in ROLLUPS for m in NODE_METHODS
    ]
    for process, service, method in targets:
        if method == "StreamBlocks":
            out = stream_first(fz.raw_stream(method), huge, timeout=10)
        else:
            out = call(fz.raw(process, service, method), huge, timeout=30)
        assert out.code == EXHAUSTED, f"{process} {method}: {out.code.name} {out.details}"
    fz.assert_serving()
    fz.assert_nothing_written()

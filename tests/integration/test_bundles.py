"""Atomic cross-rollup bundles on a real devnet (the `start_devnet` fixture:
sequencer, alpha, beta and their replicas as processes on 127.0.0.1):

- I1 and I2 under a seeded workload of 1,000+ bundles submitted concurrently:
  valid ones commit, ones invalid on alpha or on beta abort with a reason naming
  that rollup, and of two bundles spending the same collateral (two opens whose
  locks together exceed the writer's balance, two settles of one option) exactly
  one commits; then the invariant checker (devnet.checker.run_checks) passes;
- I5: with both beta nodes paused (SIGSTOP) before they vote, the bundle aborts
  at its deadline; resumed, they record the same abort and match their replica;
- collateral in escrow cannot be spent while the bundle is undecided, and comes
  back exactly on abort;
- I6 for the protocol: forged votes are refused and change no decision, a
  replayed bundle is ordered once and executes once, and a lien cannot be spent
  by a single leg or with the settle of another position (both refused at
  admission), nor by a settle before expiry (aborted; the lien stays locked)."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field

import grpc
import pytest
from chainsupport import Net, assert_invariants, net_of, paused
from grpc import aio

from xrollup import codec
from xrollup.client import (
    Client,
    NodeClient,
    build_bundle,
    build_open_option,
    build_price_update,
    build_settle_option,
    build_transfer,
    build_tx,
    compute_submission_id,
    wait_for_decision,
)
from xrollup.genesis import (
    DEV_ACCOUNT_COUNT,
    DEV_CHAIN_ID,
    compute_genesis_hash,
    dev_genesis,
)
from xrollup.keys import (
    Keypair,
    derive_dev_account,
    derive_keypair,
    derive_oracle_key,
    derive_rollup_vote_key,
)
from xrollup.model import (
    Bundle,
    BundleVote,
    Decision,
    Leg,
    OpenOption,
    OptionKind,
    ReasonCode,
    ReleaseLien,
    SettleOption,
    Signature,
    Transfer,
    Vote,
    VoteBody,
)
from xrollup.numeric import Amount, Height
from xrollup.options import compute_collateral, compute_payout
from xrollup.v1 import node_pb2 as npb
from xrollup.v1 import types_pb2 as pb

DEV = tuple(derive_dev_account(i) for i in range(DEV_ACCOUNT_COUNT))
ORACLE = derive_oracle_key()
USDC = 10**6  # one USDC in base units
ETH = 10**9  # one ETH in base units
GENESIS_USDC = 1_000_000 * USDC  # per dev account per rollup
GENESIS_ETH = 1_000 * ETH
MORE_THAN_ANYONE = 10 * GENESIS_USDC + 1  # the whole supply of USDC on a rollup, plus one
COMMITTED = npb.BundleRecord.STATUS_COMMITTED
ABORTED = npb.BundleRecord.STATUS_ABORTED
PREPARED = npb.BundleRecord.STATUS_PREPARED

# ---------------------------------------------------------------- the devnet


@dataclass
class LogShape:
    """What the log looked like while it was read: the most bundles one block
    ordered, and how many (rollup, height) votes came in more than one message
    (a block's votes split to fit the body size limit)."""

    most_bundles: int = 0
    vote_messages: dict[tuple[str, int], int] = field(default_factory=dict)

    @property
    def split_votes(self) -> int:
        return sum(1 for n in self.vote_messages.values() if n > 1)


async def decisions_for(
    client: Client,
    ids: set[bytes],
    from_height: int,
    timeout: float,
    shape: LogShape | None = None,
) -> dict[bytes, tuple[int, Decision]]:
    """(height, decision) of each bundle in `ids`, read from the log as it grows."""
    found: dict[bytes, tuple[int, Decision]] = {}
    shape = shape or LogShape()
    if not ids:
        return found
    async with asyncio.timeout(timeout):
        async for msg in client.follow(from_height):
            block = codec.decode_block(msg)
            bundles = 0
            for e in block.entries:
                if isinstance(e, Decision) and e.bundle_id in ids:
                    assert e.bundle_id not in found, f"{e.bundle_id.hex()} decided twice"
                    found[e.bundle_id] = (int(block.height), e)
                elif isinstance(e, Bundle):
                    bundles += 1
                elif isinstance(e, Vote):
                    key = (e.body.rollup, int(e.body.height))
                    shape.vote_messages[key] = shape.vote_messages.get(key, 0) + 1
            shape.most_bundles = max(shape.most_bundles, bundles)
            if len(found) == len(ids):
                return found
    raise AssertionError("unreachable")


async def usdc(node: NodeClient, who: Keypair) -> int:
    return (await node.balances(who.address)).get("USDC", 0)


async def status_code(call: Awaitable[object]) -> tuple[grpc.StatusCode, str]:
    try:
        await call
    except aio.AioRpcError as e:
        return e.code(), e.details() or ""
    return grpc.StatusCode.OK, ""


def signed_vote(
    signer: Keypair, rollup: str, height: int, *votes: BundleVote, tamper: bool = False
) -> pb.SignedVote:
    """A vote body for `rollup` signed by `signer`; `tamper`: the signature is
    over other bytes, so it does not verify."""
    body = VoteBody(
        DEV_CHAIN_ID, rollup, Height(height), tuple(votes), compute_genesis_hash(dev_genesis())
    )
    raw = codec.encode_vote_body(body)
    sig = signer.sign(raw + b"x" if tamper else raw)
    return codec.encode_signed_vote(raw, Signature(signer.public_key, sig))


# ---------------------------------------------------------------- I1 and I2 under a workload


@dataclass
class Expect:
    """What must become of one submitted bundle."""

    kind: str  # valid | alpha | beta | pair
    reason: str = ""  # for alpha/beta: a fragment of the decision's reason
    pair: int = -1  # for pair: which conflicting pair


@dataclass
class Workload:
    expect: dict[bytes, Expect] = field(default_factory=dict)
    pairs: dict[int, list[bytes]] = field(default_factory=dict)
    jobs: list[list[pb.SignedBundle]] = field(default_factory=list)  # submitted together

    def add(self, bundle: pb.SignedBundle, expect: Expect) -> None:
        self.expect[compute_submission_id(bundle)] = expect
        self.jobs.append([bundle])

    def add_pair(self, a: pb.SignedBundle, b: pb.SignedBundle) -> None:
        n = len(self.pairs)
        ids = [compute_submission_id(a), compute_submission_id(b)]
        self.pairs[n] = ids
        for i in ids:
            self.expect[i] = Expect("pair", pair=n)
        self.jobs.append([a, b])


def two(rng: random.Random) -> tuple[Keypair, Keypair]:
    a, b = rng.sample(DEV, 2)
    return a, b


def fresh(seed: int, label: str, i: int) -> Keypair:
    """An account no genesis funds: it holds only what the test gives it."""
    return derive_keypair(f"test_bundles/{seed}/{label}/{i}")


def small_option(
    rng: random.Random,
    writer: Keypair,
    holder: Keypair,
    option_expiry: int,
    expiry: int,
    kind: OptionKind | None = None,
    premium: int | None = None,
    collateral: int | None = None,
) -> pb.SignedBundle:
    """A put or call on 0.001 to 0.1 ETH: at most 300 USDC or 0.1 ETH of collateral
    (exactly the margin unless `collateral` says otherwise)."""
    kind = kind or rng.choice((OptionKind.PUT, OptionKind.CALL))
    strike = rng.randint(1_000, 3_000) * USDC
    size = rng.randint(1, 100) * ETH // 1000  # 0.001 .. 0.1 ETH
    return build_open_option(
        writer,
        holder,
        kind,
        strike,
        size,
        option_expiry,
        rng.randint(0, 5 * USDC) if premium is None else premium,
        expiry,
        underlying_decimals=9,
        collateral=collateral,
        nonce=rng.getrandbits(63),
    )


def transfer_bundle(
    alpha_sender: Keypair, beta_sender: Keypair, to: Keypair, expiry: int, rng: random.Random
) -> pb.SignedBundle:
    legs = [
        Leg(
            "alpha",
            alpha_sender.address,
            Transfer(to.address, "USDC", Amount(rng.randint(1, 10**6))),
        ),
        Leg(
            "beta", beta_sender.address, Transfer(to.address, "ETH", Amount(rng.randint(1, 10**6)))
        ),
    ]
    return build_bundle(legs, [alpha_sender, beta_sender], expiry, nonce=rng.getrandbits(63))


async def submit_all(
    client: Client, jobs: Sequence[Sequence[pb.SignedBundle]], concurrency: int
) -> dict[bytes, int]:
    """Submit every job (a conflicting pair together), `concurrency` at a time;
    the height each bundle was ordered at."""
    gate = asyncio.Semaphore(concurrency)
    heights: dict[bytes, int] = {}

    async def one(job: Sequence[pb.SignedBundle]) -> None:
        async with gate:
            acks = await asyncio.gather(*(client.submit_bundle(b, timeout=60) for b in job))
        for ack in acks:
            assert not ack.duplicate
            heights[ack.id] = ack.height

    await asyncio.gather(*(one(j) for j in jobs))
    return heights


async def _workload(net: Net, seed: int) -> None:
    rng = random.Random(seed)
    started = time.monotonic()
    async with (
        Client(net.sequencer) as client,
        NodeClient(net.endpoint("alpha")) as alpha,
        NodeClient(net.endpoint("beta")) as beta,
    ):
        head = (await client.status()).height
        expiry = head + 3000

        # Set-up, ordered before the workload: fund the writers of the conflicting
        # opens (1,000 USDC each on alpha), and open options that expire soon so
        # that the workload can carry two settles of each.
        conflict_writers = [fresh(seed, "conflict-writer", i) for i in range(100)]
        funding = [
            build_transfer(
                rng.choice(DEV), "alpha", w.address, "USDC", 1_000 * USDC, expiry, nonce=i
            )
            for i, w in enumerate(conflict_writers)
        ]
        option_expiry = head + 40
        to_settle = []
        for _ in range(50):
            writer, holder = two(rng)
            to_settle.append(
                (holder, small_option(rng, writer, holder, option_expiry, expiry, premium=USDC))
            )
        funded = await client.submit_batch(funding)
        assert all(r.ok for r in funded), [r.message for r in funded if not r.ok]
        opened = await submit_all(client, [[b] for _, b in to_settle], 25)
        decided = await decisions_for(client, set(opened), head + 1, 30)
        assert all(d.commit for _, d in decided.values()), "an option for the settle pairs"
        while (await client.status()).height <= option_expiry:
            await asyncio.sleep(0.05)
        price = 2_000 * USDC
        ack = await client.submit_tx(
            build_price_update(ORACLE, "beta", "ETH", "USDC", price, expiry)
        )
        assert (await beta.wait_for_receipt(ack.id)).ok
        setup_done = time.monotonic()

        # The workload, built before any of it is submitted.
        head = (await client.status()).height
        w = Workload()
        for _ in range(300):  # valid: transfers between dev accounts on both rollups
            a, b = two(rng)
            w.add(transfer_bundle(a, b, rng.choice(DEV), expiry, rng), Expect("valid"))
        for _ in range(150):  # valid: options with far expiry
            writer, holder = two(rng)
            w.add(small_option(rng, writer, holder, head + 5000, expiry), Expect("valid"))
        for i in range(50):  # invalid on alpha: the writer has nothing to lock
            writer, holder = fresh(seed, "poor-writer", i), rng.choice(DEV)
            w.add(
                small_option(rng, writer, holder, head + 5000, expiry),
                Expect("alpha", "legs[0] on alpha: insufficient"),
            )
        for _ in range(50):  # invalid on alpha: locks more than anyone holds
            writer, holder = two(rng)
            bundle = small_option(
                rng, writer, holder, head + 5000, expiry, collateral=MORE_THAN_ANYONE
            )
            w.add(bundle, Expect("alpha", "legs[0] on alpha: insufficient"))
        for i in range(50):  # invalid on alpha: a transfer leg from an empty account
            a, b = fresh(seed, "empty-sender", i), rng.choice(DEV)
            w.add(
                transfer_bundle(a, b, rng.choice(DEV), expiry, rng),
                Expect("alpha", "legs[0] on alpha: insufficient USDC"),
            )
        for _ in range(50):  # invalid on beta: margin too thin by one base unit
            writer, holder = two(rng)
            strike, size = rng.randint(1_000, 3_000) * USDC, rng.randint(1, 100) * ETH // 1000
            need = compute_collateral(OptionKind.PUT, strike, size, 9)
            bundle = build_open_option(
                writer,
                holder,
                OptionKind.PUT,
                strike,
                size,
                head + 5000,
                USDC,
                expiry,
                collateral=need - 1,
                nonce=rng.getrandbits(63),
            )
            w.add(bundle, Expect("beta", "legs[1] on beta: margin:"))
        for i in range(50):  # invalid on beta: the holder cannot pay the premium
            writer, holder = rng.choice(DEV), fresh(seed, "poor-holder", i)
            w.add(
                small_option(rng, writer, holder, head + 5000, expiry, premium=USDC),
                Expect("beta", "legs[1] on beta: insufficient USDC"),
            )
        for _ in range(50):  # invalid on beta: the option's expiry has passed
            writer, holder = two(rng)
            w.add(
                small_option(rng, writer, holder, rng.randint(1, head), expiry),
                Expect("beta", "legs[1] on beta: option expiry"),
            )
        for writer in conflict_writers:  # conflict: their two locks exceed the balance
            holder = rng.choice(DEV)
            a, b = (
                small_option(
                    rng, writer, holder, head + 5000, expiry, OptionKind.PUT, collateral=600 * USDC
                )
                for _ in range(2)
            )
            w.add_pair(a, b)
        settles: dict[int, tuple[bytes, int]] = {}
        for holder, opened_bundle in to_settle:  # conflict: two settles of one option
            option_id = compute_submission_id(opened_bundle)
            o = codec.decode_bundle(opened_bundle).body.legs[1].action
            assert isinstance(o, OpenOption)
            payout = compute_payout(o.kind, o.strike, o.size, price, 9)
            a, b = (
                build_settle_option(
                    k, option_id, payout, holder.address, expiry, nonce=rng.getrandbits(63)
                )
                for k in rng.sample(DEV, 2)
            )
            settles[len(w.pairs)] = (option_id, int(payout))
            w.add_pair(a, b)
        rng.shuffle(w.jobs)
        assert len(w.expect) >= 1000
        built = time.monotonic()

        first = (await client.status()).height + 1
        heights = await submit_all(client, w.jobs, concurrency=128)
        submitted = time.monotonic()
        shape = LogShape()
        decided = await decisions_for(client, set(w.expect), first, timeout=60, shape=shape)
        all_decided = time.monotonic()

        # Outcomes per class, from the ordered log.
        for bundle_id, e in w.expect.items():
            height, d = decided[bundle_id]
            assert height > heights[bundle_id]
            if e.kind == "valid":
                assert d.commit, f"valid bundle {bundle_id.hex()} aborted: {d.code.name}"
            elif e.kind in ("alpha", "beta"):
                assert not d.commit, f"{bundle_id.hex()} should abort on {e.kind}"
                assert d.code == ReasonCode.VOTED_NO, d  # which rollup and why: its record
        for n, ids in w.pairs.items():
            outcomes = [decided[i][1] for i in ids]
            assert sorted(d.commit for d in outcomes) == [False, True], (n, outcomes)
            loser = next(d for d in outcomes if not d.commit)
            assert loser.code == ReasonCode.VOTED_NO, loser

        # Each rollup's own record agrees and names the rollup that refused.
        last = max(h for h, _ in decided.values())
        await asyncio.gather(alpha.wait_for_height(last, 60), beta.wait_for_height(last, 60))
        gate = asyncio.Semaphore(32)

        async def records(bundle_id: bytes) -> None:
            async with gate:
                ra, rb = await asyncio.gather(alpha.bundle(bundle_id), beta.bundle(bundle_id))
            commit = decided[bundle_id][1].commit
            assert ra.status == rb.status == (COMMITTED if commit else ABORTED)
            e = w.expect[bundle_id]
            if e.kind in ("alpha", "beta"):
                mine = ra if e.kind == "alpha" else rb
                assert not mine.vote and mine.reason.startswith(e.reason), mine.reason

        await asyncio.gather(*(records(i) for i in w.expect))
        for writer in conflict_writers:  # exactly one 600 USDC lock out of 1,000
            assert await usdc(alpha, writer) == 400 * USDC
        for option_id, payout in settles.values():  # settled once, paid once
            lien, o = await asyncio.gather(alpha.lien(option_id), beta.option(option_id))
            assert lien.status == npb.Lien.STATUS_RELEASED and lien.paid_out == payout
            assert o.status == npb.OptionPosition.STATUS_SETTLED and o.payout == payout

        report = await assert_invariants(net)
        checked = time.monotonic()
    figures = {c.name: c.figures for c in report.checks}
    assert figures["decisions"]["pending"] == 0
    assert figures["atomicity"]["bundle_records_checked"] >= 4 * len(w.expect)
    for asset, per_rollup in (("USDC", GENESIS_USDC), ("ETH", GENESIS_ETH)):
        assert (
            figures["conservation"]["assets"][asset]["minted"] == 2 * DEV_ACCOUNT_COUNT * per_rollup
        )
    commits = sum(1 for _, d in decided.values() if d.commit)
    print(
        f"{len(w.expect)} bundles ({commits} committed): set-up {setup_done - started:.1f}s,"
        f" build {built - setup_done:.1f}s, submit {submitted - built:.1f}s"
        f" ({len(w.expect) / (submitted - built):.0f}/s), all decided"
        f" {all_decided - submitted:.1f}s later, checks {checked - all_decided:.1f}s;"
        f" up to {shape.most_bundles} bundles a block, {shape.split_votes} votes split"
    )
    net.assert_clean_logs()


def test_workload_of_bundles_is_atomic_and_conserves_supply(start_devnet, seed: int) -> None:
    net = net_of(start_devnet(replicas=True))
    asyncio.run(_workload(net, seed))


# ---------------------------------------------------------------- I5: a paused rollup


async def wait_prepared(node: NodeClient, bundle_id: bytes, timeout: float = 30) -> None:
    """Until `node` has prepared the bundle (its record exists)."""
    async with asyncio.timeout(timeout):
        while True:
            with contextlib.suppress(aio.AioRpcError):
                if (await node.bundle(bundle_id)).status == PREPARED:
                    return
            await asyncio.sleep(0.01)


async def votes_before(client: Client, bundle_id: bytes, rollup: str, height: int) -> list[int]:
    """Heights below `height` whose block carries a vote of `rollup` on the bundle."""
    out = []
    async for msg in client.stream_blocks(1):
        block = codec.decode_block(msg)
        if block.height >= height:
            break
        for e in block.entries:
            if isinstance(e, Vote) and e.body.rollup == rollup:
                out += [int(block.height) for v in e.body.votes if v.bundle_id == bundle_id]
    return out


async def _paused_rollup(net: Net) -> None:
    writer, holder = DEV[2], DEV[3]
    deadline_blocks = net.genesis.limits.bundle_deadline_blocks
    async with (
        Client(net.sequencer) as client,
        NodeClient(net.endpoint("alpha")) as alpha,
        NodeClient(net.endpoint("beta")) as beta,
        NodeClient(net.endpoint("beta-replica")) as beta_replica,
    ):
        before = await usdc(alpha, writer), await usdc(beta, holder), await usdc(beta, writer)
        head = (await client.status()).height
        bundle = build_open_option(
            writer,
            holder,
            OptionKind.PUT,
            2_000 * USDC,
            ETH // 10,
            head + 1000,
            USDC,
            head + 500,
            nonce=1,
        )
        with paused(net, "beta", "beta-replica"):  # either replica may vote: stop both
            ack = await client.submit_bundle(bundle)
            at_alpha = await alpha.wait_for_bundle(ack.id, timeout=30)
            deadline = ack.height + deadline_blocks
            assert at_alpha.status == ABORTED
            assert at_alpha.vote  # alpha could lock: only beta's vote is missing
            assert at_alpha.reason_code == ReasonCode.DEADLINE, at_alpha
            assert at_alpha.decision_height == deadline
            assert at_alpha.decision_height == deadline
            assert await usdc(alpha, writer) == before[0]  # the lock came back
        for node in (beta, beta_replica):  # resumed: each replays the log to the same end
            record = await node.wait_for_bundle(ack.id, timeout=30)
            assert record.status == ABORTED
            assert (record.prepare_height, record.decision_height) == (ack.height, deadline)
            assert record.vote  # it would have voted yes: the deadline decided, not beta
            assert record.reason_code == ReasonCode.DEADLINE
            assert (await usdc(node, holder), await usdc(node, writer)) == before[1:]
        with pytest.raises(aio.AioRpcError) as lien:
            await alpha.lien(ack.id)
        assert lien.value.code() == grpc.StatusCode.NOT_FOUND
        assert await votes_before(client, ack.id, "beta", deadline + 1) == []
        await assert_invariants(net)  # same decision everywhere, equal roots at every height
    net.assert_clean_logs()


def test_paused_rollup_aborts_at_deadline_and_catches_up(start_devnet) -> None:
    net = net_of(start_devnet(replicas=True))
    asyncio.run(_paused_rollup(net))


# ---------------------------------------------------------------- escrow is out of reach


async def _escrow_is_out_of_reach(net: Net) -> None:
    writer, holder, other = DEV[4], DEV[5], DEV[6]
    async with (
        Client(net.sequencer) as client,
        NodeClient(net.endpoint("alpha")) as alpha,
        NodeClient(net.endpoint("alpha-replica")) as alpha_replica,
        NodeClient(net.endpoint("beta")) as beta,
    ):
        before = await usdc(alpha, writer)
        assert before == GENESIS_USDC
        free = 10 * USDC
        head = (await client.status()).height
        bundle = build_open_option(
            writer,
            holder,
            OptionKind.PUT,
            2_000 * USDC,
            ETH // 10,  # needs 200 USDC; the lien locks all but 10 USDC of the writer's
            head + 1000,
            USDC,
            head + 500,
            collateral=before - free,
            nonce=1,
        )
        with paused(net, "beta", "beta-replica"):  # the bundle stays undecided
            ack = await client.submit_bundle(bundle)
            await wait_prepared(alpha, ack.id)
            assert await usdc(alpha, writer) == free
            supply = {a.asset: a for a in (await alpha.supply()).assets}
            assert supply["USDC"].escrowed == before - free
            # the writer tries to spend 1 base unit more than is free, by a
            # transaction and by a bundle leg
            spend_tx = build_transfer(
                writer, "alpha", other.address, "USDC", free + 1, head + 500, nonce=1
            )
            spend = await client.submit_tx(spend_tx)
            leg = Leg("alpha", writer.address, Transfer(other.address, "USDC", Amount(free + 1)))
            spend_bundle = build_bundle([leg], [writer], head + 500, nonce=2)
            spend_leg = await client.submit_bundle(spend_bundle)
            receipt = await alpha.wait_for_receipt(spend.id)
            assert not receipt.ok and receipt.reason.startswith("insufficient USDC"), receipt
            refused = await alpha.wait_for_bundle(spend_leg.id)
            assert refused.status == ABORTED
            assert refused.reason.startswith("legs[0] on alpha: insufficient USDC")
            record = await alpha.wait_for_bundle(ack.id, timeout=30)
            assert spend.height < record.decision_height  # spent while undecided
            assert record.status == ABORTED and record.reason_code == ReasonCode.DEADLINE
            for node in (alpha, alpha_replica):  # returned exactly, to the base unit
                assert await usdc(node, writer) == before
                assert await usdc(node, other) == GENESIS_USDC
        assert (await beta.wait_for_bundle(ack.id, timeout=30)).status == ABORTED
        assert await usdc(beta, holder) == GENESIS_USDC  # the premium came back too
        report = await assert_invariants(net)
        usdc_figures = next(c for c in report.checks if c.name == "conservation").figures
        assert usdc_figures["assets"]["USDC"]["escrowed"] == 0
    net.assert_clean_logs()


def test_escrowed_collateral_cannot_be_spent_until_decided(start_devnet) -> None:
    net = net_of(start_devnet(replicas=True))
    asyncio.run(_escrow_is_out_of_reach(net))


# ---------------------------------------------------------------- I6 for the protocol


async def _protocol_input(net: Net) -> None:
    writer, holder, keeper, payee = DEV[1], DEV[2], DEV[3], DEV[7]
    beta_key, alpha_key = derive_rollup_vote_key("beta"), derive_rollup_vote_key("alpha")
    async with (
        Client(net.sequencer) as client,
        NodeClient(net.endpoint("alpha")) as alpha,
        NodeClient(net.endpoint("beta")) as beta,
    ):
        nodes = {"alpha": alpha, "beta": beta}
        head = (await client.status()).height
        expiry = head + 1000

        def two_legs(amount: int) -> pb.SignedBundle:
            legs = [
                Leg("alpha", writer.address, Transfer(payee.address, "USDC", Amount(amount))),
                Leg("beta", holder.address, Transfer(payee.address, "ETH", Amount(amount))),
            ]
            return build_bundle(legs, [writer, holder], expiry, nonce=amount)

        # Forged votes are refused, and a yes that would commit does not count.
        with paused(net, "beta", "beta-replica"):
            ack = await client.submit_bundle(two_legs(1))
            await wait_prepared(alpha, ack.id)
            yes = BundleVote(ack.id, True, ReasonCode.NONE, Height(ack.height))
            forged = {
                "dev key": (signed_vote(DEV[0], "beta", ack.height, yes), "PERMISSION_DENIED"),
                "alpha's key": (
                    signed_vote(alpha_key, "beta", ack.height, yes),
                    "PERMISSION_DENIED",
                ),
                "bad signature": (
                    signed_vote(beta_key, "beta", ack.height, yes, tamper=True),
                    "UNAUTHENTICATED",
                ),
            }
            for what, (vote, want) in forged.items():
                code, message = await status_code(client.submit_vote(vote))
                assert code.name == want, (what, code, message)
                assert message, what
                with pytest.raises(aio.AioRpcError) as nf:  # nothing was ordered
                    await client.get_submission(codec.compute_entry_id(pb.Entry(vote=vote)))
                assert nf.value.code() == grpc.StatusCode.NOT_FOUND
            record = await alpha.wait_for_bundle(ack.id, timeout=30)
            deadline = ack.height + net.genesis.limits.bundle_deadline_blocks
            assert record.status == ABORTED
            assert record.reason_code == ReasonCode.DEADLINE
            assert record.decision_height == deadline
        # With beta live, a forged no changes nothing either: the bundle commits.
        payee_before = await usdc(alpha, payee)
        bundle = two_legs(2)
        pending = asyncio.create_task(client.submit_bundle(bundle))
        no = BundleVote(compute_submission_id(bundle), False, ReasonCode.REFUSED, Height(head))
        code, _ = await status_code(client.submit_vote(signed_vote(DEV[0], "beta", head, no)))
        assert code == grpc.StatusCode.PERMISSION_DENIED
        ack = await pending
        records = await wait_for_decision(nodes, ack.id)
        assert all(r.status == COMMITTED for r in records.values()), records
        assert await usdc(alpha, payee) == payee_before + 2

        # A replayed bundle is ordered once and executes once.
        payee_before = await usdc(alpha, payee)
        bundle = two_legs(1_000)
        first, second = await asyncio.gather(
            client.submit_bundle(bundle), client.submit_bundle(bundle)
        )
        assert sorted([first.duplicate, second.duplicate]) == [False, True]
        assert (first.id, first.height, first.index) == (second.id, second.height, second.index)
        records = await wait_for_decision(nodes, first.id)
        assert all(r.status == COMMITTED for r in records.values())
        again = await client.submit_bundle(bundle)  # after its decision
        assert again.duplicate and (again.height, again.index) == (first.height, first.index)
        await alpha.wait_for_height((await client.status()).height)
        assert await usdc(alpha, payee) == payee_before + 1_000

        # A lien cannot be spent by a single leg.
        opened = []
        for i in range(2):
            b = build_open_option(
                writer,
                holder,
                OptionKind.PUT,
                2_000 * USDC,
                ETH // 10,
                head + 300,
                USDC,
                expiry,
                nonce=i,
            )
            ack = await client.submit_bundle(b)
            records = await wait_for_decision(nodes, ack.id)
            assert all(r.status == COMMITTED for r in records.values()), records
            opened.append(ack.id)
        lien_id, other_id = opened
        writer_before = await usdc(alpha, writer)
        release = ReleaseLien(lien_id, Amount(0), writer.address)
        refusals = {
            "plain transaction": (
                client.submit_tx(build_tx(keeper, "alpha", release, expiry, nonce=1)),
                "only valid as a leg of a bundle",
            ),
            "release alone": (
                client.submit_bundle(
                    build_bundle([Leg("alpha", keeper.address, release)], [keeper], expiry, nonce=1)
                ),
                "go together",
            ),
            "settle of another position": (
                client.submit_bundle(
                    build_bundle(
                        [
                            Leg("beta", keeper.address, SettleOption(other_id, Amount(0))),
                            Leg("alpha", keeper.address, release),
                        ],
                        [keeper],
                        expiry,
                        nonce=2,
                    )
                ),
                "must name the settled position",
            ),
        }
        for what, (call, fragment) in refusals.items():
            code, message = await status_code(call)
            assert code == grpc.StatusCode.INVALID_ARGUMENT, (what, code, message)
            assert fragment in message, (what, message)
        # A settle before the option's expiry aborts; the lien stays locked.
        early = await client.submit_bundle(
            build_settle_option(keeper, lien_id, 0, holder.address, expiry, nonce=1)
        )
        records = await wait_for_decision(nodes, early.id)
        assert records["alpha"].status == records["beta"].status == ABORTED
        assert records["alpha"].vote  # alpha held the lien pending for the decision
        assert records["beta"].reason.startswith("legs[0] on beta: option expires at height")
        assert records["beta"].reason_code == ReasonCode.NOT_EXPIRED
        assert records["alpha"].reason_code == ReasonCode.VOTED_NO
        lien = await alpha.lien(lien_id)
        assert lien.status == npb.Lien.STATUS_LOCKED and lien.paid_out == 0
        assert (await beta.option(lien_id)).status == npb.OptionPosition.STATUS_OPEN
        assert await usdc(alpha, writer) == writer_before
        await assert_invariants(net)
    net.assert_clean_logs()


def test_forged_votes_replays_and_single_legs_cannot_move_anything(start_devnet) -> None:
    net = net_of(start_devnet(replicas=True))
    asyncio.run(_protocol_input(net))

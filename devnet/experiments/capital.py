"""`devnet experiment capital`: what fragmented collateral costs. The same option
trades done (a) atomically against remote collateral (one bundle locks the lien
on alpha and opens the option on beta) and (b) bridge-then-trade: the collateral
is bridged to beta first (devnet/experiments/bridge.py: lock on alpha, a relayer
that waits a finality delay of D blocks, mint wrapped USDC on beta), the option
opened against a local lien on beta, and after settlement what is left bridged
back (burn on beta, D blocks, unlock on alpha). Every step is a real transaction
on one devnet; D is swept over delays that match published bridge figures
scaled to blocks.

The trades: N cash-secured ETH puts, at the money (the strike is the spot the
oracle last posted when the trader opens), size and premium drawn from the
seed, each decided at a seeded block offset of the run; writer dev account i,
holder dev account 9 (a market maker, whose wUSDC for premiums was bridged once
before the runs: set-up, not counted). The option lives `option_life` blocks
and is settled by its writer at the first price posted at or after expiry. The
oracle posts one seeded price path (a driftless log-normal walk at 70 % a year)
as ETH/USDC and ETH/WUSDC every `oracle_every` blocks, from each run's start.

Definitions (heights from the log: acknowledgements, decisions; wall ms only as
a measurement):
- scale: one devnet block stands for 2 s of the real world (an OP-stack L2
  block), so Orderly's 1-5 min deposit is 90 blocks (3 min), a CCTP standard
  transfer 13-19 min 480 (16 min), an Aevo withdrawal 2-3 h 4,500 (2.5 h), the OP
  standard bridge's 7-day withdrawal 302,400. The same D is applied both ways.
- need C: the collateral the margin rule demands at open (strike x size).
- bridged B: what the bridge trader locks when it decides, before it can know
  the strike: the need at the highest price posted from one posting interval
  before its decision to D + 40 blocks after (the window its open can land in),
  read off the seeded path; the least that covers every spot that window saw.
  Extra collateral = B - C (atomic: 0, the lien is sized in the same bundle
  that opens). The surplus B - C is bridged back at once after the open.
- idle capital: collateral x blocks during which it is the trader's but neither
  free at home nor margin. Atomic: C x (open decided - open ordered) + C x
  (settle decided - settle ordered), the two-phase commits' escrow windows.
  Bridge: B x (open decided - lock ordered) + (B - C) x (its unlock ordered -
  open decided) + C x (settle decided - settle ordered) + (C - payout) x (unlock
  ordered - settle decided). The margin period (open to settle) is not idle.
- latency: entry, from the decision (the head when the trader decides) to the
  open's decision; exit, from the trader's decision to settle (the first price
  at or after expiry) to the collateral back home on alpha (atomic: the settle's
  decision, which releases the lien there; bridge: the unlock). In blocks and
  in wall ms on this devnet.
- submissions: transactions and bundles the trader and the relayer submit for
  the trade (oracle posts are shared and counted apart).

Delays that are too long to run (the OP bridge) are extrapolated from a
per-trade model linear in D whose overheads (blocks beyond D in each leg) are
measured, the extra collateral taken as the random walk's expected window
maximum over the end price, sigma x sqrt(2W/pi); every such figure is labelled
extrapolated. After every run devnet.checker.run_checks (chain, decisions,
atomicity, conservation, durability of every acknowledgement) must pass, and the
bridge's books must balance (wUSDC in circulation = USDC in the vault).

Sizes: small (the test suite) is 2 trades at D = 0 and 20, ~10 s on 2 cores;
full is 8 trades at D = 0, 90, 480, 4,500 on 20 ms blocks: `devnet experiment
capital --seed 1` took 4 min 18 s on 2 shared cores, most of it the 2 x 4,500
blocks of the Aevo-like run."""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grpc import aio

from devnet.checker import NodeRef, run_checks
from devnet.experiments.bridge import (
    ASSET,
    DEST,
    EXPIRY_BLOCKS,
    RESERVE,
    SOURCE,
    SUBMIT_TIMEOUT_S,
    VAULT,
    WRAPPED,
    Chain,
    Relayer,
    bridge_genesis,
    read_books,
)
from devnet.experiments.context import Context
from devnet.experiments.report import Report
from devnet.manifest import Manifest
from xrollup.client import (
    BatchItem,
    Client,
    NodeClient,
    Submitted,
    build_open_option,
    build_price_update,
    build_settle_option,
    build_transfer,
    compute_submission_id,
    node_clients,
    option_liens,
)
from xrollup.genesis import Genesis, decode_genesis
from xrollup.keys import derive_dev_account, derive_oracle_key
from xrollup.model import OptionKind
from xrollup.options import compute_collateral, compute_payout
from xrollup.v1 import node_pb2 as npb
from xrollup.v1 import types_pb2 as pb

ATOMIC, BRIDGE = "atomic", "bridge"
SCALE_S = 2.0  # real-world seconds one devnet block stands for (an OP-stack L2 block)
ANNUAL_VOL = 0.70  # of the seeded ETH price path
SIGMA_BLOCK = ANNUAL_VOL / math.sqrt(365 * 86_400 / SCALE_S)  # per block, log price
Z99 = 2.576  # P(max of a driftless walk > x) = 2 P(end > x): 99 % of the max
START_PRICE = 3_000 * 10**6  # USDC base units per ETH
ETH_DECIMALS = 9
SLACK = 40  # blocks the bridged amount covers past D: the mint and the open land in them
HOLDER = derive_dev_account(9)
HOLDER_FLOAT = 100_000 * 10**6  # wUSDC the market maker bridges once, for premiums
ORACLE = derive_oracle_key()
USDC = 10**6


@dataclass(frozen=True)
class Published:
    source: str
    figure: str
    low_s: int
    high_s: int

    @property
    def blocks(self) -> int:
        """The midpoint of the published range in devnet blocks."""
        return round((self.low_s + self.high_s) / 2 / SCALE_S)


PUBLISHED = (
    Published("Orderly deposit", "1-5 min", 60, 300),
    Published("CCTP standard transfer", "13-19 min", 780, 1_140),
    Published("Aevo withdrawal", "2-3 h", 7_200, 10_800),
    Published("OP standard bridge withdrawal", "7 days", 604_800, 604_800),
)


@dataclass(frozen=True)
class Plan:
    trades: int
    delays: tuple[int, ...]  # the bridge delays run on the devnet, blocks
    option_life: int  # blocks from open to expiry
    spread: int  # decisions fall in the run's first `spread` blocks
    oracle_every: int  # blocks between price posts
    block_interval_ms: int

    def expected_blocks(self, delay: int) -> int:
        return self.spread + 2 * delay + SLACK + self.option_life + 3 * self.oracle_every + 60


def compute_plan(small: bool) -> Plan:
    if small:
        return Plan(
            trades=2,
            delays=(0, 20),
            option_life=30,
            spread=10,
            oracle_every=5,
            block_interval_ms=20,
        )
    return Plan(
        trades=8,
        delays=(0, 90, 480, 4_500),
        option_life=150,
        spread=200,
        oracle_every=10,
        block_interval_ms=20,
    )


@dataclass(frozen=True)
class TradeSpec:
    index: int
    writer: int  # dev account
    offset: int  # blocks after the run's first price post
    size: int  # ETH base units
    premium_bps: int  # of the collateral


def plan_trades(rng: random.Random, plan: Plan) -> list[TradeSpec]:
    offsets = sorted(rng.randrange(plan.spread) for _ in range(plan.trades))
    return [
        TradeSpec(
            i,
            i % 9,
            offset,
            rng.randint(2, 20) * 10**ETH_DECIMALS // 2,  # 1 to 10 ETH
            rng.randint(50, 300),
        )
        for i, offset in enumerate(offsets)
    ]


def compute_price_path(rng: random.Random, posts: int, every: int) -> list[int]:
    """The seeded prices the oracle posts, one per `every` blocks: a driftless
    log-normal walk. Floats only to draw it; each price is an integer."""
    step = SIGMA_BLOCK * math.sqrt(every)
    path, p = [START_PRICE], float(START_PRICE)
    for _ in range(posts - 1):
        p *= math.exp(step * rng.gauss(0.0, 1.0) - step * step / 2)
        path.append(round(p))
    return path


def compute_extra_model(delay: int, every: int) -> float:
    """Expected (window max - price at open) / price over the bridged window
    (the random walk's E[max - end] = sigma sqrt(2W/pi))."""
    return SIGMA_BLOCK * math.sqrt(2 * (delay + SLACK + every) / math.pi)


def compute_cover99(delay: int, every: int) -> float:
    """What a trader must add to cover the window's max 99 % of the time."""
    return math.exp(Z99 * SIGMA_BLOCK * math.sqrt(delay + SLACK + every)) - 1


# ---------------------------------------------------------------- one trade


@dataclass
class TradeResult:
    mode: str
    delay: int
    spec: TradeSpec
    decided_at: int = 0  # the head when the trader decided to trade
    strike: int = 0
    need: int = 0  # C
    bridged: int = 0  # B (atomic: C)
    payout: int = 0
    expiry: int = 0
    settle_id: bytes = b""
    h: dict[str, int] = field(default_factory=dict)  # named heights
    entry_ms: float = math.nan
    exit_ms: float = math.nan
    trader_txs: int = 0
    relayer_txs: int = 0
    bundles: int = 0
    bundle_ids: list[bytes] = field(default_factory=list)
    protocol_entries: int = 0  # the rollups' votes on its bundles and their decisions
    lien_rollups: list[str] = field(default_factory=list)
    settled: bool = False
    acks: list[Submitted] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and self.settled and "home" in self.h

    @property
    def surplus(self) -> int:
        return self.bridged - self.need

    @property
    def released(self) -> int:
        return self.need - self.payout

    def lags(self) -> dict[str, int]:
        """Blocks each amount waits: in (B until the open decides), surplus (B - C
        from then until unlocked at home), settle (C in the settle's escrow),
        out (the released C - payout until home)."""
        h = self.h
        start = h["lock"] if self.mode == BRIDGE else h["open"]
        return {
            "in": h["open_decided"] - start,
            "surplus": h["surplus_unlock"] - h["open_decided"] if self.surplus else 0,
            "settle": h["settle_decided"] - h["settle"],
            "out": h["home"] - h["settle_decided"],
        }

    @property
    def idle(self) -> int:
        """Collateral base units x blocks (see the module's definition)."""
        g = self.lags()
        return (
            self.bridged * g["in"]
            + self.surplus * g["surplus"]
            + self.need * g["settle"]
            + self.released * g["out"]
        )

    @property
    def entry_blocks(self) -> int:
        return self.h["open_decided"] - self.decided_at

    @property
    def exit_blocks(self) -> int:
        return self.h["home"] - self.h["exit_decision"]

    @property
    def submissions(self) -> int:
        return self.trader_txs + self.relayer_txs

    @property
    def log_entries(self) -> int:
        """Everything the trade puts in the log: its submissions, and for each
        bundle one vote per involved rollup and the decision."""
        return self.submissions + self.protocol_entries


class TradeFailed(Exception):
    pass


class Oracle:
    """Posts the seeded path on beta as ETH/USDC and ETH/WUSDC (same price, one
    batch) every `every` blocks from `start`. A trader settling holds `lock` from
    reading the price until its settle is ordered, so no post lands between."""

    def __init__(self, arm: Arm, path: Sequence[int], every: int) -> None:
        self.arm, self.path, self.every = arm, path, every
        self.lock = asyncio.Lock()
        self.items: list[BatchItem] = []

    async def post(self, k: int) -> int:
        arm = self.arm
        price = self.path[min(k, len(self.path) - 1)]
        expiry = arm.chain.head + EXPIRY_BLOCKS
        txs = [
            build_price_update(ORACLE, DEST, "ETH", quote, price, expiry, arm.genesis.chain_id)
            for quote in (ASSET, WRAPPED)
        ]
        items = await arm.client.submit_batch(txs, timeout=30.0)
        bad = [f"{i.code.name} {i.message}" for i in items if not i.ok]
        if bad:
            raise RuntimeError(f"price post refused: {bad}")
        self.items += items
        return items[0].height

    async def run(self, start: int) -> None:
        k = 1
        while True:
            await self.arm.chain.wait_height(start + k * self.every)
            k = max(k, (self.arm.chain.head - start) // self.every)
            async with self.lock:
                await self.post(k)
            k += 1


@dataclass
class Arm:
    """One run of the trades: atomic, or bridge at one delay."""

    mode: str
    delay: int
    plan: Plan
    genesis: Genesis
    path: list[int]
    client: Client
    nodes: dict[str, NodeClient]
    chain: Chain
    relayer: Relayer | None = None
    oracle: Oracle | None = None
    start: int = 0  # the height of the first price post: trade offsets count from it

    async def submit(self, r: TradeResult, msg: pb.SignedTx | pb.SignedBundle) -> Submitted:
        """Submit for the trader, counted as the trade's."""
        ack = await self.client.submit_retrying(msg, SUBMIT_TIMEOUT_S, attempt=10.0)
        r.acks.append(ack)
        r.trader_txs += 1
        if isinstance(msg, pb.SignedBundle):
            r.bundles += 1
            r.bundle_ids.append(ack.id)
        return ack


async def open_option(arm: Arm, r: TradeResult, quote: str, lien_rollup: str, t0: float) -> bytes:
    """Open the at-the-money put at the spot beta shows now; the option's id."""
    spec, beta = r.spec, arm.nodes[DEST]
    writer = derive_dev_account(spec.writer)
    r.strike = int((await beta.price("ETH", quote)).price)
    r.need = int(compute_collateral(OptionKind.PUT, r.strike, spec.size, ETH_DECIMALS))
    if arm.mode == ATOMIC:
        r.bridged = r.need
    elif r.need > r.bridged:
        raise TradeFailed(
            f"the open came after the bridged window: needs {r.need}, bridged {r.bridged}"
        )
    head = arm.chain.head
    r.expiry = head + arm.plan.option_life
    bundle = build_open_option(
        writer,
        HOLDER,
        OptionKind.PUT,
        r.strike,
        spec.size,
        r.expiry,
        r.need * spec.premium_bps // 10_000,
        head + EXPIRY_BLOCKS,
        quote=quote,
        underlying_decimals=ETH_DECIMALS,
        liens=[(lien_rollup, r.need)],
        option_rollup=DEST,
        chain_id=arm.genesis.chain_id,
    )
    bid = compute_submission_id(bundle)
    r.h["open"] = (await arm.submit(r, bundle)).height
    r.h["open_decided"], commit = await arm.chain.wait_decided(bid)
    record = await beta.wait_for_bundle(bid)
    if not commit:
        raise TradeFailed(f"open aborted: {record.reason}")
    r.entry_ms = (time.monotonic() - t0) * 1000
    r.lien_rollups = [on for on, _ in option_liens(await beta.option(bid))]
    return bid


async def settle_option(
    arm: Arm, r: TradeResult, bid: bytes, quote: str, lien_rollup: str
) -> float:
    """Settle at the first price posted at or after expiry; the wall clock when
    the trader decided to (the exit's start)."""
    assert arm.oracle is not None
    beta, writer = arm.nodes[DEST], derive_dev_account(r.spec.writer)
    await arm.chain.wait_height(r.expiry)
    while True:
        async with arm.oracle.lock:
            price = await beta.price("ETH", quote)
            if price.posted_height >= r.expiry:
                t_exit = time.monotonic()
                r.h["exit_decision"] = arm.chain.head
                r.payout = int(
                    compute_payout(OptionKind.PUT, r.strike, r.spec.size, price.price, ETH_DECIMALS)
                )
                bundle = build_settle_option(
                    writer,
                    bid,
                    r.payout,
                    HOLDER.address,
                    arm.chain.head + EXPIRY_BLOCKS,
                    option_rollup=DEST,
                    chain_id=arm.genesis.chain_id,
                    liens=[(lien_rollup, r.need)],
                )
                r.h["settle"] = (await arm.submit(r, bundle)).height
                break
        await arm.chain.next_block()
    r.settle_id = compute_submission_id(bundle)
    r.h["settle_decided"], commit = await arm.chain.wait_decided(r.settle_id)
    record = await beta.wait_for_bundle(r.settle_id)
    if not commit:
        raise TradeFailed(f"settle aborted: {record.reason}")
    r.settled = (await beta.option(bid)).status == npb.OptionPosition.STATUS_SETTLED
    return t_exit


async def cross(
    arm: Arm, r: TradeResult, name: str, rollup: str, to: bytes, asset: str, amount: int
) -> int:
    """A lock (or burn) by the trader, its height kept as `name`, and the
    relayer's mint (or unlock): the height that ordered the relayer's transfer,
    once it has executed."""
    assert arm.relayer is not None
    writer = derive_dev_account(r.spec.writer)
    tx = build_transfer(
        writer, rollup, to, asset, amount, arm.chain.head + EXPIRY_BLOCKS, arm.genesis.chain_id
    )
    ack = await arm.submit(r, tx)
    r.h[name] = ack.height
    crossing = await arm.relayer.wait(ack.id)
    r.relayer_txs += 1
    r.acks.append(crossing.ordered)
    if not crossing.ok:
        raise TradeFailed(f"the relayer's {crossing.kind} failed")
    return crossing.ordered.height


async def trade_atomic(arm: Arm, r: TradeResult) -> None:
    r.decided_at = await arm.chain.wait_height(arm.start + r.spec.offset)
    bid = await open_option(arm, r, ASSET, SOURCE, time.monotonic())
    t_exit = await settle_option(arm, r, bid, ASSET, SOURCE)
    # The release leg on alpha pays the rest back to the writer at home.
    await arm.nodes[SOURCE].wait_for_bundle(r.settle_id)
    r.exit_ms = (time.monotonic() - t_exit) * 1000
    r.h["home"] = r.h["settle_decided"]


async def trade_bridge(arm: Arm, r: TradeResult) -> None:
    spec, every = r.spec, arm.plan.oracle_every
    r.decided_at = await arm.chain.wait_height(arm.start + spec.offset)
    t0 = time.monotonic()
    lo = max(0, spec.offset // every - 1)
    hi = (spec.offset + arm.delay + SLACK) // every
    top = max(arm.path[min(k, len(arm.path) - 1)] for k in range(lo, hi + 1))
    r.bridged = int(compute_collateral(OptionKind.PUT, top, spec.size, ETH_DECIMALS))
    r.h["mint"] = await cross(arm, r, "lock", SOURCE, VAULT.address, ASSET, r.bridged)
    bid = await open_option(arm, r, WRAPPED, DEST, t0)

    async def return_surplus() -> None:
        if r.surplus:
            r.h["surplus_unlock"] = await cross(
                arm, r, "surplus_burn", DEST, RESERVE.address, WRAPPED, r.surplus
            )

    surplus = asyncio.create_task(return_surplus())
    try:
        t_exit = await settle_option(arm, r, bid, WRAPPED, DEST)
        if r.released:
            r.h["home"] = await cross(arm, r, "burn", DEST, RESERVE.address, WRAPPED, r.released)
        else:
            r.h["home"] = r.h["settle_decided"]
        r.exit_ms = (time.monotonic() - t_exit) * 1000
    finally:
        await surplus


async def run_trade(arm: Arm, spec: TradeSpec) -> TradeResult:
    r = TradeResult(arm.mode, arm.delay, spec)
    try:
        await (trade_atomic if arm.mode == ATOMIC else trade_bridge)(arm, r)
    except (TradeFailed, TimeoutError, aio.AioRpcError) as e:
        r.problems.append(f"{type(e).__name__}: {e}")
    return r


# ---------------------------------------------------------------- one run


@dataclass
class ArmRun:
    mode: str
    delay: int
    results: list[TradeResult]
    blocks: int
    seconds: float
    oracle_posts: int
    relayer_problems: list[str]
    books: tuple[int, int]  # (vault, circulating) at the end
    oracle_acks: list[BatchItem] = field(default_factory=list)
    check: dict[str, Any] = field(default_factory=dict)


class Net:
    def __init__(self, manifest: Manifest) -> None:
        self.genesis = decode_genesis(Path(manifest.genesis).read_text())
        seq = manifest.get("sequencer")
        assert seq is not None
        self.sequencer = seq.endpoint
        self.refs = [
            NodeRef(p.name, p.rollup or "", p.endpoint)
            for p in manifest.processes
            if p.role == "node"
        ]
        self.nodes = {p.rollup: p.endpoint for p in self.refs if p.name == p.rollup}
        self.checked_to = 0


async def run_arm(
    net: Net, plan: Plan, mode: str, delay: int, specs: list[TradeSpec], path: list[int]
) -> ArmRun:
    started = time.monotonic()
    async with (
        Client(net.sequencer, net.genesis.chain_id) as client,
        node_clients(net.nodes) as nodes,
    ):
        first = int((await client.status()).height) + 1
        chain = Chain(client, first)
        follower = asyncio.create_task(chain.run())
        arm = Arm(mode, delay, plan, net.genesis, path, client, nodes, chain)
        if mode == BRIDGE:
            arm.relayer = Relayer(client, chain, nodes, net.genesis.chain_id, delay)
        oracle = arm.oracle = Oracle(arm, path, plan.oracle_every)
        posting: asyncio.Task[None] | None = None
        try:
            await chain.wait_height(first)
            arm.start = await oracle.post(0)
            await nodes[DEST].wait_for_receipt(oracle.items[0].id)
            posting = asyncio.create_task(oracle.run(arm.start))
            budget = plan.expected_blocks(delay) * plan.block_interval_ms / 1000 * 4 + 120
            results = await asyncio.wait_for(
                asyncio.gather(*(run_trade(arm, s) for s in specs)), budget
            )
            end = chain.head
            for r in results:
                r.protocol_entries = sum(
                    chain.votes.get(b, 0) + (b in chain.decided) for b in r.bundle_ids
                )
        finally:
            tasks = [t for t in (posting, follower) if t is not None]
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError, aio.AioRpcError):
                    await t
            if arm.relayer is not None:
                await arm.relayer.close()
        books = await read_books(nodes)
    return ArmRun(
        mode,
        delay,
        results,
        end - first,
        time.monotonic() - started,
        len(oracle.items) // 2,
        list(arm.relayer.problems) if arm.relayer else [],
        books,
        oracle.items,
    )


async def fund_holder(net: Net) -> tuple[int, int]:
    """Set-up: the market maker bridges its wUSDC float (D = 0); the books after."""
    async with (
        Client(net.sequencer, net.genesis.chain_id) as client,
        node_clients(net.nodes) as nodes,
    ):
        chain = Chain(client, int((await client.status()).height) + 1)
        follower = asyncio.create_task(chain.run())
        relayer = Relayer(client, chain, nodes, net.genesis.chain_id, 0)
        try:
            await chain.wait_height(chain.head + 1)
            tx = build_transfer(
                HOLDER,
                SOURCE,
                VAULT.address,
                ASSET,
                HOLDER_FLOAT,
                chain.head + EXPIRY_BLOCKS,
                net.genesis.chain_id,
            )
            ack = await client.submit_retrying(tx, SUBMIT_TIMEOUT_S, attempt=10.0)
            crossing = await asyncio.wait_for(relayer.wait(ack.id), 60.0)
            assert crossing.ok, "the market maker's float was not minted"
        finally:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError, aio.AioRpcError):
                await follower
            await relayer.close()
        return await read_books(nodes)


async def check_invariants(net: Net, runs: ArmRun) -> dict[str, Any]:
    """devnet.checker over the devnet after a run, the run's acknowledgements
    (trader, relayer, oracle) as the journal."""
    acks: list[Submitted | BatchItem] = [a for r in runs.results for a in r.acks]
    acks += runs.oracle_acks
    journal = [
        {"id": a.id.hex(), "kind": "entry", "height": a.height, "index": a.index} for a in acks
    ]
    async with Client(net.sequencer, net.genesis.chain_id) as client:
        head = int((await client.status()).height)
    report = await run_checks(
        net.sequencer,
        net.refs,
        net.genesis,
        journal,
        settle_timeout=30.0,
        from_height=net.checked_to,
    )
    net.checked_to = head
    return {
        "ok": report.ok,
        "checks": {c.name: c.ok for c in report.checks},
        "violations": [f"{c.name}: {v}" for c in report.checks for v in c.violations],
        "acknowledged": len(journal),
    }


async def run_all(
    net: Net, plan: Plan, specs: list[TradeSpec], path: list[int]
) -> tuple[tuple[int, int], list[ArmRun]]:
    setup_books = await fund_holder(net)
    runs = []
    for mode, delay in [(ATOMIC, 0), *((BRIDGE, d) for d in plan.delays)]:
        arm = await run_arm(net, plan, mode, delay, specs, path)
        arm.check = await check_invariants(net, arm)
        runs.append(arm)
    return setup_books, runs


def run(ctx: Context) -> Report:
    started = time.monotonic()
    plan = compute_plan(ctx.small)
    specs = plan_trades(ctx.rng("trades"), plan)
    posts = (plan.spread + 2 * max(plan.delays) + SLACK + plan.option_life) // plan.oracle_every
    path = compute_price_path(ctx.rng("price"), posts + 100, plan.oracle_every)
    genesis = bridge_genesis(plan.block_interval_ms)
    with ctx.devnet("capital", genesis=genesis, block_interval_ms=plan.block_interval_ms) as m:
        net = Net(m)
        setup_books, runs = asyncio.run(run_all(net, plan, specs, path))
    return write_report(ctx, plan, specs, runs, setup_books, time.monotonic() - started)


# ---------------------------------------------------------------- the figures


def _mean(values: Sequence[float]) -> float:
    return statistics.fmean(values) if values else math.nan


@dataclass(frozen=True)
class Overheads:
    """Blocks beyond D each bridge leg took, and the atomic figures, measured."""

    bridge_in: float  # lag "in" - D
    bridge_surplus: float  # lag "surplus" - D
    bridge_settle: float
    bridge_out: float  # lag "out" - D
    bridge_entry: float  # entry latency - D
    bridge_exit: float  # exit latency - D
    bridge_submissions: float
    bridge_log_entries: float


def compute_overheads(bridge: list[TradeResult]) -> Overheads:
    lags = [(r, r.lags()) for r in bridge]
    return Overheads(
        _mean([g["in"] - r.delay for r, g in lags]),
        _mean([g["surplus"] - r.delay for r, g in lags if r.surplus]),
        _mean([g["settle"] for _, g in lags]),
        _mean([g["out"] - r.delay for r, g in lags if r.released]),
        _mean([r.entry_blocks - r.delay for r in bridge]),
        _mean([r.exit_blocks - r.delay for r in bridge]),
        _mean([r.submissions for r in bridge]),
        _mean([r.log_entries for r in bridge]),
    )


def compute_model_idle(
    delay: int, amounts: Sequence[tuple[int, int]], o: Overheads, every: int
) -> float:
    """Mean idle capital per trade (base units x blocks) at `delay` by the linear
    model, over trades of (need, released) `amounts`: the bridged amount is the
    need plus the expected window extra."""
    extra = compute_extra_model(delay, every)
    surplus_lag = delay + (o.bridge_surplus if not math.isnan(o.bridge_surplus) else o.bridge_in)
    total = 0.0
    for need, released in amounts:
        x = need * extra
        total += (
            (need + x) * (delay + o.bridge_in)
            + x * surplus_lag
            + need * o.bridge_settle
            + released * (delay + o.bridge_out)
        )
    return total / len(amounts)


@dataclass
class DelayRow:
    delay: int
    extrapolated: bool
    trades: int
    ok: int
    idle_atomic: float  # USDC x blocks, mean per trade
    idle_bridge: float
    idle_model: float
    extra_usdc: float
    extra_pct: float
    extra_model_pct: float
    cover99_pct: float
    entry_atomic: float
    entry_bridge: float
    exit_atomic: float
    exit_bridge: float
    entry_ms_atomic: float
    entry_ms_bridge: float
    exit_ms_atomic: float
    exit_ms_bridge: float
    subs_atomic: float
    subs_bridge: float
    entries_atomic: float  # log entries: submissions, votes, decisions
    entries_bridge: float
    bundles_atomic: float
    bundles_bridge: float

    @property
    def ratio(self) -> float:
        return self.idle_bridge / self.idle_atomic if self.idle_atomic else math.nan

    def to_json(self) -> dict[str, Any]:
        def num(v: float) -> float | None:
            return None if math.isnan(v) else round(v, 4)

        return {
            "delay": self.delay,
            "extrapolated": self.extrapolated,
            "trades": self.trades,
            "trades_ok": self.ok,
            "idle_atomic": num(self.idle_atomic),
            "idle_bridge": num(self.idle_bridge),
            "idle_bridge_model": num(self.idle_model),
            "idle_ratio": num(self.ratio),
            "extra_collateral_usdc": num(self.extra_usdc),
            "extra_collateral_pct": num(self.extra_pct),
            "extra_collateral_model_pct": num(self.extra_model_pct),
            "cover99_pct": num(self.cover99_pct),
            "entry_blocks_atomic": num(self.entry_atomic),
            "entry_blocks_bridge": num(self.entry_bridge),
            "exit_blocks_atomic": num(self.exit_atomic),
            "exit_blocks_bridge": num(self.exit_bridge),
            "entry_ms_atomic": num(self.entry_ms_atomic),
            "entry_ms_bridge": num(self.entry_ms_bridge),
            "exit_ms_atomic": num(self.exit_ms_atomic),
            "exit_ms_bridge": num(self.exit_ms_bridge),
            "tx_atomic": num(self.subs_atomic),
            "tx_bridge": num(self.subs_bridge),
            "log_entries_atomic": num(self.entries_atomic),
            "log_entries_bridge": num(self.entries_bridge),
            "bundles_atomic": num(self.bundles_atomic),
            "bundles_bridge": num(self.bundles_bridge),
        }


def compute_rows(
    plan: Plan, atomic: list[TradeResult], bridges: dict[int, list[TradeResult]]
) -> tuple[list[DelayRow], Overheads]:
    a = [r for r in atomic if r.ok]
    every = plan.oracle_every
    common = dict(
        idle_atomic=_mean([r.idle / USDC for r in a]),
        entry_atomic=_mean([r.entry_blocks for r in a]),
        exit_atomic=_mean([r.exit_blocks for r in a]),
        entry_ms_atomic=_mean([r.entry_ms for r in a]),
        exit_ms_atomic=_mean([r.exit_ms for r in a]),
        subs_atomic=_mean([r.submissions for r in a]),
        entries_atomic=_mean([r.log_entries for r in a]),
        bundles_atomic=_mean([r.bundles for r in a]),
    )
    measured_ok = [r for rs in bridges.values() for r in rs if r.ok]
    o = compute_overheads(measured_ok)
    rows = []
    for delay, results in bridges.items():
        b = [r for r in results if r.ok]
        amounts = [(r.need, r.released) for r in b]
        rows.append(
            DelayRow(
                delay,
                False,
                len(results),
                len(b),
                idle_bridge=_mean([r.idle / USDC for r in b]),
                idle_model=compute_model_idle(delay, amounts, o, every) / USDC if b else math.nan,
                extra_usdc=_mean([r.surplus / USDC for r in b]),
                extra_pct=_mean([100 * r.surplus / r.need for r in b]),
                extra_model_pct=100 * compute_extra_model(delay, every),
                cover99_pct=100 * compute_cover99(delay, every),
                entry_bridge=_mean([r.entry_blocks for r in b]),
                exit_bridge=_mean([r.exit_blocks for r in b]),
                entry_ms_bridge=_mean([r.entry_ms for r in b]),
                exit_ms_bridge=_mean([r.exit_ms for r in b]),
                subs_bridge=_mean([r.submissions for r in b]),
                entries_bridge=_mean([r.log_entries for r in b]),
                bundles_bridge=_mean([r.bundles for r in b]),
                **common,
            )
        )
    last = [r for r in bridges[max(bridges)] if r.ok]
    amounts = [(r.need, r.released) for r in last]
    for p in PUBLISHED:
        if p.blocks in bridges or not amounts:
            continue
        d = p.blocks
        model = compute_model_idle(d, amounts, o, every) / USDC
        rows.append(
            DelayRow(
                d,
                True,
                0,
                0,
                idle_bridge=model,
                idle_model=model,
                extra_usdc=_mean(
                    [need * compute_extra_model(d, every) / USDC for need, _ in amounts]
                ),
                extra_pct=100 * compute_extra_model(d, every),
                extra_model_pct=100 * compute_extra_model(d, every),
                cover99_pct=100 * compute_cover99(d, every),
                entry_bridge=d + o.bridge_entry,
                exit_bridge=d + o.bridge_exit,
                entry_ms_bridge=math.nan,
                exit_ms_bridge=math.nan,
                subs_bridge=o.bridge_submissions,
                entries_bridge=o.bridge_log_entries,
                bundles_bridge=2.0,
                **common,
            )
        )
    rows.sort(key=lambda row: row.delay)
    return rows, o


def _source_of(delay: int) -> str:
    names = [p.source for p in PUBLISHED if p.blocks == delay]
    return names[0] if names else ("no wait" if delay == 0 else "-")


def _duration(blocks: float) -> str:
    """Blocks as real-world time at the scale (2 s per block)."""
    if math.isnan(blocks):
        return "n/a"
    s = blocks * SCALE_S
    if s < 120:
        return f"{s:,.0f} s"
    if s < 7_200:
        return f"{s / 60:,.0f} min"
    if s < 172_800:
        return f"{s / 3600:,.1f} h"
    return f"{s / 86_400:,.1f} d"


def _label(row: DelayRow) -> str:
    return f"{row.delay:,}" + (" (extrapolated)" if row.extrapolated else "")


def plot_idle(
    report: Report, rows: list[DelayRow], o: Overheads, plan: Plan, amounts: list[tuple[int, int]]
) -> None:
    import matplotlib.pyplot as plt

    measured = [r for r in rows if not r.extrapolated]
    extra = [r for r in rows if r.extrapolated]
    top = max(r.delay for r in rows)
    grid = sorted(
        {
            0,
            *range(1, 10),
            *(round(10 ** (k / 8)) for k in range(8, int(8 * math.log10(max(top, 10))) + 2)),
        }
    )
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    ax = axes[0]
    ax.plot(
        [r.delay for r in measured],
        [r.idle_bridge for r in measured],
        "o-",
        color="tab:red",
        label="bridge, measured",
    )
    if amounts:
        ax.plot(
            grid,
            [compute_model_idle(d, amounts, o, plan.oracle_every) / USDC for d in grid],
            "--",
            color="tab:red",
            alpha=0.5,
            label="bridge, linear model",
        )
    if extra:
        ax.plot(
            [r.delay for r in extra],
            [r.idle_bridge for r in extra],
            "o",
            mfc="none",
            color="tab:red",
            label="bridge, extrapolated",
        )
    ax.axhline(rows[0].idle_atomic, color="tab:blue", label="atomic (any delay)")
    for r in rows:
        src = _source_of(r.delay)
        if src not in ("-", "no wait"):
            ax.annotate(
                src.split()[0],
                (r.delay, r.idle_bridge),
                textcoords="offset points",
                xytext=(-10, 8),
                fontsize=8,
            )
    _delay_axis(ax, top)
    ax.set_yscale("log")
    ax.set_xlabel("bridge finality delay D (blocks; 1 block = 2 s)")
    ax.set_ylabel("idle capital per trade (USDC x blocks)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    ax = axes[1]
    ax.plot(
        [r.delay for r in measured],
        [r.extra_pct for r in measured],
        "o-",
        color="tab:red",
        label="bridge, realized on the seeded path",
    )
    ax.plot(
        grid,
        [100 * compute_extra_model(d, plan.oracle_every) for d in grid],
        "--",
        color="tab:red",
        alpha=0.5,
        label="expected (random walk)",
    )
    ax.plot(
        grid,
        [100 * compute_cover99(d, plan.oracle_every) for d in grid],
        ":",
        color="tab:gray",
        label="99 % cover (random walk)",
    )
    ax.axhline(0, color="tab:blue", label="atomic: 0")
    ax.set_yscale("symlog", linthresh=0.01)
    ax.set_ylim(bottom=0)
    _delay_axis(ax, top)
    ax.set_ylabel("extra collateral over the need at open (%)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    fig.suptitle("Idle capital and the extra collateral a bridge window demands")
    fig.tight_layout()
    report.figure(
        fig,
        "capital-idle",
        "Left: idle capital per trade (collateral x blocks neither free at home nor margin)"
        " against the bridge delay, atomic as a flat reference; hollow markers are"
        " extrapolated by the linear model. Right: the extra collateral the bridge trader"
        " locks over the need at open, realized on the seeded path and as the random walk"
        " predicts",
    )


def _delay_axis(ax: Any, top: int) -> None:
    """Delays from 0 on a symmetric-log axis (linear below 10 blocks)."""
    ax.set_xscale("symlog", linthresh=10)
    ax.set_xlim(0, top * 2)
    ax.set_xlabel("bridge finality delay D (blocks; 1 block = 2 s)")


def plot_latency(report: Report, rows: list[DelayRow]) -> None:
    import matplotlib.pyplot as plt

    top = max(r.delay for r in rows)
    measured = [r for r in rows if not r.extrapolated]
    extra = [r for r in rows if r.extrapolated]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    ax = axes[0]
    for attr, style, name in (("entry_bridge", "o-", "entry"), ("exit_bridge", "s-", "exit")):
        ax.plot(
            [r.delay for r in measured],
            [getattr(r, attr) for r in measured],
            style,
            label=f"bridge {name}",
        )
        if extra:
            ax.plot(
                [r.delay for r in extra],
                [getattr(r, attr) for r in extra],
                style[0],
                mfc="none",
                color=ax.lines[-1].get_color(),
                label=f"bridge {name}, extrapolated",
            )
    ax.axhline(rows[0].entry_atomic, color="tab:blue", label="atomic entry")
    ax.axhline(rows[0].exit_atomic, color="tab:cyan", linestyle="--", label="atomic exit")
    _delay_axis(ax, top)
    ax.set_yscale("log")
    ax.set_xlabel("bridge finality delay D (blocks; 1 block = 2 s)")
    ax.set_ylabel("latency (blocks)")
    sec = ax.secondary_yaxis(
        "right", functions=(lambda b: b * SCALE_S / 3600, lambda h: h * 3600 / SCALE_S)
    )
    sec.set_ylabel("at 2 s per block (hours)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    ax = axes[1]
    xs = range(len(measured))
    for shift, mode, color in ((-0.2, "atomic", "tab:blue"), (0.2, "bridge", "tab:red")):
        subs = [getattr(r, f"subs_{mode}") for r in measured]
        proto = [getattr(r, f"entries_{mode}") - getattr(r, f"subs_{mode}") for r in measured]
        pos = [x + shift for x in xs]
        ax.bar(pos, subs, 0.4, color=color, label=f"{mode}: submissions")
        ax.bar(pos, proto, 0.4, bottom=subs, color=color, alpha=0.35,
               label=f"{mode}: votes and decisions on its bundles")  # fmt: skip
    ax.set_xticks(list(xs), [f"D={r.delay:,}" for r in measured])
    ax.set_ylabel("log entries per trade")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    fig.suptitle("End-to-end latency and transactions per trade")
    fig.tight_layout()
    report.figure(
        fig,
        "capital-latency",
        "Left: entry (decision to position open) and exit (decision to settle to collateral"
        " back on alpha) latency in blocks against the bridge delay; atomic as flat"
        " references, hollow markers extrapolated. Right: what one trade puts in the log:"
        " the transactions and bundles the trader and the relayer submit, and the rollups'"
        " votes on its bundles and their decisions",
    )


def describe(rows: list[DelayRow], o: Overheads) -> str:
    """What the numbers say about the essay's claim, said from the numbers."""
    measured = [r for r in rows if not r.extrapolated]
    zero = measured[0]
    parts = [
        f"Atomic trades left {zero.idle_atomic:,.0f} USDC·blocks idle per trade: the"
        " collateral sits in the bundles' escrows while the two-phase commit runs"
        f" ({zero.entry_atomic:.1f} blocks from the decision to the open position,"
        f" {zero.exit_atomic:.1f} from the decision to settle to the collateral back on"
        f" alpha), with {zero.subs_atomic:.0f} submissions per trade, both cross-rollup"
        f" bundles, and {zero.entries_atomic:.0f} log entries counting each bundle's votes"
        " and decision."
    ]
    if zero.delay == 0:
        parts.append(
            f"A bridge with no finality wait at all (D = 0) already leaves {zero.ratio:.1f}x"
            f" that idle ({zero.idle_bridge:,.0f} USDC·blocks), takes"
            f" {zero.entry_bridge:.1f} blocks to open and {zero.exit_bridge:.1f} to get home,"
            f" and {zero.subs_bridge:.1f} submissions ({zero.entries_bridge:.1f} log entries):"
            " lock, mint, open, surplus burn and unlock, settle, burn, unlock, each waiting"
            f" for the one before; it locked {zero.extra_pct:.3f} % more than the need at open."
        )
    for r in measured:
        if r.delay == 0:
            continue
        src = _source_of(r.delay)
        like = f"{src}, " if src != "-" else ""
        parts.append(
            f"At D = {r.delay:,} blocks ({like}{_duration(r.delay)} at 2 s per block) the"
            f" bridge leaves {r.ratio:,.0f}x the atomic idle capital ({r.idle_bridge:,.0f}"
            f" USDC·blocks per trade), takes {r.entry_bridge:,.0f} blocks to open and"
            f" {r.exit_bridge:,.0f} to come home, and locked {r.extra_pct:.2f} % over the need"
            f" on the seeded path (a random walk expects {r.extra_model_pct:.2f} %; covering"
            f" 99 % of windows takes {r.cover99_pct:.2f} %)."
        )
    for r in rows:
        if r.extrapolated:
            parts.append(
                f"Extrapolated to D = {r.delay:,} ({_source_of(r.delay)},"
                f" {_duration(r.delay)}): {r.idle_bridge:,.0f} USDC·blocks idle per trade"
                f" ({r.ratio:,.0f}x atomic, {r.idle_bridge * SCALE_S / 86_400:,.0f} USDC·days),"
                f" {_duration(r.entry_bridge + r.exit_bridge)} in and out, and an expected"
                f" {r.extra_pct:.1f} % extra collateral ({r.cover99_pct:.1f} % to cover 99 %"
                " of windows)."
            )
    over = [r.entry_bridge - r.delay for r in measured]
    parts.append(
        f"Beyond D the bridge's entry took {min(over):.1f} to {max(over):.1f} blocks at every"
        f" measured delay (the lock's ordering, the relayer's mint, the open's commit), so"
        " its idle capital and latency grow linearly in D, and the extra collateral as"
        " sqrt(D): the model's line through the measured points is what the extrapolation"
        " reads."
    )
    verdict = (
        "The numbers support the essay's claim: collateral on another rollup forces the"
        " trader either to over-collateralize (the extra above grows with the window) or to"
        " leave its whole collateral idle through a bridge, and through a real bridge it is"
        " both. "
    )
    cost = []
    if zero.entry_atomic >= zero.entry_bridge or zero.exit_atomic >= zero.exit_bridge:
        cost.append("at D = 0 the atomic trade was not faster than the bridge")
    if zero.entries_atomic >= zero.entries_bridge:
        cost.append("the atomic trade put as many log entries or more in the log")
    cost_text = (
        "Where they disagree: " + "; ".join(cost) + ". "
        if cost
        else "Nowhere here did the atomic path cost more transactions or latency, even at D = 0. "
    )
    caveat = (
        "What atomicity does cost: each of its bundles needs both rollups to vote"
        f" ({zero.entries_atomic - zero.subs_atomic:.0f} votes and decisions per trade"
        f" against {zero.entries_bridge - zero.subs_bridge:.0f} for the bridge's one-rollup"
        " bundles) and holds the collateral in escrow until the decision, so its idle"
        " capital is small but not zero, and it ties the trade's liveness to both rollups"
        " and the shared sequencer (the contagion experiment's subject). On 20 ms blocks a"
        " decision takes more blocks than it would on 2 s blocks, so the atomic figures"
        " here are if anything pessimistic. Premiums and payouts move on beta in both"
        " cases and are not counted."
    )
    return " ".join(parts) + " " + verdict + cost_text + caveat


def write_report(
    ctx: Context,
    plan: Plan,
    specs: list[TradeSpec],
    runs: list[ArmRun],
    setup_books: tuple[int, int],
    seconds: float,
) -> Report:
    report = ctx.report("Capital: atomic remote collateral against bridge-then-trade")
    atomic = next(r for r in runs if r.mode == ATOMIC).results
    bridges = {r.delay: r.results for r in runs if r.mode == BRIDGE}
    rows, o = compute_rows(plan, atomic, bridges)
    largest = max(bridges)
    last = [r for r in bridges[largest] if r.ok]
    amounts = [(r.need, r.released) for r in last]

    report.text(
        f"""{plan.trades} at-the-money cash-secured ETH puts (1 to 10 ETH, premium 0.5 to 3 %
        of the collateral, decided at seeded offsets over the first {plan.spread} blocks,
        option life {plan.option_life} blocks) done on one devnet ({plan.block_interval_ms} ms
        blocks): once atomically (one bundle locks the lien on alpha in USDC and opens the
        option on beta; one bundle settles it and releases the lien), then bridge-then-trade
        at each delay D in {", ".join(f"{d:,}" for d in plan.delays)} blocks (lock USDC in
        the bridge's vault on alpha; the relayer, following the block stream, mints wUSDC
        from the reserve on beta once the head is D blocks past the lock; the option is
        opened against a local lien on beta in wUSDC, quoted ETH/wUSDC; the surplus over
        the need is burnt at once, the rest after settlement, each unlocked on alpha D
        blocks later). The oracle posts one seeded price path (70 % a year) as ETH/USDC and
        ETH/wUSDC every {plan.oracle_every} blocks. Every step is a real transaction or
        bundle; heights come from acknowledgements and from the decisions in the log."""
    )
    report.heading("Definitions")
    report.text(
        f"""Scale: one block stands for {SCALE_S:.0f} s (an OP-stack L2 block); the published
        figures' midpoints in blocks are below. Need C = strike x size at open. Bridged B =
        the need at the highest price posted from one posting interval before the decision
        to D + {SLACK} blocks after it (the window the open can land in), read off the seeded
        path: the least a trader who locks at its decision could have locked and still
        opened; extra collateral = B - C (atomic 0). Idle capital = collateral x blocks
        neither free at home nor margin: atomic, C over each bundle's escrow (ordered to
        decided) at open and at settle; bridge, B from the lock to the open's decision, the
        surplus B - C from then until unlocked home, C in the settle's escrow, and C - payout
        from the settle's decision until unlocked home. Latency: entry from the decision to
        the open's decision; exit from the decision to settle (first price at or after
        expiry) to the collateral back on alpha. Submissions: transactions and bundles of
        the trader and the relayer for the trade; the oracle's posts
        ({sum(r.oracle_posts for r in runs)} batches over the runs) are shared and not
        counted. The same D is applied both ways, though the published figures are for one
        direction each; the atomic arm does not depend on D and is run once."""
    )
    report.table(
        "published bridge delays scaled to blocks (1 block = 2 s)",
        ["source", "published", "midpoint", "blocks", "here"],
        [
            [
                p.source,
                p.figure,
                _duration(p.blocks),
                p.blocks,
                "measured" if p.blocks in bridges else "extrapolated (linear model)",
            ]
            for p in PUBLISHED
        ],
    )

    report.heading("Per delay")
    report.table(
        "capital: idle capital and extra collateral per trade, by bridge delay",
        [
            "delay D (blocks)",
            "at 2 s/block",
            "like",
            "trades ok",
            "idle atomic (USDC·blocks)",
            "idle bridge (USDC·blocks)",
            "bridge / atomic",
            "idle bridge, linear model",
            "idle bridge at 2 s/block (USDC·days)",
            "extra collateral (USDC)",
            "extra % of need",
            "expected extra %",
            "99 % cover %",
        ],
        [
            [
                _label(r),
                _duration(r.delay),
                _source_of(r.delay),
                "-" if r.extrapolated else f"{r.ok}/{r.trades}",
                r.idle_atomic,
                r.idle_bridge,
                r.ratio,
                r.idle_model,
                r.idle_bridge * SCALE_S / 86_400,
                r.extra_usdc,
                r.extra_pct,
                r.extra_model_pct,
                r.cover99_pct,
            ]
            for r in rows
        ],
    )
    report.table(
        "time and transactions: latency and submissions per trade, by bridge delay",
        [
            "delay D (blocks)",
            "entry blocks atomic / bridge",
            "exit blocks atomic / bridge",
            "entry ms atomic / bridge",
            "exit ms atomic / bridge",
            "bridge in + out at 2 s/block",
            "submissions atomic / bridge",
            "of them bundles atomic / bridge",
            "log entries with votes and decisions atomic / bridge",
        ],
        [
            [
                _label(r),
                f"{r.entry_atomic:.1f} / {r.entry_bridge:,.1f}",
                f"{r.exit_atomic:.1f} / {r.exit_bridge:,.1f}",
                f"{r.entry_ms_atomic:,.0f} / "
                + ("n/a" if math.isnan(r.entry_ms_bridge) else f"{r.entry_ms_bridge:,.0f}"),
                f"{r.exit_ms_atomic:,.0f} / "
                + ("n/a" if math.isnan(r.exit_ms_bridge) else f"{r.exit_ms_bridge:,.0f}"),
                _duration(r.entry_bridge + r.exit_bridge),
                f"{r.subs_atomic:.1f} / {r.subs_bridge:.1f}",
                f"{r.bundles_atomic:.0f} / {r.bundles_bridge:.0f}",
                f"{r.entries_atomic:.1f} / {r.entries_bridge:.1f}",
            ]
            for r in rows
        ],
    )
    plot_idle(report, rows, o, plan, amounts)
    plot_latency(report, rows)
    report.text(describe(rows, o))

    report.heading(f"Per trade at D = {largest:,}")
    by_index = {r.spec.index: r for r in atomic}
    report.table(
        f"trades: each trade atomic and through the bridge at D = {largest:,}",
        [
            "trade",
            "writer",
            "size ETH",
            "decided at (offset)",
            "strike atomic / bridge (USDC)",
            "need C atomic / bridge",
            "bridged B",
            "extra B - C",
            "payout (bridge)",
            "idle atomic",
            "idle bridge",
            "entry blocks a / b",
            "exit blocks a / b",
            "submissions a / b",
            "bridge lien on",
            "ok",
        ],
        [
            _trade_row(by_index.get(r.spec.index), r)
            for r in sorted(bridges[largest], key=lambda r: r.spec.index)
        ],
    )

    checks = [(r.mode, r.delay, r.check) for r in runs]
    inv_ok = all(c["ok"] for _, _, c in checks)
    books = [(r.mode, r.delay, r.books) for r in runs]
    books_ok = setup_books[0] == setup_books[1] and all(v == c for _, _, (v, c) in books)
    problems = [
        f"{r.mode} D={r.delay} trade {r.spec.index}: {p}"
        for run in runs
        for r in run.results
        for p in r.problems
    ] + [f"relayer D={run.delay}: {p}" for run in runs for p in run.relayer_problems]
    all_ok = all(r.ok for run in runs for r in run.results)
    local = all(
        r.lien_rollups == [DEST] and r.settled for rs in bridges.values() for r in rs if r.ok
    )
    report.heading("Invariants and the bridge's books")
    report.text(
        f"""After each run devnet.checker.run_checks (chain, equivocation, decisions,
        atomicity, conservation: per rollup and asset, balances + escrows + liens = genesis,
        replicas, durability of every acknowledged trader, relayer and oracle submission).
        {"Every check passed after every run." if inv_ok else "VIOLATIONS: see the table."}
        The bridge's books (USDC in the vault on alpha against wUSDC in circulation on beta,
        the reserve's genesis amount minus what it holds) with nothing in transit:
        {"equal after the set-up and after every run" if books_ok else "UNEQUAL"}.
        {"Every trade opened and settled" if all_ok else "Some trades failed (below)"};
        every bridge option's only lien sat on beta, controlled by beta (local collateral),
        {"and settled" if local else "NOT all settled"}."""
    )
    report.table(
        "invariants: devnet.checker and the bridge's books after each run",
        ["run", "blocks", "wall s", "checks", "acknowledged", "vault USDC", "wUSDC out", "ok"],
        [
            [
                "set-up (float)",
                "-",
                "-",
                "-",
                "-",
                setup_books[0] / USDC,
                setup_books[1] / USDC,
                "yes" if setup_books[0] == setup_books[1] else "NO",
            ]
        ]
        + [
            [
                "atomic" if r.mode == ATOMIC else f"bridge D={r.delay:,}",
                r.blocks,
                round(r.seconds, 1),
                ", ".join(f"{k} {'ok' if v else 'FAILED'}" for k, v in r.check["checks"].items()),
                r.check["acknowledged"],
                r.books[0] / USDC,
                r.books[1] / USDC,
                "yes" if r.check["ok"] and r.books[0] == r.books[1] else "NO",
            ]
            for r in runs
        ],
    )
    if problems:
        report.text("Problems: " + "; ".join(problems[:20]))
    violations = [v for _, _, c in checks for v in c["violations"]]
    if violations:
        report.text("Violations: " + "; ".join(violations[:20]))

    report.summary.update(
        {
            "size": ctx.size,
            "trades": plan.trades,
            "delays_measured": list(plan.delays),
            "delays_extrapolated": [r.delay for r in rows if r.extrapolated],
            "block_interval_ms": plan.block_interval_ms,
            "scale_s_per_block": SCALE_S,
            "rows": [r.to_json() for r in rows],
            "idle_ratio": {str(r.delay): round(r.ratio, 2) for r in rows},
            "idle_bridge_usdc_days": {
                str(r.delay): round(r.idle_bridge * SCALE_S / 86_400, 2) for r in rows
            },
            "overheads_blocks": {
                "bridge_in": round(o.bridge_in, 2),
                "bridge_out": round(o.bridge_out, 2),
                "bridge_settle": round(o.bridge_settle, 2),
                "bridge_entry": round(o.bridge_entry, 2),
                "bridge_exit": round(o.bridge_exit, 2),
            },
            "invariants_ok": inv_ok,
            "books_ok": books_ok,
            "trades_ok": all_ok,
            "local_collateral_settled": local,
            "problems": problems[:50],
            "violations": violations[:50],
            "duration_s": round(seconds, 1),
        }
    )
    return report


def _trade_row(a: TradeResult | None, b: TradeResult) -> list[Any]:
    def both(x: Any, y: Any) -> str:
        return f"{x} / {y}"

    ok_a = a is not None and a.ok
    return [
        b.spec.index,
        b.spec.writer,
        b.spec.size / 10**ETH_DECIMALS,
        b.spec.offset,
        both(f"{a.strike / USDC:,.2f}" if a else "-", f"{b.strike / USDC:,.2f}"),
        both(f"{a.need / USDC:,.0f}" if a else "-", f"{b.need / USDC:,.0f}"),
        b.bridged / USDC,
        b.surplus / USDC,
        b.payout / USDC,
        a.idle / USDC if a and ok_a else math.nan,
        b.idle / USDC if b.ok else math.nan,
        both(a.entry_blocks if ok_a and a else "-", b.entry_blocks if b.ok else "-"),
        both(a.exit_blocks if ok_a and a else "-", b.exit_blocks if b.ok else "-"),
        both(a.submissions if a else "-", b.submissions),
        ", ".join(b.lien_rollups) or "-",
        "yes" if ok_a and b.ok else "NO",
    ]


__all__ = ["run"]

"""`devnet experiment contagion`: what one halted chain does to collateral on the
others (the essay's contagion risk, ../shared/background/), measured on a real
devnet of three rollups: alpha and gamma hold collateral, beta the options.

A seeded workload of cash-secured puts and covered calls opens on beta, each
backed by liens on alpha only, on gamma only, or split across alpha and gamma
(xrollup.options.split_collateral, alpha first in the payout order). A few expire
and settle before gamma's node is killed (SIGKILL by its pid, devnet.faults.kill)
and kept down; the oracle keeps posting a seeded price path on beta. At each
option's expiry a keeper posts the price and submits the settle bundle (a release
leg on every lien rollup). Those with a leg on gamma are prepared on beta and
alpha and abort at their deadline (the bundle's height + 50: gamma never votes),
and the keeper retries while a retry can still be decided inside the claim
window; those backed by alpha alone settle as if nothing happened. From the
option's expiry + limits.lien_grace_blocks the writer reclaims every lien still
locked (ReclaimLien on the lien's own rollup, docs/exits.md): on alpha it
executes at once; on gamma it is ordered in the log but takes effect only when
gamma's node, restarted at the end, replays the log.

Measured per option and per lien, from the nodes' own records: settleable or
not, the abort codes, the collateral frozen on each rollup past expiry (from the
option's expiry to the height its owner could use it again: the settle's
decision, alpha's reclaim, or gamma's return), what the exit released and when,
the payout the holder was owed at expiry and lost. Checked at the end: supply per
asset on every rollup equals genesis (while gamma is down on the live ones, then
on all three), the whole invariant checker (devnet.checker.run_checks), and every
dev account's balance on every rollup against the experiment's own ledger of
what each open, settle and reclaim moved. A failed check fails the run (after
the report is written).

Sizes: small (the test suite) is 6 options, a grace of 100 blocks, 30 ms blocks:
~10 s on 2 shared cores. Full is 40 options (8 expiring before the halt), a grace
of 200 blocks, 40 ms blocks, gamma down ~500 blocks: `devnet experiment contagion
--seed 1` took 31 s."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import grpc
from grpc import aio

from devnet import faults
from devnet.checker import CheckResult, NodeRef, check_conservation, run_checks
from devnet.experiments.context import Context
from devnet.experiments.report import Report
from devnet.manifest import load_manifest
from xrollup.amounts import format_units
from xrollup.client import (
    Client,
    NodeClient,
    build_open_option,
    build_price_update,
    build_reclaim_lien,
    build_settle_option,
    wait_for_decision,
)
from xrollup.errors import XrollupError
from xrollup.genesis import Genesis, dev_genesis
from xrollup.keys import Keypair, derive_dev_account, derive_oracle_key
from xrollup.model import OptionKind, ReasonCode
from xrollup.options import (
    collateral_asset,
    compute_collateral,
    compute_payout,
    split_collateral,
    split_payout,
)
from xrollup.v1 import node_pb2 as npb

ALPHA, BETA, GAMMA = "alpha", "beta", "gamma"
ROLLUPS = (ALPHA, BETA, GAMMA)  # beta holds the options; alpha and gamma the liens
LIEN_ROLLUPS = (ALPHA, GAMMA)
HALTED = GAMMA
BACKINGS: tuple[tuple[str, ...], ...] = ((ALPHA,), (GAMMA,), (ALPHA, GAMMA))
BACKING_WEIGHTS = (4, 3, 4)  # alpha only, gamma only, split
USDC, ETH = "USDC", "ETH"
DECIMALS = {USDC: 6, ETH: 9}
SPOT = 3_000 * 10**6  # the oracle's first ETH/USDC price
WRITERS, HOLDERS, KEEPER = range(0, 5), range(5, 9), 9
TX_EXPIRY_BLOCKS = 2_000
RETRY_GAP = 5  # blocks between an abort and the keeper's next attempt
COMMITTED = npb.BundleRecord.STATUS_COMMITTED
ABORTED = npb.BundleRecord.STATUS_ABORTED
SETTLED_BEFORE = "settled before the halt"
SETTLED_AFTER = "settled during the halt"
UNSETTLEABLE = "unsettleable: reclaimed by the exit"
OUTCOMES = (SETTLED_BEFORE, SETTLED_AFTER, UNSETTLEABLE)


@dataclass(frozen=True)
class Plan:
    options: int
    before_halt: int  # options that expire (and settle) before gamma halts
    grace: int  # limits.lien_grace_blocks
    block_interval_ms: int
    halt_after: int  # blocks after the opens
    spread: int  # the other options expire 10 .. 10 + spread blocks after the halt
    price_every: int  # blocks between the oracle's posts
    timeout_s: float


def compute_plan(small: bool) -> Plan:
    if small:
        return Plan(6, 2, 100, 30, 45, 40, 10, 150.0)
    return Plan(40, 8, 200, 40, 60, 300, 20, 900.0)


def compute_genesis(plan: Plan) -> Genesis:
    g = dev_genesis(block_interval_ms=plan.block_interval_ms, rollups=ROLLUPS)
    assert plan.grace > g.limits.bundle_deadline_blocks + 2 * RETRY_GAP, plan
    return replace(g, limits=replace(g.limits, lien_grace_blocks=plan.grace))


# ---------------------------------------------------------------- the workload


@dataclass(frozen=True)
class OptionSpec:
    number: int
    kind: OptionKind
    strike: int  # USDC base units per ETH
    size: int  # ETH base units
    premium: int  # USDC base units
    expiry_after: int  # blocks after the opening height
    backing: tuple[str, ...]  # lien rollups, in payout order
    weights_bps: tuple[int, ...]
    writer: int
    holder: int

    @property
    def asset(self) -> str:
        return collateral_asset(self.kind, ETH, USDC)

    @property
    def collateral(self) -> int:
        return int(compute_collateral(self.kind, self.strike, self.size, DECIMALS[ETH]))

    @property
    def liens(self) -> list[tuple[str, int]]:
        amounts = split_collateral(self.collateral, self.weights_bps)
        return list(zip(self.backing, amounts, strict=True))

    @property
    def backed_by(self) -> str:
        return "+".join(self.backing)


def compute_workload(plan: Plan, rng: Any) -> list[OptionSpec]:
    """The options, from the seed: kinds, strikes within 15 % of spot, sizes of
    0.25-5 ETH, premiums of 1-4 % of the collateral's value, expiries, backings
    (the first three after the halt cover alpha only, gamma only and split, so
    every run shows each case) and split weights of 30-70 %."""
    forced = list(BACKINGS)
    rng.shuffle(forced)
    specs = []
    kinds = [rng.choice((OptionKind.PUT, OptionKind.CALL)) for _ in range(plan.options)]
    if len(set(kinds)) == 1:
        kinds[-1] = OptionKind.CALL if kinds[0] == OptionKind.PUT else OptionKind.PUT
    for i, kind in enumerate(kinds):
        before = i < plan.before_halt
        j = i - plan.before_halt
        backing: tuple[str, ...]
        if before and i == 0:
            backing = (ALPHA, GAMMA)  # gamma settles like any rollup while it runs
        elif not before and j < len(forced):
            backing = forced[j]
        else:
            backing = rng.choices(BACKINGS, BACKING_WEIGHTS)[0]
        if len(backing) == 2:
            w = rng.randrange(3_000, 7_001, 500)
            weights: tuple[int, ...] = (w, 10_000 - w)
        else:
            weights = (10_000,)
        size = rng.randint(1, 20) * 10 ** DECIMALS[ETH] // 4
        strike = SPOT * rng.randint(85, 115) // 100 // 10**7 * 10**7  # whole 10 USDC
        value = compute_value(
            int(compute_collateral(kind, strike, size, DECIMALS[ETH])),
            collateral_asset(kind, ETH, USDC),
            SPOT,
        )
        if before:
            expiry = rng.randint(15, plan.halt_after - 20)
        else:
            expiry = plan.halt_after + rng.randint(10, 10 + plan.spread)
        specs.append(
            OptionSpec(
                number=i + 1,
                kind=kind,
                strike=strike,
                size=size,
                premium=max(10**6, value * rng.randint(100, 400) // 10_000),
                expiry_after=expiry,
                backing=backing,
                weights_bps=weights,
                writer=rng.choice(WRITERS),
                holder=rng.choice(HOLDERS),
            )
        )
    return specs


class PricePath:
    """The oracle's seeded ETH/USDC path, one price per `every` blocks from the
    opening height (slot 0 is the first price), each a normal step of 2 % from the
    last (in basis points, integers), never below 1 USDC. A post at height h posts
    its slot's price, so the path in heights does not depend on how many posts the
    run makes (a settle posts the current slot's price again, at a new height)."""

    def __init__(self, rng: Any, every: int) -> None:
        self.rng, self.every = rng, every
        self.path = [SPOT]
        self.posted: list[tuple[int, int]] = []  # (height ordered, price)

    def price_for(self, blocks: int) -> int:
        """The price of the slot `blocks` after the opening height."""
        slot = max(0, blocks) // self.every
        while len(self.path) <= slot:
            bps = max(-1_000, min(1_000, round(self.rng.gauss(0, 200))))
            self.path.append(max(10**6, self.path[-1] * (10_000 + bps) // 10_000))
        return self.path[slot]

    def at(self, height: int) -> int:
        """The last price ordered at or before `height`."""
        price = SPOT
        for h, p in self.posted:
            if h > height:
                break
            price = p
        return price


def compute_value(amount: int, asset: str, price: int) -> int:
    """`amount` of `asset` in USDC base units at `price` (USDC base units per ETH)."""
    return amount if asset == USDC else amount * price // 10 ** DECIMALS[ETH]


def fmt(amount: int, asset: str) -> str:
    return f"{format_units(amount, DECIMALS[asset])} {asset}"


def usd(amount: int) -> float:
    """USDC base units as whole USDC, for figures and the summary."""
    return round(amount / 10.0 ** DECIMALS[USDC], 2)


# ---------------------------------------------------------------- what a run records


@dataclass
class Attempt:
    """One settle bundle: what it stated and how the log decided it."""

    bundle_id: bytes
    height: int  # ordered (and prepared) here
    price: int
    payout: int
    shares: tuple[int, ...]
    next_check: int
    status: str = "pending"  # committed | aborted
    decided: int = 0
    code: str = ""  # beta's record of the decision (ReasonCode name)
    alpha_code: str = ""
    gamma_code: str = ""  # gamma's record once it replayed the log


@dataclass
class LienRun:
    rollup: str
    asset: str
    amount: int
    reclaim_id: bytes = b""
    reclaim_height: int = 0  # the reclaim's ordering height
    reclaim_ok: bool | None = None  # None: not executed (yet)
    reclaim_reason: str = ""
    reclaim_tries: int = 0
    next_check: int = 0
    status: str = ""  # the node's record at the end
    released: int = 0  # the record's released_height
    paid_out: int = 0
    usable: int = 0  # from this height its owner could use what it released


@dataclass
class OptionRun:
    spec: OptionSpec
    id: bytes = b""
    opened: int = 0
    expiry: int = 0
    attempts: list[Attempt] = field(default_factory=list)
    liens: list[LienRun] = field(default_factory=list)
    settled: int = 0  # the committed settle's decision height
    outcome: str = ""
    final_status: str = ""  # beta's record at the end

    @property
    def pending(self) -> Attempt | None:
        return next((a for a in self.attempts if a.status == "pending"), None)

    @property
    def owed(self) -> int:
        """The payout at the first settle attempt's price (posted at or after expiry)."""
        return self.attempts[0].payout if self.attempts else 0

    @property
    def paid(self) -> int:
        return sum(a.payout for a in self.attempts if a.status == "committed")

    @property
    def lost(self) -> int:
        return self.owed if self.outcome == UNSETTLEABLE else 0

    def lien(self, rollup: str) -> LienRun | None:
        return next((lien for lien in self.liens if lien.rollup == rollup), None)


@dataclass
class Probe:
    """A reclaim tried before expiry + grace: the exit must refuse it."""

    option: int
    height: int = 0
    tx_id: bytes = b""
    ok: bool | None = None
    reason: str = ""


@dataclass
class SupplyRow:
    when: str
    rollup: str
    asset: str
    genesis: int
    minted: int
    balances: int
    escrowed: int
    liened: int

    @property
    def ok(self) -> bool:
        return self.minted == self.genesis == self.balances + self.escrowed + self.liened


# ---------------------------------------------------------------- the run on a devnet


class Driver:
    """Drives one devnet through the story, heights as the only clock: open, post
    prices, settle at expiry, halt gamma, reclaim at expiry + grace, bring gamma
    back, read every record, check."""

    def __init__(self, ctx: Context, plan: Plan, genesis: Genesis, data_dir: Path) -> None:
        self.plan, self.genesis, self.dir = plan, genesis, data_dir
        self.grace = genesis.limits.lien_grace_blocks
        self.deadline = genesis.limits.bundle_deadline_blocks
        self.options = [OptionRun(s) for s in compute_workload(plan, ctx.rng("workload"))]
        self.prices = PricePath(ctx.rng("prices"), plan.price_every)
        self.oracle = derive_oracle_key()
        self.keeper = derive_dev_account(KEEPER)
        self.poll = max(0.005, plan.block_interval_ms / 3000)
        self.base = self.halt_at = self.halt = self.gamma_applied = 0
        self.end = self.back = 0
        self.probe: Probe | None = None
        self.supply: list[SupplyRow] = []
        self.checks: list[CheckResult] = []
        self.problems: list[str] = []
        self.ledger_mismatches: list[str] = []
        self.ledger_compared = 0

    def endpoint(self, name: str) -> str:
        m = load_manifest(self.dir)
        rec = m.get(name) if m else None
        assert rec is not None, name
        return rec.endpoint

    async def head(self) -> int:
        return int((await self.seq.status()).height)

    async def run(self) -> None:
        async with Client(self.endpoint("sequencer"), self.genesis.chain_id) as seq:
            self.seq = seq
            self.nodes = {r: NodeClient(self.endpoint(r)) for r in ROLLUPS}
            try:
                await self.open_all()
                await self.drive()
                await self.measure_supply("gamma down", (ALPHA, BETA))
                await self.bring_back()
                await self.read_records()
                await self.measure_supply("end", ROLLUPS)
                await self.check_ledger()
                nodes = [NodeRef(r, r, self.endpoint(r)) for r in ROLLUPS]
                report = await run_checks(self.endpoint("sequencer"), nodes, self.genesis)
                self.checks = report.checks
            finally:
                for n in self.nodes.values():
                    await n.close()

    # ------------------------------------------------------------ steps

    async def post_price(self, wait: bool) -> int:
        head = await self.head()
        price = self.prices.price_for(head + 1 - self.base) if self.base else SPOT
        tx = build_price_update(
            self.oracle, BETA, ETH, USDC, price, head + TX_EXPIRY_BLOCKS, self.genesis.chain_id
        )
        ack = await self.seq.submit_tx(tx)
        self.prices.posted.append((ack.height, price))
        if wait:
            receipt = await self.nodes[BETA].wait_for_receipt(ack.id, timeout=30)
            if not receipt.ok:
                raise XrollupError(f"the oracle's price was refused on beta: {receipt.reason}")
        return price

    async def open_all(self) -> None:
        await self.post_price(wait=True)
        head = await self.head()
        self.base = head + 1
        self.halt_at = self.base + self.plan.halt_after
        bundles = []
        for o in self.options:
            s = o.spec
            o.expiry = self.base + s.expiry_after
            bundles.append(
                build_open_option(
                    derive_dev_account(s.writer),
                    derive_dev_account(s.holder),
                    s.kind,
                    s.strike,
                    s.size,
                    o.expiry,
                    s.premium,
                    head + TX_EXPIRY_BLOCKS,
                    chain_id=self.genesis.chain_id,
                    liens=s.liens,
                    option_rollup=BETA,
                )
            )
        acks = await asyncio.gather(*(self.seq.submit_bundle(b) for b in bundles))
        for o, ack in zip(self.options, acks, strict=True):
            o.id, o.opened = ack.id, ack.height
            o.liens = [LienRun(r, o.spec.asset, amount) for r, amount in o.spec.liens]
        decided = await asyncio.gather(
            *(
                wait_for_decision({r: self.nodes[r] for r in (*o.spec.backing, BETA)}, o.id, 60)
                for o in self.options
            )
        )
        for o, records in zip(self.options, decided, strict=True):
            refused = {r: rec.reason for r, rec in records.items() if rec.status != COMMITTED}
            if refused:
                raise XrollupError(f"option #{o.spec.number} did not open: {refused}")

    def wants_attempt(self, o: OptionRun, h: int) -> bool:
        """Settle at expiry; after an abort, again only while the retry would be
        decided (its deadline) before the claim window closes, so a keeper's retry
        never holds a lien PENDING past the exit's height."""
        if o.settled or o.pending or h < o.expiry:
            return False
        close = o.expiry + self.grace
        if not o.attempts:
            return h + 1 < close
        last = o.attempts[-1]
        return h >= last.decided + RETRY_GAP and h + self.deadline + RETRY_GAP < close

    async def settle(self, due: list[OptionRun]) -> None:
        """One price posted now (after every due expiry), then a settle bundle per
        due option at the payout that price gives."""
        price = await self.post_price(wait=True)
        posted = await self.nodes[BETA].price(ETH, USDC)
        assert posted.price == price and all(posted.posted_height >= o.expiry for o in due)
        head = await self.head()
        bundles, attempts = [], []
        for o in due:
            s = o.spec
            payout = int(compute_payout(s.kind, s.strike, s.size, price, DECIMALS[ETH]))
            shares = split_payout(payout, [amount for _, amount in s.liens])
            bundles.append(
                build_settle_option(
                    self.keeper,
                    o.id,
                    payout,
                    derive_dev_account(s.holder).address,
                    head + TX_EXPIRY_BLOCKS,
                    option_rollup=BETA,
                    chain_id=self.genesis.chain_id,
                    liens=s.liens,
                )
            )
            attempts.append((price, payout, shares))
        acks = await asyncio.gather(*(self.seq.submit_bundle(b) for b in bundles))
        for o, ack, (p, payout, shares) in zip(due, acks, attempts, strict=True):
            wait = self.deadline if self.halt and GAMMA in o.spec.backing else 1
            o.attempts.append(Attempt(ack.id, ack.height, p, payout, shares, ack.height + wait))

    async def check_attempt(self, o: OptionRun, a: Attempt, h: int) -> None:
        try:
            rec = await self.nodes[BETA].bundle(a.bundle_id)
        except aio.AioRpcError as e:
            if e.code() != grpc.StatusCode.NOT_FOUND:
                raise
            a.next_check = h + 1  # beta has not applied its block yet
            return
        if rec.status not in (COMMITTED, ABORTED):
            a.next_check = h + 2
            return
        a.status = "committed" if rec.status == COMMITTED else "aborted"
        a.decided = int(rec.decision_height)
        a.code = ReasonCode(rec.reason_code).name
        if ALPHA in o.spec.backing:
            alpha = await self.nodes[ALPHA].wait_for_bundle(a.bundle_id, timeout=30)
            a.alpha_code = ReasonCode(alpha.reason_code).name
            if alpha.status != rec.status:
                self.problems.append(f"option #{o.spec.number}: alpha and beta disagree")
        if rec.status == COMMITTED:
            o.settled = a.decided

    async def reclaim(self, o: OptionRun, lien: LienRun, h: int) -> None:
        tx = build_reclaim_lien(
            derive_dev_account(o.spec.writer),
            o.id,
            h + TX_EXPIRY_BLOCKS,
            rollup=lien.rollup,
            chain_id=self.genesis.chain_id,
        )
        ack = await self.seq.submit_tx(tx)
        lien.reclaim_id, lien.reclaim_height, lien.reclaim_ok = ack.id, ack.height, None
        lien.reclaim_tries += 1
        lien.next_check = ack.height + 1

    async def check_receipt(self, node: NodeClient, tx_id: bytes) -> tuple[bool, str] | None:
        try:
            r = await node.receipt(tx_id)
        except aio.AioRpcError as e:
            if e.code() != grpc.StatusCode.NOT_FOUND:
                raise
            return None
        return r.ok, r.reason

    async def halt_gamma(self) -> None:
        self.gamma_applied = int((await self.nodes[GAMMA].status()).applied_height)
        await self.nodes[GAMMA].close()
        await asyncio.to_thread(faults.kill, self.dir, GAMMA)
        self.halt = await self.head()

    def finished(self) -> bool:
        for o in self.options:
            if o.pending:
                return False
            if o.settled:
                continue
            for lien in o.liens:
                if lien.reclaim_ok:
                    continue
                down = lien.rollup == HALTED and self.halt and not self.back
                if not (down and lien.reclaim_id):
                    return False
        return self.probe is None or self.probe.ok is not None

    async def drive(self) -> None:
        """The main loop, once per new head: halt, prices, settles, decisions,
        the early reclaim probe, reclaims and their receipts."""
        next_price = self.base + self.plan.price_every
        last_expiry = max(o.expiry for o in self.options)
        guard = last_expiry + self.grace + 4 * self.deadline
        last = 0
        while True:
            h = await self.head()
            if h == last:
                await asyncio.sleep(self.poll)
                continue
            last = h
            if h > guard:
                raise XrollupError(f"the workload did not finish by height {guard}")
            if not self.halt and h >= self.halt_at:
                early = [o for o in self.options if o.expiry < self.halt_at]
                if all(o.attempts and not o.pending for o in early):
                    await self.halt_gamma()
            if h >= next_price:
                await self.post_price(wait=False)
                next_price = h + self.plan.price_every
            due = [o for o in self.options if self.wants_attempt(o, h)]
            if due:
                await self.settle(due)
            for o in self.options:
                a = o.pending
                if a and h >= a.next_check:
                    await self.check_attempt(o, a, h)
            await self.run_probe(h)
            for o in self.options:
                if o.settled or o.pending or h + 1 < o.expiry + self.grace:
                    continue
                for lien in o.liens:
                    live = not (lien.rollup == HALTED and self.halt)
                    if not lien.reclaim_id:
                        await self.reclaim(o, lien, h)
                    elif live and lien.reclaim_ok is None and h >= lien.next_check:
                        got = await self.check_receipt(self.nodes[lien.rollup], lien.reclaim_id)
                        if got is None:
                            lien.next_check = h + 1
                            continue
                        lien.reclaim_ok, lien.reclaim_reason = got
                        if not lien.reclaim_ok and lien.reclaim_tries < 5:
                            await self.reclaim(o, lien, h)  # e.g. ordered a block early
            if self.finished():
                self.end = h
                return

    async def run_probe(self, h: int) -> None:
        """Once: the writer of the first option held by gamma's halt with a lien on
        alpha tries to reclaim it right after its first settle aborted, long before
        expiry + grace. Alpha must refuse (NOT_EXPIRED), so the holder keeps the
        whole claim window."""
        if self.probe is None:
            for o in self.options:
                a = o.attempts[0] if o.attempts else None
                if (
                    self.halt
                    and o.lien(ALPHA)
                    and o.lien(GAMMA)
                    and a
                    and a.status == "aborted"
                    and h + 10 < o.expiry + self.grace
                ):
                    self.probe = Probe(o.spec.number)
                    tx = build_reclaim_lien(
                        derive_dev_account(o.spec.writer),
                        o.id,
                        h + TX_EXPIRY_BLOCKS,
                        rollup=ALPHA,
                        chain_id=self.genesis.chain_id,
                    )
                    ack = await self.seq.submit_tx(tx)
                    self.probe.height, self.probe.tx_id = ack.height, ack.id
                    return
        elif self.probe.ok is None and h > self.probe.height:
            got = await self.check_receipt(self.nodes[ALPHA], self.probe.tx_id)
            if got is not None:
                self.probe.ok, self.probe.reason = got
                if self.probe.ok:
                    self.problems.append(
                        f"alpha let option #{self.probe.option}'s lien be reclaimed at height"
                        f" {self.probe.height}, before expiry + grace"
                    )

    async def bring_back(self) -> None:
        """Restart gamma's node (same data directory and port) and wait until it
        has replayed the log to the head; its reclaims execute in that replay at
        the heights the log ordered them."""
        await asyncio.to_thread(faults.restart, self.dir, GAMMA)
        target = await self.head()
        self.nodes[GAMMA] = NodeClient(self.endpoint(GAMMA))
        await self.nodes[GAMMA].wait_for_height(target, timeout=120)
        self.back = await self.head()
        for o in self.options:
            lien = o.lien(GAMMA)
            if o.settled or lien is None:
                continue
            for _ in range(5):
                got = None
                for _ in range(200):
                    got = await self.check_receipt(self.nodes[GAMMA], lien.reclaim_id)
                    if got is not None:
                        break
                    await asyncio.sleep(self.poll)
                lien.reclaim_ok, lien.reclaim_reason = got or (False, "no receipt")
                if lien.reclaim_ok:
                    break
                await self.reclaim(o, lien, await self.head())

    async def read_records(self) -> None:
        """Every option, lien and settle bundle as the nodes recorded them, checked
        against what the run did."""
        for o in self.options:
            n = o.spec.number
            rec = await self.nodes[BETA].option(o.id)
            o.final_status = npb.OptionPosition.Status.Name(rec.status).removeprefix("STATUS_")
            if o.settled:
                o.outcome = SETTLED_BEFORE if o.settled < self.halt else SETTLED_AFTER
                if rec.status != npb.OptionPosition.STATUS_SETTLED or rec.payout != o.paid:
                    self.problems.append(f"option #{n}: beta holds {o.final_status} {rec.payout}")
            else:
                o.outcome = UNSETTLEABLE
                if rec.status != npb.OptionPosition.STATUS_OPEN:
                    self.problems.append(f"option #{n}: beta holds {o.final_status}")
            shares = next((a.shares for a in o.attempts if a.status == "committed"), None)
            for i, lien in enumerate(o.liens):
                r = await self.nodes[lien.rollup].lien(o.id)
                lien.status = npb.Lien.Status.Name(r.status).removeprefix("STATUS_")
                lien.released, lien.paid_out = int(r.released_height), int(r.paid_out)
                if shares is not None:
                    want = (npb.Lien.STATUS_RELEASED, shares[i])
                    lien.usable = lien.released
                else:
                    want = (npb.Lien.STATUS_RECLAIMED, 0)
                    if lien.released != lien.reclaim_height:
                        self.problems.append(
                            f"option #{n}: {lien.rollup}'s lien released at {lien.released},"
                            f" its reclaim was ordered at {lien.reclaim_height}"
                        )
                    lien.usable = max(lien.released, self.back if lien.rollup == HALTED else 0)
                if (r.status, lien.paid_out) != want:
                    self.problems.append(
                        f"option #{n}: {lien.rollup}'s lien is {lien.status} paying"
                        f" {lien.paid_out}, expected {want}"
                    )
            for a in o.attempts:
                if GAMMA in o.spec.backing and a.status == "aborted" and a.height >= self.halt:
                    g = await self.nodes[GAMMA].wait_for_bundle(a.bundle_id, timeout=30)
                    a.gamma_code = ReasonCode(g.reason_code).name
                    if (g.status, g.decision_height) != (ABORTED, a.decided):
                        self.problems.append(
                            f"option #{n}: gamma replayed settle {a.bundle_id.hex()[:12]} to"
                            f" {npb.BundleRecord.Status.Name(g.status)} at {g.decision_height},"
                            f" the log aborted it at {a.decided}"
                        )

    async def measure_supply(self, when: str, rollups: Sequence[str]) -> None:
        """Per rollup and asset: genesis allocations against the node's supply."""
        head = await self.head()
        for r in rollups:
            await self.nodes[r].wait_for_height(head, timeout=60)
        refs = [NodeRef(r, r, self.endpoint(r)) for r in rollups]
        check = await check_conservation(refs)
        check.name = f"conservation ({when})"
        self.checks.append(check)
        for r in rollups:
            s = await self.nodes[r].supply()
            for a in sorted(s.assets, key=lambda a: a.asset):
                genesis = sum(
                    x.amount
                    for x in self.genesis.allocations
                    if (x.rollup, x.asset) == (r, a.asset)
                )
                row = SupplyRow(
                    when, r, a.asset, genesis, a.minted, a.balances, a.escrowed, a.liened
                )
                self.supply.append(row)

    async def check_ledger(self) -> None:
        """Every dev account's balance on every rollup against genesis plus what the
        run's opens (liens locked, premiums), settles (shares to the holder, the
        rest to the writer) and reclaims (the whole lien back) moved."""
        want: dict[tuple[str, int, str], int] = {}
        index = {derive_dev_account(i).address: i for i in range(10)}
        for x in self.genesis.allocations:
            if x.address in index:
                want[(x.rollup, index[x.address], x.asset)] = x.amount

        def move(rollup: str, who: int, asset: str, amount: int) -> None:
            want[(rollup, who, asset)] += amount

        for o in self.options:
            s = o.spec
            move(BETA, s.holder, USDC, -s.premium)
            move(BETA, s.writer, USDC, s.premium)
            shares = next((a.shares for a in o.attempts if a.status == "committed"), None)
            for i, lien in enumerate(o.liens):
                move(lien.rollup, s.writer, lien.asset, -lien.amount)
                if shares is not None:
                    move(lien.rollup, s.holder, lien.asset, shares[i])
                    move(lien.rollup, s.writer, lien.asset, lien.amount - shares[i])
                elif lien.reclaim_ok:
                    move(lien.rollup, s.writer, lien.asset, lien.amount)
        accounts: dict[tuple[str, int], Keypair] = {}
        for r, i, _ in want:
            accounts[(r, i)] = derive_dev_account(i)
        for (r, i), who in sorted(accounts.items()):
            have = await self.nodes[r].balances(who.address)
            for asset in DECIMALS:
                self.ledger_compared += 1
                expected = want.get((r, i, asset), 0)
                if have.get(asset, 0) != expected:
                    self.ledger_mismatches.append(
                        f"dev {i} on {r}: {fmt(have.get(asset, 0), asset)}, the ledger says"
                        f" {fmt(expected, asset)}"
                    )


# ---------------------------------------------------------------- the experiment


def run(ctx: Context) -> Report:
    started = time.monotonic()
    plan = compute_plan(ctx.small)
    genesis = compute_genesis(plan)
    with ctx.devnet("contagion", genesis=genesis, block_interval_ms=plan.block_interval_ms):
        driver = Driver(ctx, plan, genesis, ctx.work_dir / "contagion")
        asyncio.run(asyncio.wait_for(driver.run(), plan.timeout_s))
    report = write_report(ctx, plan, driver, time.monotonic() - started)
    failed = [k for k in ("conservation_passed", "invariants_passed", "ledger_passed")]
    failed = [k for k in failed if not report.summary[k]]
    if failed or driver.problems:
        path = report.write()
        raise XrollupError(
            f"contagion: {', '.join(failed) or 'records'} failed"
            f" ({'; '.join(driver.problems[:3]) or 'see the report'}): {path}"
        )
    return report


# ---------------------------------------------------------------- the report


def frozen_blocks(o: OptionRun, lien: LienRun) -> int:
    """Blocks the lien was held past the option's expiry."""
    return max(0, lien.usable - o.expiry)


def compute_frozen_curve(
    d: Driver, rollup: str, heights: range, price: int, only_unsettled: bool = False
) -> list[float]:
    """Per height, the USDC value (at `price`) of `rollup`'s liens held past their
    option's expiry and not yet usable by their owner."""
    steps: dict[int, int] = {}
    for o in d.options:
        if only_unsettled and o.outcome != UNSETTLEABLE:
            continue
        lien = o.lien(rollup)
        if lien is None or lien.usable <= o.expiry:
            continue
        v = compute_value(lien.amount, lien.asset, price)
        steps[o.expiry] = steps.get(o.expiry, 0) + v
        steps[lien.usable] = steps.get(lien.usable, 0) - v
    out, level = [], 0
    for h in heights:
        level += steps.get(h, 0)
        out.append(usd(level))
    return out


def _median(xs: Iterable[int]) -> float:
    values = list(xs)
    return float(statistics.median(values)) if values else float("nan")


def write_report(ctx: Context, plan: Plan, d: Driver, seconds: float) -> Report:
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    report = ctx.report("Contagion: one collateral rollup halts")
    price = d.prices.at(d.halt)  # ETH valued at the halt's price throughout
    opts = d.options
    stuck = [o for o in opts if o.outcome == UNSETTLEABLE]
    settled = [o for o in opts if o.outcome != UNSETTLEABLE]
    attempts = [a for o in opts for a in o.attempts]
    stuck_attempts = [a for o in stuck for a in o.attempts]
    down = d.back - d.halt

    report.heading("Set-up")
    report.text(
        f"""A devnet of three rollups (sequencer, proxy, one node each; blocks every
        {plan.block_interval_ms} ms): {ALPHA} and {GAMMA} hold collateral, {BETA} the
        options and the oracle's ETH/USDC price (posted every {plan.price_every} blocks
        on a seeded path from {fmt(SPOT, USDC)}). limits.lien_grace_blocks = {d.grace}
        (the claim window after expiry; the dev default is 500) and
        bundle_deadline_blocks = {d.deadline}. {len(opts)} options opened at height
        {d.base}; {plan.before_halt} expire before the halt. Gamma's node was killed
        (SIGKILL by pid) at height {d.halt}, having applied {d.gamma_applied}, and kept
        down until height {d.back} ({down} blocks). ETH is valued at the oracle's price
        at the halt, {fmt(price, USDC)}, wherever a single USDC figure is given.
        Wall time {seconds:.0f} s."""
    )

    # ---- per option
    report.heading("Options")
    rows = []
    for o in opts:
        s = o.spec
        aborts = sorted({a.code for a in o.attempts if a.status == "aborted"})
        rows.append(
            [
                f"#{s.number}",
                s.kind.name.lower(),
                fmt(s.strike, USDC),
                fmt(s.size, ETH),
                " / ".join(f"{r} {fmt(a, s.asset)}" for r, a in s.liens),
                o.expiry,
                o.outcome,
                len(o.attempts),
                ", ".join(aborts) or "-",
                fmt(o.owed, s.asset),
                fmt(o.paid, s.asset),
                " / ".join(f"{lien.rollup} {frozen_blocks(o, lien)}" for lien in o.liens),
            ]
        )
    report.table(
        "options: each option's outcome",
        [
            "option",
            "kind",
            "strike",
            "size",
            "liens (payout order)",
            "expiry",
            "outcome",
            "settle attempts",
            "abort codes",
            "owed at expiry",
            "paid",
            "blocks held past expiry",
        ],
        rows,
    )

    def value_of(o: OptionRun) -> int:
        return compute_value(o.spec.collateral, o.spec.asset, price)

    out_rows = []
    for outcome in OUTCOMES:
        for backing in BACKINGS:
            group = [o for o in opts if o.outcome == outcome and o.spec.backing == backing]
            if not group:
                continue
            out_rows.append(
                [
                    outcome,
                    "+".join(backing),
                    len(group),
                    sum(len(o.attempts) for o in group),
                    usd(sum(value_of(o) for o in group)),
                    usd(sum(compute_value(o.owed, o.spec.asset, price) for o in group)),
                    usd(sum(compute_value(o.paid, o.spec.asset, price) for o in group)),
                    usd(sum(compute_value(o.lost, o.spec.asset, price) for o in group)),
                ]
            )
    report.table(
        "outcomes: by outcome and backing (values in USDC)",
        [
            "outcome",
            "backed by",
            "options",
            "settle attempts",
            "collateral",
            "owed at expiry",
            "paid",
            "lost by the holder",
        ],
        out_rows,
    )

    codes: dict[str, int] = {}
    for a in stuck_attempts:
        codes[a.code] = codes.get(a.code, 0) + 1
    report.table(
        "settle attempts on options gamma's halt held",
        ["decision", "code (beta)", "attempts", "blocks to decision", "gamma's replay agrees"],
        [
            [
                "aborted" if c != "ALL_YES" else "committed",
                c,
                n,
                f"{_median(a.decided - a.height for a in stuck_attempts if a.code == c):g}",
                f"{sum(1 for a in stuck_attempts if a.code == c and a.gamma_code == c)}/{n}",
            ]
            for c, n in sorted(codes.items())
        ],
    )

    # ---- frozen value
    report.heading("What froze, and for how long")
    frozen_rows = []
    frozen: dict[str, dict[str, int]] = {}
    frozen_value: dict[str, int] = {}
    frozen_spans: dict[str, list[int]] = {}
    for rollup in LIEN_ROLLUPS:
        for asset in DECIMALS:
            held = [
                (o, lien)
                for o in stuck
                if (lien := o.lien(rollup)) is not None and lien.asset == asset
            ]
            if not held:
                continue
            amount = sum(lien.amount for _, lien in held)
            spans = [frozen_blocks(o, lien) for o, lien in held]
            frozen.setdefault(rollup, {})[asset] = amount
            frozen_value[rollup] = frozen_value.get(rollup, 0) + compute_value(amount, asset, price)
            frozen_spans.setdefault(rollup, []).extend(spans)
            frozen_rows.append(
                [
                    rollup,
                    asset,
                    len(held),
                    fmt(amount, asset),
                    usd(compute_value(amount, asset, price)),
                    min(o.expiry for o, _ in held),
                    max(lien.usable for _, lien in held),
                    min(spans),
                    f"{_median(spans):g}",
                    max(spans),
                    usd(
                        sum(
                            compute_value(lien.amount, asset, price) * frozen_blocks(o, lien)
                            for o, lien in held
                        )
                    ),
                ]
            )
    baseline = [frozen_blocks(o, lien) for o in settled for lien in o.liens]
    report.text(
        f"""Collateral of the {len(stuck)} options that could not settle, held past
        their expiry: from the expiry to the height its owner could use it again
        (alpha: the reclaim's height; gamma: the reclaim took effect at its ordered
        height in the log, but gamma's state showed it only once its node was back,
        at {d.back}). For comparison, the {len(settled)} options that settled released
        their liens a median of {_median(baseline):g} blocks after expiry (the
        keeper's price post and the settle bundle)."""
    )
    report.table(
        "frozen: collateral held past expiry by gamma's halt, per rollup and asset",
        [
            "rollup",
            "asset",
            "liens",
            "amount",
            "USDC value",
            "from height",
            "to height",
            "blocks min",
            "blocks median",
            "blocks max",
            "USDC x blocks",
        ],
        frozen_rows,
    )

    # ---- the exit
    report.heading("What the exit rule released, and when")
    exit_rows = []
    released: dict[str, dict[str, int]] = {}
    for o in stuck:
        for lien in o.liens:
            if not lien.reclaim_ok:
                continue
            due = o.expiry + d.grace
            by = released.setdefault(lien.rollup, {})
            by[lien.asset] = by.get(lien.asset, 0) + lien.amount
            exit_rows.append(
                [
                    f"#{o.spec.number}",
                    lien.rollup,
                    fmt(lien.amount, lien.asset),
                    o.expiry,
                    due,
                    lien.reclaim_height,
                    lien.released,
                    lien.usable,
                    lien.reclaim_height - due,
                    lien.usable - due,
                    lien.status,
                ]
            )
    report.table(
        "exit: liens reclaimed by their owner (ReclaimLien on the lien's rollup)",
        [
            "option",
            "rollup",
            "amount",
            "expiry",
            "reclaimable from",
            "reclaim ordered",
            "released (record)",
            "usable from",
            "ordered - reclaimable",
            "usable - reclaimable",
            "status",
        ],
        exit_rows,
    )
    released_value = sum(
        compute_value(amount, asset, price)
        for by in released.values()
        for asset, amount in by.items()
    )
    released_liens = len(exit_rows)
    if d.probe is not None:
        p = d.probe
        report.text(
            f"""The exit does not open early: the writer of option #{p.option} tried to
            reclaim its alpha lien at height {p.height}, after its first settle aborted
            and before expiry + grace; alpha {
                "accepted it (a violation)" if p.ok else f"refused it: {p.reason}"
            }."""
        )

    # ---- conservation
    report.heading("Nothing is lost")
    report.table(
        "conservation: supply per rollup and asset against genesis",
        [
            "when",
            "rollup",
            "asset",
            "genesis",
            "minted",
            "balances",
            "escrowed",
            "liened",
            "held = genesis",
        ],
        [
            [
                s.when,
                s.rollup,
                s.asset,
                fmt(s.genesis, s.asset),
                fmt(s.minted, s.asset),
                fmt(s.balances, s.asset),
                fmt(s.escrowed, s.asset),
                fmt(s.liened, s.asset),
                "yes" if s.ok else "NO",
            ]
            for s in d.supply
        ],
    )
    conservation_ok = all(s.ok for s in d.supply) and all(
        c.ok for c in d.checks if c.name.startswith("conservation")
    )
    invariants_ok = all(c.ok for c in d.checks)
    ledger_ok = not d.ledger_mismatches
    report.table(
        "invariants: devnet.checker at the end (and conservation while gamma was down)",
        ["check", "ok", "figures", "violations"],
        [
            [
                c.name,
                "yes" if c.ok else "NO",
                ", ".join(f"{k} {v}" for k, v in c.figures.items() if k not in ("assets",)),
                "; ".join(c.violations[:3]) or "-",
            ]
            for c in d.checks
        ],
    )
    ledger = "all equal" if ledger_ok else "MISMATCHES: " + "; ".join(d.ledger_mismatches[:5])
    records = (
        "every option, lien and settle bundle as the run expects"
        if not d.problems
        else "PROBLEMS: " + "; ".join(d.problems[:5])
    )
    report.text(
        f"""Ledger: every dev account's USDC and ETH on every rollup
        ({d.ledger_compared} balances) against genesis plus what this run's opens,
        settles and reclaims moved: {ledger}. Records: {records}."""
    )

    # ---- figures
    lo = d.base
    hi = max([d.back, *(lien.usable for o in opts for lien in o.liens)]) + 10
    heights = range(lo, hi + 1)
    fig, (top, ax) = plt.subplots(
        2, 1, figsize=(9, 6), sharex=True, gridspec_kw={"height_ratios": [1, 2]}
    )
    ph = [d.base, *(h for h, _ in d.prices.posted if h >= d.base), hi]
    pp = [d.prices.at(d.base), *(p for h, p in d.prices.posted if h >= d.base)]
    pp.append(pp[-1])
    top.step(ph, [usd(p) for p in pp], where="post", color="black", linewidth=1)
    top.set_ylabel("ETH/USDC")
    top.set_title("oracle price on beta")
    colors = {ALPHA: "tab:blue", GAMMA: "tab:orange"}
    for rollup in LIEN_ROLLUPS:
        ax.step(
            list(heights),
            compute_frozen_curve(d, rollup, heights, price, only_unsettled=True),
            where="post",
            color=colors[rollup],
            label=f"on {rollup}",
        )
    for a in (top, ax):
        a.axvspan(d.halt, d.back, color="red", alpha=0.06, linewidth=0)
        a.axvline(d.halt, color="red", linestyle="--", linewidth=1)
        a.axvline(d.back, color="green", linestyle="--", linewidth=1)
    ymax = max(ax.get_ylim()[1], 1.0)
    ax.text(d.halt, ymax * 0.97, " gamma halts", color="red", va="top", fontsize=8)
    ax.text(d.back, ymax * 0.97, " gamma back ", color="green", va="top", ha="right", fontsize=8)
    ax.plot(
        [o.expiry for o in opts],
        [0] * len(opts),
        "|",
        color="grey",
        markersize=12,
        label="expiries",
    )
    for rollup, marker in ((ALPHA, "v"), (GAMMA, "1")):
        exits = [lien.reclaim_height for o in stuck if (lien := o.lien(rollup)) is not None]
        if exits:
            ax.plot(
                exits,
                [ymax * 0.05] * len(exits),
                marker,
                color=colors[rollup],
                linestyle="none",
                markersize=9,
                label=f"reclaims ordered on {rollup}",
            )
    ax.set_xlabel("height")
    ax.set_ylabel("USDC value held past expiry")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=5, fontsize=8)
    ax.set_xlim(lo, hi)
    report.figure(
        fig,
        "contagion-frozen",
        "Collateral of the options gamma's halt made unsettleable, held past expiry, per"
        " lien rollup (USDC value at the halt's price; liens of settled options, released"
        f" a median of {_median(baseline):g} blocks after expiry, are not drawn): gamma"
        " down (shaded), every expiry, and the reclaims at expiry + grace; on alpha they"
        " release at once, on gamma only when its node is back. Above, the oracle's price.",
    )

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    labels = ["+".join(b) for b in BACKINGS]
    fills = {SETTLED_BEFORE: "tab:green", SETTLED_AFTER: "tab:blue", UNSETTLEABLE: "tab:red"}
    for panel, title in zip(axes, ("options", "collateral, USDC value"), strict=True):
        bottom = [0.0] * len(BACKINGS)
        for outcome in OUTCOMES:
            heights_ = [
                sum(
                    1.0 if title == "options" else usd(value_of(o))
                    for o in opts
                    if o.outcome == outcome and o.spec.backing == b
                )
                for b in BACKINGS
            ]
            panel.bar(labels, heights_, bottom=bottom, color=fills[outcome], label=outcome)
            bottom = [x + y for x, y in zip(bottom, heights_, strict=True)]
        panel.set_title(title)
        panel.set_xlabel("backed by")
    axes[0].yaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].legend(fontsize=8)
    report.figure(
        fig,
        "contagion-outcomes",
        "Outcomes by backing: settled before the halt, settled during it (alpha alone),"
        " or unsettleable while gamma was down (their liens came back by the exit rule).",
    )

    # ---- what it shows
    split_stuck = [o for o in stuck if o.lien(ALPHA) and o.lien(GAMMA)]
    alpha_spans = frozen_spans.get(ALPHA, [])
    gamma_spans = frozen_spans.get(GAMMA, [])
    lost = sum(compute_value(o.lost, o.spec.asset, price) for o in stuck)
    deadline_aborts = codes.get("DEADLINE", 0)
    report.heading("What it shows")
    report.text(
        f"""Gamma halted at height {d.halt} and stayed down for {down} blocks. Of
        {len(opts)} options, {len(settled)} settled
        ({sum(1 for o in settled if o.outcome == SETTLED_BEFORE)} before the halt, gamma's
        liens included, and {sum(1 for o in settled if o.outcome == SETTLED_AFTER)} during
        it, all backed by alpha alone) and {len(stuck)} could not: every one of their
        {len(stuck_attempts)} settle attempts was ordered and prepared on beta (and on
        alpha where it held a lien), then aborted ({deadline_aborts} of them at the
        deadline, {d.deadline} blocks later, code DEADLINE) because gamma never voted.
        The contagion: {len(split_stuck)} of them were backed partly by alpha, so
        {", ".join(fmt(v, a) for a, v in frozen.get(ALPHA, {}).items()) or "nothing"}
        (~{usd(frozen_value.get(ALPHA, 0)):,.0f} USDC) on alpha, a rollup that never
        stopped, was held past expiry by a halt elsewhere, for a median of
        {_median(alpha_spans):g} blocks (at most {max(alpha_spans, default=0)}): the
        grace of {d.grace} blocks plus the keeper's reaction. Alpha's exit released it
        at expiry + grace without gamma, beta or the oracle. On gamma,
        {", ".join(fmt(v, a) for a, v in frozen.get(GAMMA, {}).items()) or "nothing"}
        (~{usd(frozen_value.get(GAMMA, 0)):,.0f} USDC) was frozen until gamma itself came
        back (median {_median(gamma_spans):g} blocks past expiry): its reclaims were
        ordered at expiry + grace and took effect at those heights when gamma replayed
        the log. The exit released {released_liens} liens (~{usd(released_value):,.0f}
        USDC) to their writers; the holders of the {len(stuck)} options lost the
        {usd(lost):,.0f} USDC they were owed at expiry, the trade-off of docs/exits.md.
        Supply per asset equalled genesis on every rollup, while gamma was down and at
        the end: {"pass" if conservation_ok else "FAIL"}; every account's balances
        matched the run's ledger: {"pass" if ledger_ok else "FAIL"}."""
    )

    report.summary.update(
        {
            "options": len(opts),
            "settled": len(settled),
            "settled_before_halt": sum(1 for o in settled if o.outcome == SETTLED_BEFORE),
            "settled_during_halt": sum(1 for o in settled if o.outcome == SETTLED_AFTER),
            "unsettleable": len(stuck),
            "unsettleable_split": len(split_stuck),
            "unsettleable_gamma_only": sum(1 for o in stuck if not o.lien(ALPHA)),
            "settle_attempts": len(attempts),
            "abort_codes": codes,
            "halt_height": d.halt,
            "gamma_back_height": d.back,
            "gamma_down_blocks": down,
            "grace_blocks": d.grace,
            "deadline_blocks": d.deadline,
            "block_interval_ms": plan.block_interval_ms,
            "eth_price_at_halt_usdc": usd(price),
            "frozen": frozen,
            "frozen_value_usdc": {r: usd(v) for r, v in frozen_value.items()},
            "frozen_value_alpha_usdc": usd(frozen_value.get(ALPHA, 0)),
            "frozen_value_gamma_usdc": usd(frozen_value.get(GAMMA, 0)),
            "frozen_blocks_alpha_median": _median(alpha_spans) if alpha_spans else None,
            "frozen_blocks_alpha_max": max(alpha_spans, default=0),
            "frozen_blocks_gamma_median": _median(gamma_spans) if gamma_spans else None,
            "settled_release_blocks_median": _median(baseline) if baseline else None,
            "released_by_exit": released,
            "released_by_exit_liens": released_liens,
            "released_by_exit_usdc": usd(released_value),
            "payout_lost_usdc": usd(lost),
            "early_reclaim_refused": None if d.probe is None else d.probe.ok is False,
            "conservation_passed": conservation_ok,
            "invariants_passed": invariants_ok,
            "ledger_passed": ledger_ok,
            "record_problems": d.problems[:20],
            "wall_seconds": round(seconds, 1),
        }
    )
    return report


__all__ = ["run"]

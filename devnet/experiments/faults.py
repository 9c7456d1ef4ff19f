"""`devnet experiment faults`: abort rate and decision latency of cross-rollup
bundles against fault intensity, over seeds. Three sweeps, each from zero up:

- delay: every node's link to the sequencer (through the devnet's proxy) holds
  each chunk D ms each way, so a block reaches a node D late and its vote comes
  back D later;
- partition: one rollup node (seeded: alpha or beta) is cut off from the sequencer
  for L blocks, the bundles ordered in the first blocks of the cut;
- kill: a rollup node (seeded, each time) is SIGKILLed and restarted R times per
  100 blocks while bundles keep coming.

Per level a bounded, seeded stream of bundles with a leg on each of the two rollups
(transfer bundles and option opens, devnet/load.py's option) is submitted straight
to the sequencer; per bundle the experiment reads its lifecycle
(devnet/lifecycle.py trace_bundle): committed or aborted and the reason code,
latency in blocks (the decision's height minus the ordering height, checked against
each node's BundleRecord) and in ms (admission to the decision's block, both the
sequencer's clock; and to the last node finishing, each node's clock). Each seed
(ctx.seed, ctx.seed + 1, ...) gets one devnet (sequencer, alpha, beta, no replicas:
a rollup has one voter) that runs all three sweeps, faults cleared between
levels; after each sweep devnet.checker.run_checks (chain, decisions, equivocation,
atomicity, conservation, durability of every acknowledged bundle) must pass. Means
carry 95 % Student-t intervals over the seeds.

Sizes: small (the test suite) is 2 seeds x 2 levels per sweep x 5 bundles: 24-26 s
on 2 cores. Full is 5 seeds x 6/7/5 levels x 20 bundles (1,800 bundles): `devnet
experiment faults --seed 1` took 5 min 42 s wall on 2 cores (docs/results.md);
with the 5 partition levels of before, 5 min 22 s to 6 min 1 s.

The seed fixes the workload and the fault schedule, not how long things take in
wall time: a restart is ~0.2 s, 10 blocks on a quiet machine, longer on a busy one,
and the kill sweep's top levels abort a few bundles only then (an earlier run with
restarts of 16 blocks on average aborted 1 and 8 of 100 at 4 and 8 kills per 100
blocks, where a run with 10-block restarts aborted none). Delay and partition give
the same figures run after run within their intervals."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grpc import aio

from devnet import faults
from devnet.checker import NodeRef, run_checks
from devnet.experiments.context import Context
from devnet.experiments.report import Report
from devnet.lifecycle import DECIDED, FINISHED, ORDERED, SUBMITTED, BundleTrace, trace_bundle
from devnet.manifest import Manifest
from rollup_node.follower import compute_max_retry_delay
from xrollup import codec
from xrollup.client import (
    Client,
    NodeClient,
    Submitted,
    build_bundle,
    build_open_option,
)
from xrollup.genesis import Genesis, compute_option_rollups, decode_genesis, dev_genesis
from xrollup.keys import derive_dev_account
from xrollup.model import Decision, Leg, OptionKind, Transfer
from xrollup.numeric import Amount
from xrollup.v1 import node_pb2 as npb
from xrollup.v1 import types_pb2 as pb

DELAY, PARTITION, KILL = "delay", "partition", "kill"
OPEN_SHARE = 0.25  # of the bundles, option opens; the rest transfer bundles
EXPIRY_BLOCKS = 3_000  # every bundle's expiry: far past anything here
PROXY_POLL_S = 0.08  # the proxy re-reads faults.json every 50 ms
SUBMIT_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class Sweep:
    name: str
    title: str
    unit: str  # of a level, for tables and axes
    per: str  # one unit of it, in words
    levels: tuple[int, ...]


@dataclass(frozen=True)
class Plan:
    """How much of everything a size runs."""

    seeds: int
    bundles: int  # per level and seed
    window: int  # blocks the delay and kill levels spread their bundles over
    sweeps: tuple[Sweep, ...]


def compute_plan(small: bool) -> Plan:
    if small:
        return Plan(
            seeds=2,
            bundles=5,
            window=50,
            sweeps=(
                Sweep(DELAY, "Link delay", "ms each way", "ms of delay", (0, 600)),
                Sweep(PARTITION, "Partition length", "blocks", "block of cut", (0, 60)),
                Sweep(
                    KILL, "Node kill rate", "kills per 100 blocks", "kill per 100 blocks", (0, 4)
                ),
            ),
        )
    return Plan(
        seeds=5,
        bundles=20,
        window=200,
        sweeps=(
            Sweep(DELAY, "Link delay", "ms each way", "ms of delay", (0, 100, 250, 400, 500, 600)),
            Sweep(
                PARTITION,
                "Partition length",
                "blocks",
                "block of cut",
                (0, 10, 20, 30, 40, 50, 60),
            ),
            Sweep(
                KILL,
                "Node kill rate",
                "kills per 100 blocks",
                "kill per 100 blocks",
                (0, 1, 2, 4, 8),
            ),
        ),
    )


# ---------------------------------------------------------------- statistics

# Two-sided 95 % quantiles of Student's t by degrees of freedom; between rows the
# lower row's (larger) value, so an interval is never narrower than it should be.
T95 = {
    1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
    9: 2.262, 10: 2.228, 11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131,
    16: 2.120, 17: 2.110, 18: 2.101, 19: 2.093, 20: 2.086, 21: 2.080, 22: 2.074,
    23: 2.069, 24: 2.064, 25: 2.060, 26: 2.056, 27: 2.052, 28: 2.048, 29: 2.045,
    30: 2.042, 40: 2.021, 60: 2.000, 120: 1.980,
}  # fmt: skip


def compute_t95(df: int) -> float:
    if df < 1:
        return math.nan
    if df > 120:
        return 1.960
    return T95[max(k for k in T95 if k <= df)]


def compute_mean_ci(values: Sequence[float]) -> tuple[float, float]:
    """(mean, half-width of its 95 % interval); the half-width is NaN under 2 values."""
    xs = [v for v in values if not math.isnan(v)]
    if not xs:
        return math.nan, math.nan
    mean = statistics.fmean(xs)
    if len(xs) < 2:
        return mean, math.nan
    return mean, compute_t95(len(xs) - 1) * statistics.stdev(xs) / math.sqrt(len(xs))


def compute_slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """The least-squares slope of ys on xs (NaN under two distinct xs)."""
    if len(set(xs)) < 2:
        return math.nan
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx


def compute_percentile(values: Sequence[float], p: float) -> float:
    """Nearest rank: the smallest value at or above fraction p of them."""
    xs = sorted(values)
    if not xs:
        return math.nan
    return xs[max(0, math.ceil(p * len(xs)) - 1)]


def _mean(values: Sequence[float]) -> float:
    return statistics.fmean(values) if values else math.nan


# ---------------------------------------------------------------- what one bundle gave


@dataclass(frozen=True)
class Outcome:
    kind: str  # transfer | open
    bundle_id: bytes
    ordered: int
    state: str  # committed | aborted | undecided (from the lifecycle)
    code: str  # the decision's reason code (ALL_YES, VOTED_NO, DEADLINE), "" undecided
    latency_blocks: int | None
    latency_ms: int | None  # admission -> the decision's block (the sequencer's clock)
    finish_ms: int | None  # admission -> the last involved node applied it (None: not known)
    problems: tuple[str, ...] = ()  # a node's record disagreeing with the log, late decision

    @property
    def committed(self) -> bool:
        return self.state == "committed"


@dataclass
class LevelRun:
    """One level of one sweep on one seed's devnet."""

    sweep: str
    level: int
    seed: int
    outcomes: list[Outcome] = field(default_factory=list)
    fault: dict[str, Any] = field(default_factory=dict)  # the fault as it was applied
    acks: list[Submitted] = field(default_factory=list)
    # Kill levels: (rollup, height at the SIGKILL, height once restarted and healthy).
    downs: list[tuple[str, int, int]] = field(default_factory=list)

    @property
    def decided(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.state != "undecided"]

    @property
    def abort_rate(self) -> float:
        d = self.decided
        return sum(not o.committed for o in d) / len(d) if d else math.nan

    def mean_of(self, what: Callable[[Outcome], int | None]) -> float:
        return _mean([float(v) for o in self.decided if (v := what(o)) is not None])


def outcome_of(
    kind: str, trace: BundleTrace, node_rollup: dict[str, str], deadline: int
) -> Outcome:
    """A bundle's outcome from its lifecycle, checked against every node's record:
    each involved rollup holds one, with the log's outcome and heights."""
    stage = {s.name: s for s in trace.stages if s.name != FINISHED}
    ordered = stage[ORDERED].height if ORDERED in stage else None
    decided = stage.get(DECIDED)
    if ordered is None or decided is None or decided.height is None:
        return Outcome(
            kind, trace.id, ordered or 0, "undecided", "", None, None, None, ("undecided",)
        )
    problems = []
    if decided.height > ordered + deadline:
        problems.append(f"decided at {decided.height}, past its deadline {ordered + deadline}")
    want = npb.BundleRecord.STATUS_COMMITTED if decided.ok else npb.BundleRecord.STATUS_ABORTED
    seen = {node_rollup[n] for n in trace.records}
    for rollup in trace.rollups:
        if rollup not in seen:
            problems.append(f"no record on {rollup}")
    for name, rec in sorted(trace.records.items()):
        if rec.status != want:
            got = npb.BundleRecord.Status.Name(rec.status)
            problems.append(f"{name} holds {got}, the log says {trace.state}")
        if (rec.prepare_height, rec.decision_height) != (ordered, decided.height):
            problems.append(
                f"{name} prepared/decided at {rec.prepare_height}/{rec.decision_height},"
                f" the log at {ordered}/{decided.height}"
            )
    admitted = stage[SUBMITTED].unix_ms
    ends = [rec.finished_unix_ms for rec in trace.records.values()]
    known = admitted is not None and ends and all(ends) and len(ends) == len(trace.rollups)
    return Outcome(
        kind,
        trace.id,
        ordered,
        trace.state,
        decided.code,
        decided.height - ordered,
        decided.unix_ms - admitted if decided.unix_ms and admitted else None,
        max(ends) - admitted if known and admitted is not None else None,
        tuple(problems),
    )


# ---------------------------------------------------------------- one seed's devnet


class Net:
    """One seed's devnet: endpoints, genesis, and the faults it is put through."""

    def __init__(self, data_dir: Path, manifest: Manifest) -> None:
        self.dir = data_dir.resolve()
        self.genesis: Genesis = decode_genesis(Path(manifest.genesis).read_text())
        seq = manifest.get("sequencer")
        assert seq is not None
        self.sequencer = seq.endpoint
        self.nodes = {
            p.name: (p.rollup or "", p.endpoint) for p in manifest.processes if p.role == "node"
        }
        self.rollups = self.genesis.rollup_names
        self.checked_to = 0  # per-node heights below this were checked by an earlier sweep

    def repair(self) -> list[str]:
        """Lift every fault: heal every link, restart what is dead. What was dead."""
        faults.heal_all(self.dir)
        dead = [r.name for r in faults.list_faults(self.dir) if r.state != "running"]
        for name in dead:
            faults.restart(self.dir, name)
        return dead

    async def caught_up(self, client: Client, timeout: float = 30.0) -> int:
        """Wait until every node has applied the sequencer's head; that head."""
        head = int((await client.status()).height)
        for _, endpoint in self.nodes.values():
            async with NodeClient(endpoint) as n:
                await n.wait_for_height(head, timeout=timeout)
        return head


class LogWatch:
    """The sequencer's log as it grows (straight from the sequencer, never through
    the proxy): the head, and the decisions on bundles of interest."""

    def __init__(self, client: Client, from_height: int) -> None:
        self.client = client
        self.head = from_height - 1
        self.decided: dict[bytes, int] = {}
        self.wanted: set[bytes] = set()
        self._tick = asyncio.Event()

    async def run(self) -> None:
        async for msg in self.client.follow(self.head + 1):
            for e in codec.decode_block(msg).entries:
                if isinstance(e, Decision) and e.bundle_id in self.wanted:
                    self.decided[e.bundle_id] = int(msg.header.height)
            self.head = int(msg.header.height)
            self._tick.set()
            self._tick = asyncio.Event()

    async def wait_height(self, height: int) -> int:
        while self.head < height:
            await asyncio.wait_for(self._tick.wait(), 10.0)  # blocks are 20 ms apart
        return self.head

    async def wait_decided(self, timeout: float) -> None:
        async def all_decided() -> None:
            while not self.wanted <= self.decided.keys():
                await self._tick.wait()

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_decided(), timeout)


# ---------------------------------------------------------------- the workload


@dataclass(frozen=True)
class Planned:
    offset: int  # blocks after the level's start
    kind: str
    sender: int  # dev account indexes
    other: int
    amount: int
    nonce: int


def plan_bundles(rng: random.Random, count: int, offsets: list[int]) -> list[Planned]:
    out = []
    for offset in sorted(offsets):
        a, b = rng.sample(range(10), 2)
        kind = "open" if rng.random() < OPEN_SHARE else "transfer"
        out.append(Planned(offset, kind, a, b, rng.randint(1, 10**6), rng.getrandbits(63)))
    return out[:count]


def build_planned(p: Planned, genesis: Genesis, head: int) -> pb.SignedBundle:
    """A bundle with a leg on each of the option rollup and its collateral rollup."""
    option_rollup, collateral_rollup = compute_option_rollups(genesis)
    sender, other = derive_dev_account(p.sender), derive_dev_account(p.other)
    expiry = head + EXPIRY_BLOCKS
    if p.kind == "transfer":
        legs = [
            Leg(r, sender.address, Transfer(other.address, "USDC", Amount(p.amount)))
            for r in (collateral_rollup, option_rollup)
        ]
        return build_bundle(legs, [sender], expiry, genesis.chain_id, nonce=p.nonce)
    eth, usdc = genesis.get_asset("ETH"), genesis.get_asset("USDC")
    assert eth is not None and usdc is not None, "the dev genesis has ETH and USDC"
    return build_open_option(
        sender,
        other,
        OptionKind.PUT,
        2_000 * 10**usdc.decimals,  # strike
        max(1, 10**eth.decimals // 100),  # 0.01 ETH
        head + 1_000,  # the option's expiry: never reached here
        p.amount,  # premium
        expiry,
        underlying_decimals=eth.decimals,
        collateral_rollup=collateral_rollup,
        option_rollup=option_rollup,
        chain_id=genesis.chain_id,
        nonce=p.nonce,
    )


# ---------------------------------------------------------------- one level


async def run_level(
    net: Net, plan: Plan, sweep: Sweep, level: int, seed: int, rng: random.Random
) -> LevelRun:
    run = LevelRun(sweep.name, level, seed)
    genesis = net.genesis
    deadline = genesis.limits.bundle_deadline_blocks
    interval_s = genesis.block_interval_ms / 1000
    # The schedule, all drawn before anything runs: the workload is the seed's.
    if sweep.name == PARTITION:
        # Bundles in the first blocks of the cut, so its length decides their fate.
        offsets = [rng.randint(1, 3) for _ in range(plan.bundles)]
    else:
        offsets = rng.sample(range(1, plan.window), plan.bundles)
    planned = plan_bundles(rng, plan.bundles, offsets)
    target = rng.choice(net.rollups)  # partition: the node cut off
    kill_at: list[tuple[int, str]] = []
    if sweep.name == KILL and level:
        period = max(1, round(100 / level))
        phase = rng.randrange(period)
        kill_at = [(o, rng.choice(net.rollups)) for o in range(phase, plan.window, period)]

    async with Client(net.sequencer, genesis.chain_id) as client:
        await asyncio.to_thread(net.repair)
        await net.caught_up(client)
        if sweep.name == DELAY and level:
            for name in net.nodes:
                await asyncio.to_thread(faults.delay, net.dir, name, level)
            run.fault["links"] = sorted(net.nodes)
        if sweep.name == PARTITION and level:
            await asyncio.to_thread(faults.partition, net.dir, target)
            run.fault["node"] = target
        if sweep.name in (DELAY, PARTITION) and level:
            await asyncio.sleep(PROXY_POLL_S)  # in force from here on
        start = int((await client.status()).height)
        watch = LogWatch(client, start)
        follower = asyncio.create_task(watch.run())
        kinds: dict[bytes, str] = {}
        try:

            async def submit_all() -> None:
                tasks = []
                for p in planned:
                    head = await watch.wait_height(start + p.offset)
                    bundle = build_planned(p, genesis, head)
                    bid = codec.decode_bundle(bundle).id
                    watch.wanted.add(bid)
                    kinds[bid] = p.kind
                    tasks.append(
                        asyncio.create_task(client.submit_retrying(bundle, SUBMIT_TIMEOUT_S))
                    )
                run.acks.extend(await asyncio.gather(*tasks))

            async def inject() -> None:
                if sweep.name == PARTITION and level:
                    await watch.wait_height(start + level)
                    await asyncio.to_thread(faults.heal, net.dir, target)
                    healed = watch.head
                    async with NodeClient(net.nodes[target][1]) as node:
                        await node.wait_for_height(healed, timeout=30.0, poll=0.005)
                    run.fault.update(cut_blocks=healed - start, outage_blocks=watch.head - start)
                for offset, name in kill_at:
                    at = await watch.wait_height(start + offset)
                    await asyncio.to_thread(faults.kill, net.dir, name)
                    await asyncio.to_thread(faults.restart, net.dir, name)
                    run.downs.append((net.nodes[name][0], at, watch.head))
                if kill_at:
                    downs = [back - at for _, at, back in run.downs]
                    run.fault.update(
                        kills=len(downs), down_blocks=_mean(downs), down_max=max(downs)
                    )

            await asyncio.gather(submit_all(), inject())
            # Every bundle is decided by its deadline (I5): wait that long and a margin.
            await watch.wait_decided((deadline + 25) * interval_s + 10.0)
        finally:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError, aio.AioRpcError):
                await follower
        await asyncio.to_thread(net.repair)
        await net.caught_up(client)
        node_rollup = {n: r for n, (r, _) in net.nodes.items()}
        nodes = {n: (r, NodeClient(ep)) for n, (r, ep) in net.nodes.items()}
        try:
            for ack in run.acks:
                trace = await trace_bundle(client, nodes, ack.id, max_scan_blocks=deadline + 5)
                run.outcomes.append(outcome_of(kinds[ack.id], trace, node_rollup, deadline))
        finally:
            for _, c in nodes.values():
                await c.close()
    return run


async def check_invariants(net: Net, acks: list[Submitted]) -> dict[str, Any]:
    """devnet.checker over the devnet after a sweep (per-node checks from the heights
    the last sweep's checks did not cover), our acknowledgements as the journal."""
    journal = [
        {"id": a.id.hex(), "kind": "bundle", "height": a.height, "index": a.index} for a in acks
    ]
    refs = [NodeRef(n, r, ep) for n, (r, ep) in net.nodes.items()]
    async with Client(net.sequencer, net.genesis.chain_id) as client:
        head = int((await client.status()).height)
    report = await run_checks(
        net.sequencer, refs, net.genesis, journal, settle_timeout=30.0, from_height=net.checked_to
    )
    net.checked_to = head
    figures = {c.name: c.figures for c in report.checks}
    return {
        "ok": report.ok,
        "checks": {c.name: c.ok for c in report.checks},
        "violations": [f"{c.name}: {v}" for c in report.checks for v in c.violations],
        "notes": report.notes,
        "bundles_in_log": figures.get("decisions", {}).get("bundles"),
        "records_checked": figures.get("atomicity", {}).get("bundle_records_checked"),
    }


# ---------------------------------------------------------------- the experiment


def run(ctx: Context) -> Report:
    started = time.monotonic()
    plan = compute_plan(ctx.small)
    seeds = [ctx.seed + i for i in range(plan.seeds)]
    runs: list[LevelRun] = []
    checks: list[dict[str, Any]] = []
    deadline = 0
    for seed in seeds:
        seeded = dataclasses.replace(ctx, seed=seed)  # the same draws as a run with --seed S
        with ctx.devnet(f"seed{seed}") as manifest:
            net = Net(ctx.work_dir / f"seed{seed}", manifest)
            deadline = net.genesis.limits.bundle_deadline_blocks
            for sweep in plan.sweeps:
                acks: list[Submitted] = []
                for level in sweep.levels:
                    rng = seeded.rng(f"{sweep.name}:{level}")
                    r = asyncio.run(run_level(net, plan, sweep, level, seed, rng))
                    runs.append(r)
                    acks += r.acks
                check = asyncio.run(check_invariants(net, acks))
                checks.append({"seed": seed, "sweep": sweep.name, **check})
    return write_report(ctx, plan, seeds, runs, checks, deadline, time.monotonic() - started)


# ---------------------------------------------------------------- the report


@dataclass(frozen=True)
class LevelStats:
    level: int
    bundles: int
    committed: int
    aborted: int
    undecided: int
    codes: dict[str, int]
    abort_rate: tuple[float, float]  # mean over seeds, CI half-width (fractions)
    latency_blocks: tuple[float, float]
    latency_blocks_committed: float  # pooled mean over committed bundles
    p50_blocks: float
    p95_blocks: float
    latency_ms: tuple[float, float]
    p95_ms: float
    finish_ms: float  # pooled mean where every node remembered when it finished
    fault: dict[str, float]  # the fault as applied, means over seeds
    problems: list[str]
    # Kill levels: per aborted bundle, the most blocks of its deadline window one of
    # its rollups' nodes spent down (killed, not yet healthy again).
    aborted_down: list[int] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        def num(v: float) -> float | None:
            return None if math.isnan(v) else round(v, 4)

        return {
            "level": self.level,
            "bundles": self.bundles,
            "committed": self.committed,
            "aborted": self.aborted,
            "undecided": self.undecided,
            "abort_codes": self.codes,
            "abort_rate": num(self.abort_rate[0]),
            "abort_rate_ci95": num(self.abort_rate[1]),
            "latency_blocks_mean": num(self.latency_blocks[0]),
            "latency_blocks_ci95": num(self.latency_blocks[1]),
            "latency_blocks_committed_mean": num(self.latency_blocks_committed),
            "latency_blocks_p50": num(self.p50_blocks),
            "latency_blocks_p95": num(self.p95_blocks),
            "latency_ms_mean": num(self.latency_ms[0]),
            "latency_ms_ci95": num(self.latency_ms[1]),
            "latency_ms_p95": num(self.p95_ms),
            "finish_ms_mean": num(self.finish_ms),
            "fault": {k: num(v) for k, v in self.fault.items()},
            "problems": self.problems[:20],
            "aborted_down_blocks": self.aborted_down,
        }


def compute_down_in_window(downs: list[tuple[str, int, int]], ordered: int, deadline: int) -> int:
    """The most blocks of [ordered, ordered + deadline] that one rollup's node was down."""
    per: dict[str, int] = {}
    for rollup, at, back in downs:
        overlap = min(back, ordered + deadline) - max(at, ordered)
        per[rollup] = per.get(rollup, 0) + max(0, overlap)
    return max(per.values(), default=0)


def compute_level_stats(level: int, runs: list[LevelRun], deadline: int) -> LevelStats:
    outs = [o for r in runs for o in r.outcomes]
    decided = [o for o in outs if o.state != "undecided"]
    codes: dict[str, int] = {}
    for o in decided:
        if not o.committed:
            codes[o.code] = codes.get(o.code, 0) + 1
    blocks = [float(o.latency_blocks) for o in decided if o.latency_blocks is not None]
    ms = [float(o.latency_ms) for o in decided if o.latency_ms is not None]
    fault: dict[str, float] = {}
    for key in sorted({k for r in runs for k in r.fault if k not in ("node", "links")}):
        values = [float(r.fault[key]) for r in runs if key in r.fault]
        fault[key] = max(values) if key.endswith("_max") else _mean(values)
    aborted_down = sorted(
        compute_down_in_window(r.downs, o.ordered, deadline)
        for r in runs
        for o in r.decided
        if r.downs and not o.committed
    )
    return LevelStats(
        level,
        len(outs),
        sum(o.committed for o in decided),
        sum(not o.committed for o in decided),
        len(outs) - len(decided),
        dict(sorted(codes.items())),
        compute_mean_ci([r.abort_rate for r in runs]),
        compute_mean_ci([r.mean_of(lambda o: o.latency_blocks) for r in runs]),
        _mean([float(o.latency_blocks or 0) for o in decided if o.committed]),
        compute_percentile(blocks, 0.50),
        compute_percentile(blocks, 0.95),
        compute_mean_ci([r.mean_of(lambda o: o.latency_ms) for r in runs]),
        compute_percentile(ms, 0.95),
        _mean([float(o.finish_ms) for o in decided if o.finish_ms is not None]),
        fault,
        [
            f"seed {r.seed} {o.bundle_id.hex()[:16]}: {p}"
            for r in runs
            for o in r.outcomes
            for p in o.problems
        ],
        aborted_down,
    )


def _pm(value: tuple[float, float], scale: float = 1.0, digits: int = 1) -> str:
    mean, half = value
    if math.isnan(mean):
        return "n/a"
    if math.isnan(half):
        return f"{mean * scale:.{digits}f}"
    return f"{mean * scale:.{digits}f} ± {half * scale:.{digits}f}"


def _num(v: float, digits: int = 0) -> str:
    return "n/a" if math.isnan(v) else f"{v:,.{digits}f}"


def _fault_cell(sweep: str, s: LevelStats) -> str:
    f = s.fault
    if sweep == PARTITION and "outage_blocks" in f:
        return f"cut {f['cut_blocks']:.0f}, node back after {f['outage_blocks']:.0f}"
    if sweep == KILL and "kills" in f:
        return (
            f"{f['kills']:.1f} kills, down {f['down_blocks']:.0f} blocks each"
            f" (longest {f['down_max']:.0f})"
        )
    if sweep == DELAY and s.level:
        return f"{s.level} ms on every node link"
    return "none"


HEADERS = [
    "level",
    "fault as applied (mean over seeds)",
    "bundles",
    "committed",
    "aborted",
    "abort codes",
    "abort rate % (95% CI)",
    "latency blocks (95% CI)",
    "p50 blocks",
    "p95 blocks",
    "latency ms (95% CI)",
    "p95 ms",
]


def table_rows(sweep: Sweep, stats: list[LevelStats]) -> list[list[Any]]:
    return [
        [
            f"{s.level} {sweep.unit}",
            _fault_cell(sweep.name, s),
            s.bundles,
            s.committed,
            s.aborted + s.undecided,
            ", ".join(f"{c} {n}" for c, n in s.codes.items()) or "-",
            _pm(s.abort_rate, 100),
            _pm(s.latency_blocks),
            _num(s.p50_blocks),
            _num(s.p95_blocks),
            _pm(s.latency_ms, 1, 0),
            _num(s.p95_ms),
        ]
        for s in stats
    ]


def plot_sweep(report: Report, sweep: Sweep, stats: list[LevelStats], deadline: int) -> None:
    import matplotlib.pyplot as plt

    xs = [s.level for s in stats]

    def err(
        pairs: list[tuple[float, float]], scale: float = 1.0, top: float = math.inf
    ) -> tuple[list[float], list[list[float]]]:
        """Means and their interval, clipped to what the quantity can be (0..top)."""
        means = [m * scale for m, _ in pairs]
        halves = [0.0 if math.isnan(h) else h * scale for _, h in pairs]
        low = [min(h, m) for m, h in zip(means, halves, strict=True)]
        high = [min(h, top - m) for m, h in zip(means, halves, strict=True)]
        return means, [low, high]

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    rate, rate_err = err([s.abort_rate for s in stats], 100, 100.0)
    axes[0].errorbar(xs, rate, yerr=rate_err, marker="o", capsize=4, color="tab:red")
    axes[0].set_ylabel("abort rate (%)")
    axes[0].set_ylim(-5, 105)
    blocks, blocks_err = err([s.latency_blocks for s in stats])
    axes[1].errorbar(xs, blocks, yerr=blocks_err, marker="o", capsize=4, label="mean (95% CI)")
    axes[1].plot(xs, [s.p95_blocks for s in stats], "v--", color="tab:gray", label="p95")
    axes[1].axhline(deadline, color="tab:red", linestyle=":", label=f"deadline ({deadline})")
    axes[1].set_ylabel("decision latency (blocks)")
    axes[1].legend(fontsize=8)
    ms, ms_err = err([s.latency_ms for s in stats])
    axes[2].errorbar(xs, ms, yerr=ms_err, marker="o", capsize=4, color="tab:green", label="mean")
    axes[2].plot(xs, [s.p95_ms for s in stats], "v--", color="tab:gray", label="p95")
    axes[2].set_ylabel("decision latency (ms)")
    axes[2].legend(fontsize=8)
    for ax in axes:
        ax.set_xlabel(f"{sweep.title.lower()} ({sweep.unit})")
        ax.set_xticks(xs)
        ax.grid(alpha=0.3)
    fig.suptitle(f"{sweep.title}: abort rate and decision latency of bundles")
    fig.tight_layout()
    report.figure(
        fig,
        f"faults-{sweep.name}",
        f"{sweep.title} ({sweep.unit}) against abort rate and decision latency in blocks and"
        " ms: means over seeds with 95% Student-t intervals (clipped at 0 and 100 %), p95 over"
        " all bundles",
    )


def compute_committed_slope(stats: list[LevelStats]) -> float:
    """Mean latency (blocks) per unit of intensity, fitted over the levels where
    every bundle committed (past them the deadline caps it)."""
    clean = [s for s in stats if not s.aborted + s.undecided]
    return compute_slope([float(s.level) for s in clean], [s.latency_blocks[0] for s in clean])


def describe_sweep(sweep: Sweep, stats: list[LevelStats], deadline: int) -> str:
    """What the numbers show, said from the numbers."""
    base, top = stats[0], stats[-1]
    unit = sweep.unit
    parts = [
        f"With no fault, {base.aborted} of {base.bundles} bundles aborted and a decision took"
        f" {_pm(base.latency_blocks)} blocks ({_pm(base.latency_ms, 1, 0)} ms) from ordering."
    ]
    first = next((s for s in stats if s.aborted + s.undecided), None)
    if first is None:
        parts.append(
            f"No level up to {top.level} {unit} aborted a bundle: every one committed, and"
            f" the mean latency went from {_num(base.latency_blocks[0], 1)} to"
            f" {_num(top.latency_blocks[0], 1)} blocks (p95 {_num(top.p95_blocks)}),"
            f" under the {deadline}-block deadline."
        )
    else:
        codes = ", ".join(f"{c} {n}" for c, n in first.codes.items())
        parts.append(
            f"Bundles first aborted at {first.level} {unit} ({first.aborted} of"
            f" {first.bundles}: {codes}); at {top.level} {unit} the abort rate was"
            f" {_pm(top.abort_rate, 100)} % and the mean latency"
            f" {_num(top.latency_blocks[0], 1)} blocks (p95 {_num(top.p95_blocks)})."
        )
        below = [s for s in stats if s.level < first.level]
        if below:
            last = below[-1]
            parts.append(
                f"Below that, at {last.level} {unit}, every bundle committed in"
                f" {_pm(last.latency_blocks)} blocks on average."
            )
        committed_top = top.latency_blocks_committed
        if top.committed and not math.isnan(committed_top):
            parts.append(
                f"The {top.committed} bundles that still committed at the top level took"
                f" {committed_top:.1f} blocks on average."
            )
        other = {c for s in stats for c in s.codes if c != "DEADLINE"}
        if other:
            parts.append(f"Aborts other than at the deadline: {', '.join(sorted(other))}.")
        if not other:
            parts.append(
                "Every abort is a deadline abort (DEADLINE): a vote missing"
                f" {deadline} blocks after ordering, never a no."
            )
    slope = compute_committed_slope(stats)
    if not math.isnan(slope):
        clean = ", ".join(str(s.level) for s in stats if not s.aborted + s.undecided)
        parts.append(
            f"Over the levels where every bundle committed ({clean}), the mean latency grew"
            f" by {slope:.3g} blocks per {sweep.per} (least squares)."
        )
    if sweep.name == PARTITION and "outage_blocks" in top.fault:
        rows = [s for s in stats if "outage_blocks" in s.fault]
        genesis = dev_genesis()  # what ctx.devnet starts
        cap_ms = compute_max_retry_delay(genesis) * 1000
        cap_blocks = cap_ms / genesis.block_interval_ms
        parts.append(
            "The node's outage outlasts the cut: it came back "
            + ", ".join(
                f"{s.fault['outage_blocks'] - s.fault['cut_blocks']:.0f} blocks after a"
                f" {s.fault['cut_blocks']:.0f}-block cut"
                for s in rows
            )
            + f". After the heal a node waits out its retry back-off (doubling up to"
            f" {cap_ms:.0f} ms, {cap_blocks:.0f} blocks: a tenth of the deadline,"
            " rollup_node/follower.py compute_max_retry_delay), reconnects and catches up,"
            " so a cut aborts the bundles ordered in it once the cut plus that tail passes"
            " the deadline."
        )
    if sweep.name == KILL and "down_blocks" in top.fault:
        parts.append(
            f"At the top level a killed node was back (restarted and healthy)"
            f" {top.fault['down_blocks']:.0f} blocks after the SIGKILL on average, the"
            f" longest restart {top.fault['down_max']:.0f} blocks; a restarted node sends"
            " again its votes on bundles it prepared and that are undecided."
        )
        downs = [d for s in stats for d in s.aborted_down]
        if downs:
            parts.append(
                f"In the deadline windows of the {len(downs)} aborted bundles, one of their"
                f" rollups' nodes was down {_num(_mean([float(d) for d in downs]))} of"
                f" {deadline} blocks on average (from {min(downs)} to {max(downs)})."
            )
    if any(not math.isnan(s.finish_ms) for s in stats):
        parts.append(
            "From admission to the last involved node applying the decision (each node's"
            " clock; unknown for records a restart forgot) took "
            + ", ".join(f"{_num(s.finish_ms)} ms at {s.level}" for s in stats)
            + " on average."
        )
    return " ".join(parts)


def write_report(
    ctx: Context,
    plan: Plan,
    seeds: list[int],
    runs: list[LevelRun],
    checks: list[dict[str, Any]],
    deadline: int,
    seconds: float,
) -> Report:
    report = ctx.report("Faults: abort rate and decision latency of cross-rollup bundles")
    report.text(
        f"""Each seed ({", ".join(map(str, seeds))}) gets a devnet of its own (a
        sequencer, one alpha and one beta node, no replicas, 20 ms blocks, bundle
        deadline {deadline} blocks) that runs the three sweeps below, each from zero
        intensity up; faults are lifted and every node caught up between levels. Per
        level and seed, {plan.bundles} bundles with a leg on alpha and on beta
        ({int((1 - OPEN_SHARE) * 100)} % transfer bundles, {int(OPEN_SHARE * 100)} %
        option opens, accounts, amounts and instants drawn from the seed) are submitted
        straight to the sequencer; the delay and kill levels spread them over
        {plan.window} blocks, the partition levels order them in the first 3 blocks of
        the cut. Latency is the decision's height minus the ordering height (blocks),
        and the sequencer's clock from admission to the decision's block (ms); both
        count aborted bundles too (a deadline abort takes {deadline} blocks). Means are
        over the seeds' means, with 95 % Student-t intervals (n/a under two seeds);
        p50/p95 over every bundle of the level."""
    )
    summary: dict[str, Any] = {
        "seeds": seeds,
        "size": ctx.size,
        "bundles_per_level": plan.bundles,
        "deadline_blocks": deadline,
        "duration_s": round(seconds, 1),
    }
    problems: list[str] = []
    for sweep in plan.sweeps:
        stats = [
            compute_level_stats(
                level, [r for r in runs if (r.sweep, r.level) == (sweep.name, level)], deadline
            )
            for level in sweep.levels
        ]
        report.heading(f"{sweep.title} ({sweep.unit})")
        report.text(_SWEEP_TEXT[sweep.name])
        report.table(
            f"{sweep.name}: {sweep.title.lower()} against abort rate and latency",
            HEADERS,
            table_rows(sweep, stats),
        )
        plot_sweep(report, sweep, stats, deadline)
        report.text(describe_sweep(sweep, stats, deadline))
        summary[sweep.name] = {"unit": sweep.unit, "levels": [s.to_json() for s in stats]}
        top = stats[-1]
        summary[f"{sweep.name}_top_level"] = top.level
        summary[f"{sweep.name}_top_abort_rate"] = round(top.abort_rate[0], 4)
        summary[f"{sweep.name}_top_latency_blocks"] = round(top.latency_blocks[0], 2)
        summary[f"{sweep.name}_zero_latency_blocks"] = round(stats[0].latency_blocks[0], 2)
        slope = compute_committed_slope(stats)
        summary[f"{sweep.name}_latency_slope_blocks"] = None if math.isnan(slope) else slope
        first = next((s.level for s in stats if s.aborted + s.undecided), None)
        summary[f"{sweep.name}_first_abort_level"] = first
        problems += [f"{sweep.name} {s.level}: {p}" for s in stats for p in s.problems]

    ok = all(c["ok"] for c in checks) and not problems
    report.heading("Invariants")
    report.text(
        f"""After each sweep, devnet.checker.run_checks over the devnet (chain, decisions:
        every logged decision is the one the logged votes give and none is late,
        equivocation, atomicity: every node's record of every decided bundle agrees
        with the log, conservation, durability of every acknowledged bundle); and per
        bundle, both rollups' records against its lifecycle (same outcome, same
        prepare and decision heights, decided by its deadline).
        {"Every check passed on every seed and sweep." if ok else "VIOLATIONS: see below."}"""
    )
    report.table(
        "invariants: devnet.checker after each sweep",
        ["seed", "sweep", "ok", "bundles in log", "records checked", "checks", "violations"],
        [
            [
                c["seed"],
                c["sweep"],
                "yes" if c["ok"] else "NO",
                c["bundles_in_log"],
                c["records_checked"],
                ", ".join(f"{k} {'ok' if v else 'FAILED'}" for k, v in c["checks"].items()),
                "; ".join(c["violations"][:5]) or "-",
            ]
            for c in checks
        ],
    )
    if problems:
        report.text("Bundles whose records disagree with the log: " + "; ".join(problems[:20]))
    summary["invariants_ok"] = ok
    summary["invariant_checks"] = len(checks)
    summary["bundle_problems"] = problems[:50]
    summary["bundles"] = sum(len(r.outcomes) for r in runs)
    report.summary.update(summary)
    return report


_SWEEP_TEXT = {
    DELAY: """Every node's link to the sequencer (blocks in, votes out) held D ms each way
    by the devnet's proxy (devnet.faults.delay), from before the level's first bundle
    until its last is decided.""",
    PARTITION: """One rollup node (seeded, alpha or beta) cut off from the sequencer by the
    proxy (devnet.faults.partition) for L blocks, then healed; its bundles are ordered in
    the first blocks of the cut. 'node back after' counts the blocks from the cut until
    the node had applied the height of the heal.""",
    KILL: """A rollup node (seeded, alpha or beta, each time) SIGKILLed and restarted at once
    (devnet.faults.kill and restart: same data directory, same port) R times per 100
    blocks at a seeded phase, while the level's bundles come.""",
}


__all__ = ["run"]

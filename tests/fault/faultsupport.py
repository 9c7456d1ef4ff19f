"""The fault suite's machinery, after CometBFT's e2e runner: a whole devnet (with
replicas) per fault kind, reused across that kind's runs; each run puts a short
seeded load on it (devnet.load, journalled), injects the fault at a seeded
instant, lifts it, measures the recovery time, then runs the invariant checker
(devnet.checker) with the run's journal.

Recovery time: from the moment the fault is lifted (the restart, resume or heal
begins) until a new transfer on each rollup is acknowledged and applied on
every node of its rollup, and every node has applied the sequencer's head as
read after those acknowledgements. It must stay under RECOVERY_BOUND_S.

A run's violations are the checker's (I1-I5 and durability against the run's
journal) plus what the run itself saw: load operations given up or refused
unexpectedly, bundles left undecided, a process not running after the fault
was lifted, recovery over the bound, and a fault kind's own expectation (a
bundle submitted while a rollup was paused is aborted by its deadline).

Byzantine kinds (devnet.faults.byzantine: corrupt, forge-block, forge-decision,
equivocate) act through the proxy on one node's link, each node in turn across
the runs. Their expectation (I7): the node refuses with the mode's code and
applies nothing tampered (it stays below the refused height; I4 against its
replica after recovery covers every height); under equivocate it keeps the
evidence, and the checker's equivocation check reports this run's two signed
headers. Evidence persists in a node's store: the equivocation check's reports
of evidence an equivocate run put there are expected, anything else is a
violation. A node halted on evidence is left out of run_checks' node checks
until it is restarted; then it follows again and is checked (atomicity,
conservation, replicas) like every honest node. A run counts the blocks
its target refused (RunRecord.refusals)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import random
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grpc import aio

from devnet import etcd, faults, ha, network, tamper
from devnet.checker import (
    CheckResult,
    NodeRef,
    load_journal,
    run_checks,
)
from devnet.load import run_load
from devnet.manifest import Manifest, load_manifest
from xrollup import codec
from xrollup.client import (
    Client,
    NodeClient,
    Submitted,
    build_bundle,
    build_transfer,
    poll_until,
)
from xrollup.genesis import Genesis, decode_genesis
from xrollup.keys import derive_dev_account
from xrollup.model import Decision, Leg, ReasonCode, Transfer, Vote
from xrollup.numeric import Amount
from xrollup.v1 import node_pb2 as npb
from xrollup.v1 import types_pb2 as pb

RECOVERY_BOUND_S = 20.0  # the stated bound: live again within this after a fault is lifted
RUN_TIMEOUT_S = 180.0  # one run, fault, load, recovery and checks included
LOAD_OP_TIMEOUT_S = 45.0  # one load operation, retries included
ROLLUPS = ("alpha", "beta")
NODES = ("alpha", "beta", "alpha-replica", "beta-replica")
ROLLUP_NODES = {"alpha": ("alpha", "alpha-replica"), "beta": ("beta", "beta-replica")}
PROBE_FROM, PROBE_TO = derive_dev_account(8), derive_dev_account(9)


# ---------------------------------------------------------------- one devnet per fault kind


class FaultNet:
    """A devnet with replicas in `data_dir`, started once and reused across runs;
    `ha`: with an etcd cluster and three sequencer replicas (devnet up --ha)."""

    def __init__(self, data_dir: Path, ha: bool = False) -> None:
        self.dir = data_dir.resolve()
        self.ha = ha
        self.checked_to = 0  # heights below this were compared by an earlier run's checks
        # Evidence of equivocation an equivocate run made a node keep: node -> height.
        self.evidence: dict[str, int] = {}

    def start(self) -> None:
        network.start_devnet(self.dir, replicas=True, ha=self.ha, timeout=60.0)
        self.genesis: Genesis = decode_genesis((self.dir / "genesis.json").read_text())

    def stop(self) -> None:
        """Resume what is paused (a stopped process ignores SIGTERM), then stop by pid."""
        with contextlib.suppress(Exception):
            faults.heal_all(self.dir)
        network.stop_devnet(self.dir, grace=5.0)

    @property
    def manifest(self) -> Manifest:
        m = load_manifest(self.dir)
        assert m is not None, f"no devnet.json in {self.dir}"
        return m

    def endpoint(self, name: str) -> str:
        rec = self.manifest.get(name)
        assert rec is not None, name
        return rec.endpoint

    @property
    def sequencer(self) -> str:
        """The sequencer, or every replica of it ("A,B,C": clients follow the leader)."""
        return network.sequencer_endpoints(self.manifest)

    def dead(self) -> list[str]:
        return [r.name for r in faults.list_faults(self.dir) if r.state != "running"]

    def repair(self) -> list[str]:
        """Lift every fault: resume, heal, restart what is dead. Returns what was dead."""
        faults.heal_all(self.dir)
        dead = self.dead()
        for name in dead:
            faults.restart(self.dir, name)
        return dead

    def node_refs(self) -> list[NodeRef]:
        return [
            NodeRef(p.name, p.rollup or "", p.endpoint)
            for p in self.manifest.processes
            if p.role == "node" and network.is_running(p)
        ]


# ---------------------------------------------------------------- a run's context


@dataclass
class Ctx:
    """What a fault injector gets: the devnet, its seeded rng and a notebook."""

    net: FaultNet
    rng: random.Random
    run_no: int
    notes: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    acks: list[Submitted] = field(default_factory=list)  # our own submissions, for I3
    lifted_at: float | None = None
    refusals: int = 0  # blocks the byzantine target refused
    failover_s: float | None = None  # HA: the fault to the first new block acknowledged
    # This run's evidence: (node, first hash, second hash), to find in the checker's report.
    evidence: tuple[str, bytes, bytes] | None = None

    def note(self, text: str) -> None:
        self.notes.append(text)

    def lift(self) -> None:
        """The fault is being lifted now: recovery time runs from here."""
        self.lifted_at = time.monotonic()

    async def kill(self, *names: str) -> None:
        for name in names:
            await asyncio.to_thread(faults.kill, self.net.dir, name)

    async def restart(self, *names: str) -> None:
        self.lift()
        for name in names:
            await asyncio.to_thread(faults.restart, self.net.dir, name)

    async def pause(self, *names: str) -> None:
        for name in names:
            await asyncio.to_thread(faults.pause, self.net.dir, name)

    async def resume(self, *names: str) -> None:
        self.lift()
        for name in names:
            await asyncio.to_thread(faults.resume, self.net.dir, name)

    async def hold(self, low: float, high: float) -> float:
        """Keep the fault in force for a seeded while."""
        seconds = self.rng.uniform(low, high)
        await asyncio.sleep(seconds)
        return seconds


Inject = Callable[[Ctx], Awaitable[None]]


@dataclass(frozen=True)
class FaultKind:
    name: str
    inject: Inject
    count: int  # load operations per run
    rate: float | None  # load operations per second (None: as fast as the window allows)
    window: int = 32
    start_after: tuple[float, float] = (0.3, 1.0)  # seconds of load before the fault


@dataclass
class RunRecord:
    fault: str
    suite: str
    run: int
    seed: int
    violations: list[str]
    recovery_s: float | None
    seconds: float
    notes: list[str]
    load: dict[str, Any]
    refusals: int = 0
    # HA kinds: from the fault to the first new block acknowledged (None: not measured).
    failover_s: float | None = None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ---------------------------------------------------------------- submissions through faults


async def submit_retrying(
    client: Client, msg: pb.SignedTx | pb.SignedBundle, timeout: float = 30.0
) -> Submitted:
    """Submit the same bytes until acknowledged (Client.submit_retrying)."""
    return await client.submit_retrying(msg, timeout)


async def head_retrying(client: Client, timeout: float = 30.0) -> int:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return int((await client.status(timeout=2.0)).height)
        except aio.AioRpcError:
            if time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.05)


def cross_bundle(expiry: int, rng: random.Random, chain_id: str) -> pb.SignedBundle:
    """A bundle with a transfer leg on each rollup: it commits when both vote yes."""
    legs = [
        Leg(r, PROBE_FROM.address, Transfer(PROBE_TO.address, "USDC", Amount(1))) for r in ROLLUPS
    ]
    return build_bundle(legs, [PROBE_FROM], expiry, chain_id, nonce=rng.getrandbits(63))


async def submit_cross_bundle(ctx: Ctx, client: Client) -> tuple[bytes, Submitted]:
    head = await head_retrying(client)
    bundle = cross_bundle(head + 3_000, ctx.rng, ctx.net.genesis.chain_id)
    ack = await submit_retrying(client, bundle)
    ctx.acks.append(ack)
    return ack.id, ack


async def watch_log(
    client: Client,
    from_height: int,
    found: Callable[[Any], bool],
    timeout: float,
) -> tuple[int, Any]:
    """The first entry from `from_height` on that `found` accepts, and its height.
    Follows the stream through sequencer restarts."""

    async def go() -> tuple[int, Any]:
        async for msg in client.follow(from_height):
            block = codec.decode_block(msg)
            for e in block.entries:
                if found(e):
                    return int(block.height), e
        raise AssertionError("the block stream ended")

    return await asyncio.wait_for(go(), timeout)


def is_decision_on(bundle_id: bytes) -> Callable[[Any], bool]:
    return lambda e: isinstance(e, Decision) and e.bundle_id == bundle_id


def is_vote_on(bundle_id: bytes) -> Callable[[Any], bool]:
    return lambda e: isinstance(e, Vote) and any(v.bundle_id == bundle_id for v in e.body.votes)


# ---------------------------------------------------------------- the faults


def pick_targets(rng: random.Random) -> tuple[str, ...]:
    """One node, or both nodes of one rollup (then it cannot vote at all)."""
    if rng.random() < 0.5:
        return (rng.choice(NODES),)
    return ROLLUP_NODES[rng.choice(ROLLUPS)]


async def kill_sequencer(ctx: Ctx) -> None:
    await ctx.kill("sequencer")
    down = await ctx.hold(0.0, 1.0)
    ctx.note(f"SIGKILL sequencer, down {down:.2f}s")
    await ctx.restart("sequencer")


async def kill_node(ctx: Ctx) -> None:
    """Each node and replica in turn across the runs."""
    name = NODES[ctx.run_no % len(NODES)]
    await ctx.kill(name)
    down = await ctx.hold(0.0, 1.0)
    ctx.note(f"SIGKILL {name}, down {down:.2f}s")
    await ctx.restart(name)


async def pause_deadline(ctx: Ctx) -> None:
    """Pause a rollup's primary and replica across a bundle deadline (50 blocks of
    20 ms): a bundle submitted meanwhile must be aborted at its deadline (I5)."""
    rollup = ROLLUPS[ctx.run_no % len(ROLLUPS)]
    names = ROLLUP_NODES[rollup]
    deadline_blocks = ctx.net.genesis.limits.bundle_deadline_blocks
    await ctx.pause(*names)
    started = time.monotonic()
    async with Client(ctx.net.sequencer, ctx.net.genesis.chain_id) as client:
        bundle_id, ack = await submit_cross_bundle(ctx, client)
        try:
            height, decision = await watch_log(
                client, ack.height, is_decision_on(bundle_id), timeout=15.0
            )
        except TimeoutError:
            ctx.violations.append(
                f"I5: bundle {bundle_id.hex()} at {ack.height} undecided 15 s into a pause"
            )
        else:
            if decision.commit or decision.code != ReasonCode.DEADLINE:
                ctx.violations.append(
                    f"bundle {bundle_id.hex()} with {rollup} paused: decided"
                    f" {'commit' if decision.commit else 'abort'} ({decision.code.name}),"
                    " not abort at its deadline"
                )
            if height > ack.height + deadline_blocks:
                ctx.violations.append(
                    f"I5: bundle {bundle_id.hex()} at {ack.height} decided at {height},"
                    f" past its deadline {ack.height + deadline_blocks}"
                )
    # Hold a seeded while longer, at least 1.3 s in all.
    await asyncio.sleep(max(0.0, ctx.rng.uniform(1.3, 2.0) - (time.monotonic() - started)))
    ctx.note(f"SIGSTOP {' + '.join(names)} for {time.monotonic() - started:.2f}s")
    await ctx.resume(*names)


async def partition(ctx: Ctx) -> None:
    names = pick_targets(ctx.rng)
    for name in names:
        await asyncio.to_thread(faults.partition, ctx.net.dir, name)
    held = await ctx.hold(0.5, 2.0)
    ctx.note(f"partition {' + '.join(names)} for {held:.2f}s")
    ctx.lift()
    for name in names:
        await asyncio.to_thread(faults.heal, ctx.net.dir, name)


async def delay(ctx: Ctx) -> None:
    names = pick_targets(ctx.rng)
    ms = ctx.rng.choice((20, 50, 100, 250, 500))
    for name in names:
        await asyncio.to_thread(faults.delay, ctx.net.dir, name, ms)
    held = await ctx.hold(1.0, 2.5)
    ctx.note(f"delay {' + '.join(names)} by {ms} ms for {held:.2f}s")
    ctx.lift()
    for name in names:
        await asyncio.to_thread(faults.heal, ctx.net.dir, name)


async def kill_in_prepare(ctx: Ctx) -> None:
    """SIGKILL nodes the moment a bundle is ordered: they are preparing it."""
    names = pick_targets(ctx.rng)
    async with Client(ctx.net.sequencer, ctx.net.genesis.chain_id) as client:
        _, ack = await submit_cross_bundle(ctx, client)
        await ctx.kill(*names)
    down = await ctx.hold(0.0, 1.5)
    ctx.note(f"SIGKILL {' + '.join(names)} at the bundle's block {ack.height}, down {down:.2f}s")
    await ctx.restart(*names)


async def kill_in_decision(ctx: Ctx) -> None:
    """SIGKILL nodes as a bundle's decision lands in the log; or the sequencer
    as the votes land, before it has decided."""
    target = ctx.rng.choice(("sequencer", "node", "rollup"))
    if target == "sequencer":
        names: tuple[str, ...] = ("sequencer",)
    elif target == "node":
        names = (ctx.rng.choice(NODES),)
    else:
        names = ROLLUP_NODES[ctx.rng.choice(ROLLUPS)]
    async with Client(ctx.net.sequencer, ctx.net.genesis.chain_id) as client:
        bundle_id, ack = await submit_cross_bundle(ctx, client)
        found = is_vote_on(bundle_id) if target == "sequencer" else is_decision_on(bundle_id)
        what = "a vote" if target == "sequencer" else "the decision"
        try:
            height, _ = await watch_log(client, ack.height, found, timeout=15.0)
        except TimeoutError:
            ctx.violations.append(f"I5: no {what} on bundle {bundle_id.hex()} within 15 s")
            return
        await ctx.kill(*names)
    down = await ctx.hold(0.0, 1.0)
    ctx.note(f"SIGKILL {' + '.join(names)} as {what} landed at {height}, down {down:.2f}s")
    await ctx.restart(*names)


async def restart_all(ctx: Ctx) -> None:
    """Every process at once: SIGKILL, or SIGTERM with a grace period; then up again."""
    if ctx.rng.random() < 0.5:
        # The explorer too: start_devnet below starts a new one and records its pid,
        # so one left running would be a process nobody stops.
        order = ["sequencer", "proxy", "explorer", *NODES]
        ctx.rng.shuffle(order)
        await ctx.kill(*order)
        how = "SIGKILL " + ", ".join(order)
    else:
        await asyncio.to_thread(network.stop_devnet, ctx.net.dir, 10.0)
        how = "SIGTERM every process"
    down = await ctx.hold(0.0, 1.0)
    ctx.note(f"{how}, down {down:.2f}s")
    ctx.lift()
    await asyncio.to_thread(network.start_devnet, ctx.net.dir, True)


async def kill_storm(ctx: Ctx) -> None:
    """SIGKILL the sequencer or a node every few hundred ms under heavy load, so
    kills land in LevelDB writes (blocks, state batches, catch-up after a
    restart). One worker restarts the victims in turn, each as soon as it can."""
    victims = ["sequencer", *NODES]
    down: set[str] = set()
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    async def restarter() -> None:
        while (name := await queue.get()) is not None:
            ctx.lift()
            await asyncio.to_thread(faults.restart, ctx.net.dir, name)
            down.discard(name)

    worker = asyncio.create_task(restarter())
    kills = []
    try:
        for _ in range(ctx.rng.randint(6, 10)):
            alive = [v for v in victims if v not in down]
            if alive:
                name = ctx.rng.choice(alive)
                down.add(name)
                await ctx.kill(name)
                queue.put_nowait(name)
                kills.append(name)
            await asyncio.sleep(ctx.rng.uniform(0.15, 0.45))
    finally:
        queue.put_nowait(None)
        await worker
    ctx.note(f"{len(kills)} SIGKILLs: {', '.join(kills)}")


async def combined(ctx: Ctx) -> None:
    """Two to four faults at once on distinct processes, then all lifted."""
    menu = ["partition", "pause", "delay", "kill_node", "kill_sequencer"]
    chosen = ctx.rng.sample(menu, ctx.rng.randint(2, 4))
    free = list(NODES)
    ctx.rng.shuffle(free)
    killed: list[str] = []
    done = []
    for what in chosen:
        if what == "kill_sequencer":
            await ctx.kill("sequencer")
            killed.append("sequencer")
            done.append("SIGKILL sequencer")
            continue
        name = free.pop()
        if what == "partition":
            await asyncio.to_thread(faults.partition, ctx.net.dir, name)
        elif what == "pause":
            await ctx.pause(name)
        elif what == "delay":
            await asyncio.to_thread(faults.delay, ctx.net.dir, name, 100)
        else:
            await ctx.kill(name)
            killed.append(name)
        done.append(f"{what} {name}")
    held = await ctx.hold(0.5, 1.5)
    ctx.note(f"{' + '.join(done)} for {held:.2f}s")
    ctx.lift()
    await asyncio.to_thread(faults.heal_all, ctx.net.dir)
    for name in killed:
        await asyncio.to_thread(faults.restart, ctx.net.dir, name)


BYZANTINE_WAIT_S = 10.0  # the target refuses (or keeps the evidence) within this


async def byzantine(ctx: Ctx, mode: str) -> None:
    """A byzantine link to one node (each node in turn across the runs) for a
    seeded while: it must refuse with the mode's code and apply nothing
    tampered; equivocate: keep the evidence and stop following until restarted."""
    name = NODES[ctx.run_no % len(NODES)]
    code = npb.Refusal.Code.Value(f"CODE_{tamper.EXPECTED_REFUSAL[mode]}")
    async with NodeClient(ctx.net.endpoint(name)) as node:
        before = await node.status()
        old_evidence = before.equivocation.SerializeToString()
        await asyncio.to_thread(faults.byzantine, ctx.net.dir, name, mode)
        started = time.monotonic()

        async def seen() -> npb.GetNodeStatusResponse | None:
            s = await node.status()
            if not s.HasField("refusal") or s.refusal.code != code:
                return None
            if mode == tamper.EQUIVOCATE and s.equivocation.SerializeToString() == old_evidence:
                return None
            return s

        try:
            status = await poll_until(seen, BYZANTINE_WAIT_S, 0.05, f"{mode} refusal by {name}")
        except TimeoutError:
            status = None
            ctx.violations.append(
                f"I7: {name} under {mode}: no {tamper.EXPECTED_REFUSAL[mode]} refusal"
                f" within {BYZANTINE_WAIT_S:.0f} s"
            )
        await asyncio.sleep(max(0.0, ctx.rng.uniform(0.5, 2.0) - (time.monotonic() - started)))
        final = await node.status()
        ctx.refusals = int(final.refused_blocks - before.refused_blocks)
        if status is not None:
            at = int(status.refusal.height)
            if mode == tamper.EQUIVOCATE:
                ev = final.equivocation
                ctx.evidence = (name, bytes(ev.first.hash), bytes(ev.second.hash))
                ctx.net.evidence[name] = int(ev.height)
                if final.applied_height != ev.height or final.connected:
                    ctx.violations.append(
                        f"I7: {name} kept evidence at {ev.height} but went on following"
                        f" (applied {final.applied_height}, connected {final.connected})"
                    )
            elif final.applied_height >= at:
                ctx.violations.append(
                    f"I7: {name} under {mode} refused block {at} but applied up to"
                    f" {final.applied_height} before the link was healed"
                )
        refused = f" {tamper.EXPECTED_REFUSAL[mode]} at {status.refusal.height}" if status else ""
        ctx.note(
            f"byzantine {mode} on {name} for {time.monotonic() - started:.2f}s:"
            f" {ctx.refusals} blocks refused{refused}"
        )
    ctx.lift()
    await asyncio.to_thread(faults.heal, ctx.net.dir, name)
    if mode == tamper.EQUIVOCATE:
        # Halted on evidence until restarted (recovery still runs from the heal).
        await asyncio.to_thread(faults.restart, ctx.net.dir, name)


def byzantine_kind(mode: str) -> FaultKind:
    return FaultKind(mode, functools.partial(byzantine, mode=mode), count=300, rate=120)


# ---------------------------------------------------------------- the HA sequencer's faults

FAILOVER_WAIT_S = 30.0  # a new block is acknowledged within this after a fault


async def measure_failover(ctx: Ctx, since: float, above: int) -> None:
    """Time from `since` (the fault) until a probe transfer is acknowledged in a block
    above `above` (the head before the fault): ctx.failover_s."""
    chain = ctx.net.genesis.chain_id
    async with Client(ctx.net.sequencer, chain) as client:
        probe = build_transfer(
            PROBE_FROM,
            ROLLUPS[0],
            PROBE_TO.address,
            "USDC",
            1,
            above + 3_000,
            chain,
            ctx.rng.getrandbits(63),
        )
        ack = await submit_retrying(client, probe, FAILOVER_WAIT_S)
    ctx.acks.append(ack)
    if ack.height <= above:
        ctx.violations.append(f"probe acknowledged at {ack.height}, not above {above}")
    ctx.failover_s = time.monotonic() - since


async def ha_status(ctx: Ctx) -> list[ha.ReplicaStatus]:
    return await ha.read_replicas(ctx.net.manifest)


async def ha_head(ctx: Ctx) -> int:
    return max(r.height for r in await ha_status(ctx))


async def kill_leader(ctx: Ctx) -> None:
    """SIGKILL the leader: a standby takes over from the committed head."""
    leader = await ha.wait_for_leader(ctx.net.manifest, FAILOVER_WAIT_S)
    head = await ha_head(ctx)
    await ctx.kill(leader.name)
    since = time.monotonic()
    await measure_failover(ctx, since, head)
    new = await ha.wait_for_leader(ctx.net.manifest, FAILOVER_WAIT_S, above_term=leader.term)
    down = await ctx.hold(0.0, 1.0)
    ctx.note(
        f"SIGKILL leader {leader.name} (term {leader.term}); {new.name} leads (term"
        f" {new.term}) after {ctx.failover_s:.2f}s; restarted {down:.2f}s later"
    )
    await ctx.restart(leader.name)


async def pause_leader(ctx: Ctx) -> None:
    """SIGSTOP the leader past its lease, then resume it: a standby takes over, and
    the old leader must not append (it steps down; nothing of its term follows the
    new term: the checker's terms check)."""
    leader = await ha.wait_for_leader(ctx.net.manifest, FAILOVER_WAIT_S)
    head = await ha_head(ctx)
    await ctx.pause(leader.name)
    since = time.monotonic()
    try:
        await measure_failover(ctx, since, head)
        new = await ha.wait_for_leader(ctx.net.manifest, FAILOVER_WAIT_S, above_term=leader.term)
        # Past the lease for sure, a seeded while longer.
        await asyncio.sleep(max(0.0, ctx.rng.uniform(2.5, 4.0) - (time.monotonic() - since)))
    finally:
        await ctx.resume(leader.name)
    deadline = time.monotonic() + 10.0
    while True:
        old = {r.name: r for r in await ha_status(ctx)}[leader.name]
        if old.role == ha.STANDBY:
            break
        if time.monotonic() > deadline:
            ctx.violations.append(f"{leader.name} resumed but still says {old.role}")
            break
        await asyncio.sleep(0.05)
    ctx.note(
        f"SIGSTOP leader {leader.name} (term {leader.term}) for"
        f" {time.monotonic() - since:.2f}s; {new.name} led (term {new.term}) after"
        f" {ctx.failover_s:.2f}s; resumed as {old.role}, {old.fenced_appends} appends fenced"
    )


async def partition_leader(ctx: Ctx) -> None:
    """Cut the leader off etcd (its proxy routes to every member) while it keeps
    serving clients: it cannot append (nor renew its lease), steps down, and a
    standby takes over; healed, it follows the new leader."""
    leader = await ha.wait_for_leader(ctx.net.manifest, FAILOVER_WAIT_S)
    head = await ha_head(ctx)
    await asyncio.to_thread(faults.partition, ctx.net.dir, leader.name)
    since = time.monotonic()
    await measure_failover(ctx, since, head)
    new = await ha.wait_for_leader(ctx.net.manifest, FAILOVER_WAIT_S, above_term=leader.term)
    held = await ctx.hold(0.5, 2.0)
    old = {r.name: r for r in await ha_status(ctx)}[leader.name]
    if old.role == ha.LEADER:
        ctx.violations.append(f"{leader.name} cut off etcd for {held:.2f}s still says it leads")
    ctx.note(
        f"partition leader {leader.name} (term {leader.term}) from etcd; {new.name} led"
        f" (term {new.term}) after {ctx.failover_s:.2f}s; old leader {old.role} after"
        f" {time.monotonic() - since:.2f}s"
    )
    ctx.lift()
    await asyncio.to_thread(faults.heal, ctx.net.dir, leader.name)


async def kill_standby(ctx: Ctx) -> None:
    """SIGKILL a standby: ordering goes on; it catches up when restarted."""
    name = await asyncio.to_thread(faults.resolve_name, ctx.net.dir, ha.STANDBY)
    head = await ha_head(ctx)
    await ctx.kill(name)
    since = time.monotonic()
    await measure_failover(ctx, since, head)
    down = await ctx.hold(0.5, 2.0)
    ctx.note(f"SIGKILL standby {name}; ordering went on; restarted {down:.2f}s later")
    await ctx.restart(name)


async def kill_etcd(ctx: Ctx, count: int) -> None:
    """SIGKILL `count` etcd members (one: a quorum remains and ordering goes on; two:
    no quorum, so no ordering and no violation, and ordering resumes once one
    returns, measured from its restart)."""
    members = list(etcd.MEMBERS)
    ctx.rng.shuffle(members)
    victims = members[:count]
    head = await ha_head(ctx)
    await ctx.kill(*victims)
    since = time.monotonic()
    if count < etcd.QUORUM:
        await measure_failover(ctx, since, head)
        down = await ctx.hold(0.5, 2.0)
        ctx.note(f"SIGKILL {' + '.join(victims)}; ordering went on; restarted {down:.2f}s later")
        await ctx.restart(*victims)
        return
    # No quorum: after the appends in flight, the head must stand still.
    await asyncio.sleep(4.0)  # past the lease and the appends in flight: all standbys
    stood = await ha_head(ctx)
    held = await ctx.hold(1.0, 3.0)
    moved = await ha_head(ctx)
    if moved != stood:
        ctx.violations.append(f"ordering went on without an etcd quorum: head {stood} -> {moved}")
    ctx.lift()
    await asyncio.to_thread(faults.restart, ctx.net.dir, victims[0])
    back = time.monotonic()
    await measure_failover(ctx, back, moved)
    ctx.note(
        f"SIGKILL {' + '.join(victims)}: head stood at {stood} for {held:.2f}s;"
        f" {victims[0]} restarted, a block acknowledged {ctx.failover_s:.2f}s later"
    )
    await asyncio.to_thread(faults.restart, ctx.net.dir, victims[1])


HA_KINDS: dict[str, FaultKind] = {
    k.name: k
    for k in (
        FaultKind("kill-leader", kill_leader, count=300, rate=120),
        FaultKind("pause-leader", pause_leader, count=300, rate=120),
        FaultKind("partition-leader", partition_leader, count=300, rate=120),
        FaultKind("kill-standby", kill_standby, count=300, rate=120),
        FaultKind("kill-etcd-1", functools.partial(kill_etcd, count=1), count=300, rate=120),
        FaultKind("kill-etcd-2", functools.partial(kill_etcd, count=2), count=300, rate=120),
    )
}
"""Faults of `devnet up --ha` (test_fault_ha.py): each on an HA devnet."""


KINDS: dict[str, FaultKind] = {
    k.name: k
    for k in (
        FaultKind("kill-sequencer", kill_sequencer, count=300, rate=120),
        FaultKind("kill-node", kill_node, count=300, rate=120),
        FaultKind("pause-deadline", pause_deadline, count=400, rate=120),
        FaultKind("partition", partition, count=300, rate=120),
        FaultKind("delay", delay, count=300, rate=120),
        FaultKind("kill-in-prepare", kill_in_prepare, count=300, rate=120),
        FaultKind("kill-in-decision", kill_in_decision, count=300, rate=120),
        FaultKind("restart-all", restart_all, count=300, rate=120),
        FaultKind("kill-storm", kill_storm, count=1_500, rate=300, window=64),
        FaultKind("combined", combined, count=300, rate=120),
        *(byzantine_kind(m) for m in tamper.MODES),
    )
}


# ---------------------------------------------------------------- one run


async def measure_recovery(net: FaultNet, rng: random.Random) -> list[Submitted]:
    """Wait until the network is live again (see the module docstring); returns
    the probes' acknowledgements."""
    chain = net.genesis.chain_id
    async with Client(net.sequencer, chain) as client:
        head = await head_retrying(client, RECOVERY_BOUND_S)
        probes = {
            r: build_transfer(
                PROBE_FROM, r, PROBE_TO.address, "USDC", 1, head + 3_000, chain, rng.getrandbits(63)
            )
            for r in ROLLUPS
        }
        acks = dict(
            zip(
                probes,
                await asyncio.gather(*(submit_retrying(client, p) for p in probes.values())),
                strict=True,
            )
        )
        head = await head_retrying(client)

    async def applied(node: NodeRef) -> None:
        async with NodeClient(node.endpoint) as n:
            receipt = await n.wait_for_receipt(acks[node.rollup].id, timeout=RECOVERY_BOUND_S)
            assert receipt.ok, f"{node.name}: probe transfer failed: {receipt.reason}"
            await n.wait_for_height(head, timeout=RECOVERY_BOUND_S)

    await asyncio.gather(*(applied(n) for n in net.node_refs()))
    return list(acks.values())


def journal_line(kind: str, ack: Submitted) -> dict[str, Any]:
    return {"id": ack.id.hex(), "kind": kind, "height": ack.height, "index": ack.index}


async def run_once(net: FaultNet, kind: FaultKind, run_no: int, seed: int, suite: str) -> RunRecord:
    """One run: load, fault, recovery, checks. Never raises for a violation: it
    is recorded; an unexpected error is recorded as one too."""
    started = time.monotonic()
    rng = random.Random(seed)
    ctx = Ctx(net, rng, run_no)
    recovery: float | None = None
    load: dict[str, Any] = {}
    journal = net.dir / "journals" / f"{kind.name}-{run_no:02d}-{seed}.jsonl"
    journal.parent.mkdir(exist_ok=True)
    try:
        await asyncio.wait_for(_run(ctx, kind, seed, journal, load), RUN_TIMEOUT_S)
        recovery = load.pop("_recovery", None)
    except Exception as e:  # recorded, and the test fails on it
        recovery = load.pop("_recovery", None)
        ctx.violations.append(f"run failed: {type(e).__name__}: {e}")
    return RunRecord(
        kind.name,
        suite,
        run_no,
        seed,
        ctx.violations,
        None if recovery is None else round(recovery, 3),
        round(time.monotonic() - started, 1),
        ctx.notes,
        load,
        ctx.refusals,
        None if ctx.failover_s is None else round(ctx.failover_s, 3),
    )


async def _run(ctx: Ctx, kind: FaultKind, seed: int, journal: Path, out: dict[str, Any]) -> None:
    net = ctx.net
    dead = await asyncio.to_thread(net.repair)
    if dead:
        ctx.violations.append(f"not running before the run: {', '.join(dead)}")
    load_task = asyncio.create_task(
        run_load(
            net.sequencer,
            net.genesis,
            seed,
            kind.count,
            rate=kind.rate,
            window=kind.window,
            journal_path=journal,
            op_timeout=LOAD_OP_TIMEOUT_S,
        )
    )
    try:
        await asyncio.sleep(ctx.rng.uniform(*kind.start_after))
        try:
            await kind.inject(ctx)
        finally:
            if ctx.lifted_at is None:
                ctx.lift()
            # Whatever the injector left behind is a bug of the suite, not of the devnet.
            left = await asyncio.to_thread(net.dead)
            if left:
                ctx.violations.append(f"still down after the fault was lifted: {left}")
                await asyncio.to_thread(net.repair)
        assert ctx.lifted_at is not None
        lifted = ctx.lifted_at
        try:
            probes = await asyncio.wait_for(measure_recovery(net, ctx.rng), RECOVERY_BOUND_S)
        except TimeoutError:
            ctx.violations.append(f"not live again within {RECOVERY_BOUND_S:.0f} s")
            probes = []
        else:
            out["_recovery"] = time.monotonic() - lifted
        ctx.acks.extend(probes)
        summary = await load_task
    finally:
        if not load_task.done():
            load_task.cancel()
            with contextlib.suppress(BaseException):
                await load_task
    out.update(
        {
            k: v
            for k, v in summary.to_json().items()
            if k in ("submitted", "acknowledged", "retries", "committed", "aborted", "latency_ms")
        }
    )
    if summary.gave_up:
        ctx.violations.append(f"load: {summary.gave_up} operations gave up retrying")
    for refusal in summary.unexpected_refusals:
        ctx.violations.append(f"load: unexpected refusal: {refusal}")
    if summary.undecided:
        ctx.violations.append(f"I5: load saw {summary.undecided} bundles undecided")

    records = load_journal(journal) + [journal_line("fault-suite", a) for a in ctx.acks]
    async with Client(net.sequencer, net.genesis.chain_id) as client:
        head = await head_retrying(client)
    report = await run_checks(
        net.sequencer,
        net.node_refs(),
        net.genesis,
        records,
        settle_timeout=30.0,
        from_height=net.checked_to,
    )
    # A node restarted after it kept evidence follows again and is checked like
    # any other (run_checks leaves out only nodes still halted on evidence).
    checks = list(report.checks)
    found = []
    for check in checks:
        if check.name == "equivocation":
            found += unexpected_evidence(ctx, check)
        else:
            found += [f"{check.name}: {v}" for v in check.violations]
    ctx.violations.extend(found)
    out["checks"] = {c.name: {k: v for k, v in c.figures.items() if k != "assets"} for c in checks}
    if not found:
        net.checked_to = head


def unexpected_evidence(ctx: Ctx, check: CheckResult) -> list[str]:
    """The equivocation check's reports that no equivocate run explains, and this
    run's own evidence if the checker did not report it."""
    out = []
    for v in check.violations:
        holder = v.rsplit("held by ", 1)[-1].rstrip(")")
        if holder not in ctx.net.evidence:
            out.append(f"equivocation: {v}")
    if ctx.evidence is not None:
        name, first, second = ctx.evidence
        if not any(
            first.hex() in v and second.hex() in v and f"held by {name}" in v
            for v in check.violations
        ):
            out.append(
                f"I7: the equivocation {name} caught ({first.hex()[:16]} and"
                f" {second.hex()[:16]}) is not reported by the checker"
            )
    return out


def derive_seeds(seed: int, runs: int) -> list[int]:
    """Run 0 uses `seed` itself, later runs seeds drawn from it: XR_SEED=<a
    fault's first seed> replays that fault's runs (the seed drives the load, the
    instants, durations and targets; run k also picks node k mod 4 in kill-node
    and rollup k mod 2 in pause-deadline)."""
    rng = random.Random(seed)
    return [seed] + [rng.getrandbits(32) for _ in range(runs - 1)]


def run_series(
    net: FaultNet,
    kind: FaultKind,
    seed: int,
    runs: int,
    suite: str,
    sink: list[RunRecord],
) -> list[RunRecord]:
    """`runs` runs of one fault kind on `net`; every record is also appended to
    `sink` as soon as it exists (so the summary table has it even if a later
    run hangs)."""
    out = []
    for i, s in enumerate(derive_seeds(seed, runs)):
        record = asyncio.run(run_once(net, kind, i, s, suite))
        print(
            f"{kind.name} run {record.run} seed {s}: {len(record.violations)} violations,"
            f" recovery {record.recovery_s} s, {record.seconds} s; {'; '.join(record.notes)}"
        )
        for v in record.violations:
            print(f"    {v}")
        sink.append(record)
        out.append(record)
    return out


# ---------------------------------------------------------------- the summary table


def summarize(records: list[RunRecord]) -> list[dict[str, Any]]:
    rows = []
    for name in dict.fromkeys(r.fault for r in records):
        mine = [r for r in records if r.fault == name]
        times = sorted(r.recovery_s for r in mine if r.recovery_s is not None)
        failovers = sorted(r.failover_s for r in mine if r.failover_s is not None)
        rows.append(
            {
                "fault": name,
                "runs": len(mine),
                "violations": sum(len(r.violations) for r in mine),
                "recovery_p50_s": round(statistics.median(times), 2) if times else None,
                "recovery_max_s": round(max(times), 2) if times else None,
                "not_recovered": sum(1 for r in mine if r.recovery_s is None),
                "refused_blocks": sum(r.refusals for r in mine),
                "failover_p50_s": round(statistics.median(failovers), 2) if failovers else None,
                "failover_max_s": round(max(failovers), 2) if failovers else None,
                "seeds": [r.seed for r in mine],
            }
        )
    return rows


def format_table(rows: list[dict[str, Any]]) -> list[str]:
    def fmt(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f}"

    lines = [
        f"{'fault':<18} {'runs':>4} {'violations':>10} {'recovery p50 s':>14}"
        f" {'recovery max s':>14} {'refused blocks':>14} {'failover p50 s':>14}"
        f" {'failover max s':>14}",
    ]
    for row in rows:
        lines.append(
            f"{row['fault']:<18} {row['runs']:>4} {row['violations']:>10}"
            f" {fmt(row['recovery_p50_s']):>14} {fmt(row['recovery_max_s']):>14}"
            f" {row['refused_blocks']:>14} {fmt(row.get('failover_p50_s')):>14}"
            f" {fmt(row.get('failover_max_s')):>14}"
        )
    lines.append(f"recovery bound: {RECOVERY_BOUND_S:.0f} s; seeds per fault (in run order):")
    for row in rows:
        lines.append(f"  {row['fault']}: {' '.join(str(s) for s in row['seeds'])}")
    return lines


def write_report(path: Path, records: list[RunRecord]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "recovery_bound_s": RECOVERY_BOUND_S,
        "summary": summarize(records),
        "runs": [r.to_json() for r in records],
    }
    path.write_text(json.dumps(doc, indent=2) + "\n")

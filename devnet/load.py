"""The load driver the fault suite and users share (`devnet load`): a seeded,
mixed workload of transfers, option opens (some under-collateralized),
settlements, oracle prices and deliberately invalid submissions, over the
rollups of genesis: transfers on any of them, options and prices by
xrollup.genesis.compute_option_rollups. Its options are ETH puts paid in USDC, so
genesis must have both assets (any decimals); transfers move every asset of genesis.

It rides through faults: every operation is signed once and, when the
sequencer is unreachable, retried with the same bytes (the same id, never a new
one) until a bound. Every acknowledgement is appended to a journal (one JSON
line: id, kind, height, index) that `devnet check` verifies against the log
(I3). The summary counts what was submitted, acknowledged, refused, committed
and aborted, and the acknowledgement latency.

`sequencer` is one HOST:PORT or a sequencer's replicas, "A,B,C": the block
stream and the head come from the first replica that accepts (the next when it
dies), while submissions spread over every ready replica (round_robin: each
admits and forwards to the leader); a submission cut off with its replica is
retried on another."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grpc import aio

from xrollup import codec
from xrollup.client import (
    TRANSIENT,
    Client,
    build_open_option,
    build_price_update,
    build_settle_option,
    build_transfer,
)
from xrollup.errors import InvalidInput
from xrollup.genesis import Asset, Genesis, compute_option_rollups
from xrollup.keys import derive_dev_account, derive_oracle_key
from xrollup.model import Decision, OptionKind
from xrollup.options import compute_payout
from xrollup.v1 import types_pb2 as pb

OPTION_EXPIRY_BLOCKS = 25
STRIKE = 2_000  # USDC per ETH
SIZE_PER_ETH = 100  # 0.01 ETH per put: 20 USDC of collateral


@dataclass
class LoadSummary:
    seed: int
    submitted: int = 0
    acknowledged: int = 0
    refused: int = 0
    gave_up: int = 0
    unexpected_refusals: list[str] = field(default_factory=list)
    retries: int = 0
    committed: int = 0
    aborted: int = 0
    undecided: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        lat = sorted(self.latencies_ms)

        def q(p: float) -> float | None:
            return round(lat[min(len(lat) - 1, int(p * (len(lat) - 1)))], 1) if lat else None

        return {
            "seed": self.seed,
            "submitted": self.submitted,
            "acknowledged": self.acknowledged,
            "refused": self.refused,
            "gave_up": self.gave_up,
            "unexpected_refusals": self.unexpected_refusals[:20],
            "retries": self.retries,
            "committed": self.committed,
            "aborted": self.aborted,
            "undecided": self.undecided,
            "by_kind": self.by_kind,
            "latency_ms": {"p50": q(0.5), "p99": q(0.99)},
        }


class Journal:
    """Append-only JSON lines, flushed per acknowledgement."""

    def __init__(self, path: Path | None) -> None:
        self._f = open(path, "a") if path is not None else None  # noqa: SIM115

    def record(self, kind: str, entry_id: bytes, height: int, index: int) -> None:
        if self._f is not None:
            line = {"id": entry_id.hex(), "kind": kind, "height": height, "index": index}
            self._f.write(json.dumps(line) + "\n")
            self._f.flush()

    def close(self) -> None:
        if self._f is not None:
            self._f.close()


async def run_load(
    sequencer: str,
    genesis: Genesis,
    seed: int,
    count: int,
    rate: float | None = None,
    window: int = 32,
    journal_path: Path | None = None,
    op_timeout: float = 60.0,
) -> LoadSummary:
    rng = random.Random(seed)
    summary = LoadSummary(seed)
    journal = Journal(journal_path)
    chain = genesis.chain_id
    oracle = derive_oracle_key()
    option_rollup, collateral_rollup = compute_option_rollups(genesis)
    usdc, eth = (_asset(genesis, s) for s in ("USDC", "ETH"))
    strike = STRIKE * 10**usdc.decimals
    size = max(1, 10**eth.decimals // SIZE_PER_ETH)
    # more USDC than the collateral rollup holds in all, within the amount limit
    supply = sum(
        a.amount for a in genesis.allocations if (a.rollup, a.asset) == (collateral_rollup, "USDC")
    )
    overspend = min(genesis.limits.max_amount, max(10**15, supply + 1))
    bundles: dict[bytes, str] = {}  # our bundle ids -> kind
    decided: dict[bytes, bool] = {}
    opens_committed: dict[bytes, tuple[int, int]] = {}  # option id -> (expiry, holder index)
    opens_pending: dict[bytes, tuple[int, int]] = {}
    price = [3_000 * 10**usdc.decimals]
    loop = asyncio.get_running_loop()

    async with Client(sequencer, chain) as client, _spread(client) as submitter:
        head = await _head(client, op_timeout)
        start_height = head + 1
        stop_follow = asyncio.Event()

        async def follow() -> None:
            async for block in client.follow(start_height):
                for e in codec.decode_block(block).entries:
                    if isinstance(e, Decision) and e.bundle_id in bundles:
                        decided[e.bundle_id] = e.commit
                        if e.bundle_id in opens_pending:
                            info = opens_pending.pop(e.bundle_id)
                            if e.commit:
                                opens_committed[e.bundle_id] = info
                nonlocal head
                head = max(head, block.header.height)
                if stop_follow.is_set() and all(b in decided for b in bundles):
                    return

        follower = asyncio.create_task(follow())

        def make(i: int) -> tuple[str, pb.SignedTx | pb.SignedBundle, bool]:
            """(kind, message, expected to be refused at admission)"""
            expiry = head + 3_000
            r = rng.random()
            a, b = rng.sample(range(10), 2)
            if i % 40 == 0:
                price[0] = rng.randint(1_500, 2_500) * 10**usdc.decimals  # at or below strike
                return (
                    "price",
                    build_price_update(
                        oracle, option_rollup, "ETH", "USDC", price[0], expiry, chain
                    ),
                    False,
                )
            sender, to = derive_dev_account(a), derive_dev_account(b).address

            def transfer(rollup: str, asset: str, amount: int) -> pb.SignedTx:
                return build_transfer(sender, rollup, to, asset, amount, expiry, chain)

            if r < 0.50:
                rollup = rng.choice(genesis.rollup_names)
                amounts = [(a.symbol, rng.randint(1, 10**8)) for a in genesis.assets]
                asset, amount = rng.choice(amounts)
                return "transfer", transfer(rollup, asset, amount), False
            if r < 0.58:
                return "overspend", transfer(collateral_rollup, "USDC", overspend), False
            if r < 0.66:
                bad = transfer(option_rollup, "USDC", 5)
                sig = bytearray(bad.signatures[0].signature)
                sig[0] ^= 0xFF
                bad.signatures[0].signature = bytes(sig)
                return "bad_signature", bad, True
            ready = [oid for oid, (oexp, _) in opens_committed.items() if oexp < head]
            if r >= 0.82 and ready:
                # settle an expired option at the last price posted (aborts if it moved)
                oid = rng.choice(ready)
                _, holder = opens_committed.pop(oid)
                payout = compute_payout(OptionKind.PUT, strike, size, price[0], eth.decimals)
                bundle = build_settle_option(
                    derive_dev_account(a),
                    oid,
                    payout,
                    derive_dev_account(holder).address,
                    expiry,
                    option_rollup=option_rollup,
                    collateral_rollup=collateral_rollup,
                    chain_id=chain,
                )
                bundles[codec.decode_bundle(bundle).id] = "settle"
                return "settle", bundle, False
            thin = rng.random() < 0.2
            oexp = head + OPTION_EXPIRY_BLOCKS
            bundle = build_open_option(
                derive_dev_account(a),
                derive_dev_account(b),
                OptionKind.PUT,
                strike,
                size,
                oexp,
                10_000,
                expiry,
                underlying_decimals=eth.decimals,
                collateral=(10**usdc.decimals if thin else None),
                collateral_rollup=collateral_rollup,
                option_rollup=option_rollup,
                chain_id=chain,
                nonce=rng.getrandbits(63),
            )
            bid = codec.decode_bundle(bundle).id
            bundles[bid] = "open_thin" if thin else "open"
            opens_pending[bid] = (oexp, b)
            return bundles[bid], bundle, False

        sem = asyncio.Semaphore(window)

        async def submit(
            kind: str, msg: pb.SignedTx | pb.SignedBundle, refuse_expected: bool
        ) -> None:
            async with sem:
                summary.submitted += 1
                summary.by_kind[kind] = summary.by_kind.get(kind, 0) + 1
                started = loop.time()
                delay = 0.05
                while True:
                    try:
                        if isinstance(msg, pb.SignedBundle):
                            ack = await submitter.submit_bundle(msg, timeout=10.0)
                        else:
                            ack = await submitter.submit_tx(msg, timeout=10.0)
                        summary.acknowledged += 1
                        summary.latencies_ms.append((loop.time() - started) * 1000)
                        journal.record(kind, ack.id, ack.height, ack.index)
                        return
                    except aio.AioRpcError as e:
                        if e.code() not in TRANSIENT:
                            summary.refused += 1
                            if not refuse_expected:
                                summary.unexpected_refusals.append(f"{kind}: {e.details()}")
                            if isinstance(msg, pb.SignedBundle):
                                bundles.pop(codec.decode_bundle(msg).id, None)
                            return
                        if loop.time() - started > op_timeout:
                            summary.gave_up += 1
                            if isinstance(msg, pb.SignedBundle):
                                bundles.pop(codec.decode_bundle(msg).id, None)
                            return
                        summary.retries += 1
                    await asyncio.sleep(delay)
                    delay = min(1.0, delay * 2)

        tasks = []
        for i in range(count):
            kind, msg, refuse = make(i)
            tasks.append(asyncio.create_task(submit(kind, msg, refuse)))
            if rate:
                await asyncio.sleep(1.0 / rate)
            elif i % window == window - 1:
                await asyncio.sleep(0)  # let submissions start; the semaphore bounds them
            if len(tasks) > 4 * window:
                await asyncio.gather(*tasks[: len(tasks) - window])
                tasks = tasks[len(tasks) - window :]
        await asyncio.gather(*tasks)
        stop_follow.set()
        deadline = genesis.limits.bundle_deadline_blocks * genesis.block_interval_ms / 1000 + 30
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(follower, timeout=deadline)
    journal.close()
    summary.committed = sum(1 for b in bundles if decided.get(b) is True)
    summary.aborted = sum(1 for b in bundles if decided.get(b) is False)
    summary.undecided = sum(1 for b in bundles if b not in decided)
    return summary


@contextlib.asynccontextmanager
async def _spread(client: Client) -> AsyncIterator[Client]:
    """The client to submit through: on a list of replicas, a second channel that
    sends each call to the next ready replica; on one sequencer, `client`."""
    if len(client.endpoints) == 1:
        yield client
        return
    async with Client(client.endpoints, client.chain_id, spread=True) as spread:
        yield spread


def _asset(genesis: Genesis, symbol: str) -> Asset:
    asset = genesis.get_asset(symbol)
    if asset is None:
        have = ", ".join(a.symbol for a in genesis.assets)
        raise InvalidInput(
            f"the load's options are ETH puts paid in USDC: genesis has no {symbol} ({have})"
        )
    return asset


async def _head(client: Client, timeout: float) -> int:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            return int((await client.status(timeout=2.0)).height)
        except aio.AioRpcError:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.2)

"""I7 against real processes: the byzantine fault tools (devnet.faults.byzantine,
through the proxy on alpha's link) feed alpha a tampered block stream while
alpha-replica, on an honest link, follows the same sequencer. For each mode:

- alpha refuses, and GetNodeStatus says why (the mode's refusal code) and at
  which height;
- alpha applies nothing tampered: it stays below the refused height while the
  sequencer moves on, and its state root at its applied height is the
  replica's at that height;
- after `heal` (and, for equivocate, a restart: the node stops following on
  evidence) alpha catches up to the head by itself and equals the replica at
  every height, and the transfers submitted during the fault applied on alpha
  as they did on the replica;
- equivocate: the node keeps both signed headers as evidence, and the checker
  (`devnet check --json`) reports them while the log checks and the honest
  nodes' checks pass.

One devnet with replicas for the module; the modes run in order, equivocate last."""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from grpc import aio

from devnet import faults, network, tamper
from devnet.checker import NodeRef, check_replicas
from devnet.manifest import Manifest
from devnet.proxy import STREAM_BLOCKS
from xrollup.client import (
    CHANNEL_OPTIONS,
    Client,
    NodeClient,
    Submitted,
    build_bundle,
    build_transfer,
)
from xrollup.genesis import Genesis, compute_genesis_hash, load_genesis
from xrollup.keys import derive_dev_account
from xrollup.model import Leg, Transfer
from xrollup.numeric import Amount
from xrollup.v1 import node_pb2 as npb
from xrollup.v1 import sequencer_pb2 as spb
from xrollup.v1 import types_pb2 as pb
from xrollup.verify import is_signed_header

TARGET, REPLICA = "alpha", "alpha-replica"
SENDER, RECEIVER = derive_dev_account(4), derive_dev_account(5)
WAIT_S = 15.0
DEVNET = str(Path(sys.executable).parent / "devnet")
T = TypeVar("T")


class Net:
    def __init__(self, data_dir: Path) -> None:
        self.dir = data_dir
        self.manifest: Manifest = network.start_devnet(data_dir, replicas=True)
        self.genesis: Genesis = load_genesis(data_dir / "genesis.json")

    def endpoint(self, name: str) -> str:
        rec = self.manifest.get(name)
        assert rec is not None
        return rec.endpoint

    def node_refs(self) -> list[NodeRef]:
        return [
            NodeRef(p.name, p.rollup or "", p.endpoint)
            for p in self.manifest.processes
            if p.role == "node"
        ]


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    d = tmp_path_factory.mktemp("byzantine") / "devnet"
    try:
        yield Net(d)
    finally:
        network.stop_devnet(d, grace=5.0)


async def poll(what: str, check: Callable[[], Awaitable[T | None]], timeout: float = WAIT_S) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout} s")
        await asyncio.sleep(0.05)


async def submit_transfers(client: Client, rng: random.Random, n: int) -> list[Submitted]:
    head = (await client.status()).height
    txs = [
        build_transfer(
            SENDER,
            "alpha",
            RECEIVER.address,
            "USDC",
            1 + i,
            head + 3_000,
            nonce=rng.getrandbits(63),
        )
        for i in range(n)
    ]
    return list(await asyncio.gather(*(client.submit_tx(t) for t in txs)))


async def submit_cross_bundle(client: Client, rng: random.Random) -> Submitted:
    head = (await client.status()).height
    legs = [
        Leg(r, SENDER.address, Transfer(RECEIVER.address, "USDC", Amount(7)))
        for r in ("alpha", "beta")
    ]
    return await client.submit_bundle(
        build_bundle(legs, [SENDER], head + 3_000, nonce=rng.getrandbits(63))
    )


def devnet_cli(net: Net, *args: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
    p = subprocess.run(
        [DEVNET, *args, "--data-dir", str(net.dir)], capture_output=True, text=True, timeout=60
    )
    assert p.returncode == expect, f"devnet {' '.join(args)}: {p.returncode}\n{p.stdout}{p.stderr}"
    return p


async def raw_blocks(endpoint: str, start: int, stop: int) -> list[bytes]:
    """Blocks start..stop as the wire bytes StreamBlocks sends (nothing decoded)."""
    async with aio.insecure_channel(endpoint, options=CHANNEL_OPTIONS) as channel:
        call = channel.unary_stream(STREAM_BLOCKS, None, None)(
            spb.StreamBlocksRequest(from_height=start).SerializeToString(), timeout=WAIT_S
        )
        out: list[bytes] = []
        async for raw in call:
            out.append(raw)
            if len(out) == stop - start + 1:
                call.cancel()
                break
        return out


def test_proxy_relays_bytes_untouched_and_tampers_only_the_byzantine_route(
    net: Net, seed: int
) -> None:
    """A route without a byzantine mode relays StreamBlocks byte for byte and
    passes the sequencer's statuses back as they are; a byzantine mode on one
    route changes that route's stream only."""
    rng = random.Random(seed)
    routes = dict(network.parse_routes(net.manifest.get(network.PROXY).argv))  # type: ignore[union-attr]

    async def run() -> None:
        async with Client(net.endpoint("sequencer")) as seq, Client(routes["alpha"]) as via:
            acks = await submit_transfers(seq, rng, 5)
            head = max(a.height for a in acks)
            direct = await raw_blocks(net.endpoint("sequencer"), 1, head)
            assert await raw_blocks(routes["alpha"], 1, head) == direct
            assert (await via.status()).height >= head
            with pytest.raises(aio.AioRpcError) as e:
                await via.submit_tx(pb.SignedTx(body=b"not a body"))
            with pytest.raises(aio.AioRpcError) as d:
                await seq.submit_tx(pb.SignedTx(body=b"not a body"))
            assert (e.value.code(), e.value.details()) == (d.value.code(), d.value.details())

            faults.byzantine(net.dir, "beta", tamper.FORGE_BLOCK)
            try:
                await asyncio.sleep(0.2)
                assert await raw_blocks(routes["alpha"], 1, head) == direct
                forged = await raw_blocks(routes["beta"], 1, head)
                assert [pb.Block.FromString(b).header.height for b in forged] == list(
                    range(1, head + 1)
                )
                assert all(f != b for f, b in zip(forged, direct, strict=True))
            finally:
                faults.heal(net.dir, "beta")
            await asyncio.sleep(0.2)
            assert await raw_blocks(routes["beta"], 1, head) == direct

    asyncio.run(run())


def test_byzantine_from_the_command_line(net: Net) -> None:
    """`devnet byzantine MODE NAME`, `devnet faults` (the link's mode and the
    node's refusal), `devnet heal NAME`; refusals of what cannot be done."""
    out = json.loads(devnet_cli(net, "byzantine", "forge-block", "beta", "--json").stdout)
    assert out == {
        "fault": "byzantine",
        "mode": "forge-block",
        "name": "beta",
        "expected_refusal": "BAD_SIGNATURE",
    }
    deadline = time.monotonic() + WAIT_S
    while True:
        rows = json.loads(devnet_cli(net, "faults", "--json").stdout)["processes"]
        beta = next(r for r in rows if r["name"] == "beta")
        assert beta["byzantine"] == "forge-block"
        if beta["refusal"] and beta["refusal"]["code"] == "BAD_SIGNATURE":
            break
        assert time.monotonic() < deadline, beta
        time.sleep(0.2)
    assert beta["refused_blocks"] >= 1 and beta["equivocation"] is None
    assert "byzantine forge-block" in devnet_cli(net, "faults").stdout
    healed = json.loads(devnet_cli(net, "heal", "beta", "--json").stdout)
    assert healed == {"fault": "heal", "name": "beta", "lifted": {"byzantine": "forge-block"}}
    rows = json.loads(devnet_cli(net, "faults", "--json").stdout)["processes"]
    assert next(r for r in rows if r["name"] == "beta")["byzantine"] is None

    p = devnet_cli(net, "byzantine", "corrupt", "sequencer", expect=2)
    assert "act on a node's link" in p.stderr + p.stdout
    p = devnet_cli(net, "byzantine", "lie", "alpha", expect=2)
    assert "lie" in p.stderr


MODES = list(tamper.MODES)
assert MODES[-1] == tamper.EQUIVOCATE  # it halts alpha: last


@pytest.mark.timeout(90)
@pytest.mark.parametrize("mode", MODES)
def test_byzantine_link_is_refused_and_heals(mode: str, net: Net, seed: int) -> None:
    rng = random.Random(seed)
    expected = npb.Refusal.Code.Value(f"CODE_{tamper.EXPECTED_REFUSAL[mode]}")

    async def run() -> None:
        async with (
            Client(net.endpoint("sequencer")) as seq,
            NodeClient(net.endpoint(TARGET)) as node,
            NodeClient(net.endpoint(REPLICA)) as replica,
        ):
            before = await node.status()
            start = int((await seq.status()).height)
            faults.byzantine(net.dir, TARGET, mode)
            assert [r.byzantine for r in faults.list_faults(net.dir) if r.name == TARGET] == [mode]
            await asyncio.sleep(0.2)  # the proxy reads faults.json every 50 ms
            acks = await submit_transfers(seq, rng, 3)
            if mode == tamper.FORGE_DECISION:
                acks.append(await submit_cross_bundle(seq, rng))

            async def refused() -> npb.GetNodeStatusResponse | None:
                s = await node.status()
                return s if s.HasField("refusal") and s.refusal.code == expected else None

            status = await poll(f"{mode} refusal on {TARGET}", refused)
            refused_at = int(status.refusal.height)
            assert status.refused_blocks > before.refused_blocks
            if mode == tamper.CORRUPT:
                # Empty blocks carry no signature to corrupt: the first refused
                # block is the first with a transfer (nothing else is submitted).
                assert refused_at == min(a.height for a in acks), status.refusal
            elif mode == tamper.EQUIVOCATE:
                assert status.HasField("equivocation")
            else:
                assert refused_at > start - 1, status.refusal

            # Nothing tampered applied: stuck below the refused block while the
            # chain moves on (an equivocating block is for an applied height).
            head = int((await seq.status()).height)
            await replica.wait_for_height(head + 3, timeout=WAIT_S)
            now = await node.status()
            if mode == tamper.EQUIVOCATE:
                assert now.applied_height == refused_at, now
                assert not now.connected
            else:
                assert now.applied_height == refused_at - 1, now
            applied = int(now.applied_height)
            assert await node.state_root(applied) == await replica.state_root(applied)

            if mode == tamper.EQUIVOCATE:
                await check_evidence(net, seq, now.equivocation, applied)

            was = faults.heal(net.dir, TARGET)
            assert was == {"byzantine": mode}
            if mode == tamper.EQUIVOCATE:
                await asyncio.sleep(1.5)  # healed, but halted on evidence until restarted
                assert (await node.status()).applied_height == applied
                await asyncio.to_thread(faults.restart, net.dir, TARGET)

            head = int((await seq.status()).height)
            await node.wait_for_height(head, timeout=WAIT_S)
            await replica.wait_for_height(head, timeout=WAIT_S)
            after = await node.status()
            assert not after.HasField("refusal"), after.refusal
            for ack in acks:
                mine, theirs = await node.receipt(ack.id), await replica.receipt(ack.id)
                assert (mine.ok, mine.height) == (theirs.ok, theirs.height) == (True, ack.height)
            refs = [r for r in net.node_refs() if r.rollup == "alpha"]
            report = await check_replicas(refs, from_height=max(0, start - 5))
            assert report.ok, report.violations

    asyncio.run(run())


async def check_evidence(net: Net, seq: Client, ev: npb.Equivocation, height: int) -> None:
    """The node holds two sequencer-signed headers for `height`, the first the
    sequencer's own block; `devnet check` reports them and nothing else fails."""
    genesis_hash = compute_genesis_hash(net.genesis)
    assert ev.height == height
    assert ev.first.hash != ev.second.hash
    assert all(is_signed_header(h, net.genesis, genesis_hash) for h in (ev.first, ev.second))
    honest = await seq.get_block(height)
    assert ev.first.hash == honest.hash
    # `devnet check --json`: run_checks on every running node, exit 1 on a failed check.
    doc = json.loads((await asyncio.to_thread(devnet_cli, net, "check", "--json", expect=1)).stdout)
    checks = doc["checks"]
    assert not doc["ok"]
    eq = checks["equivocation"]
    assert not eq["ok"] and eq["nodes"] == [TARGET]
    assert any(ev.first.hash.hex() in v and ev.second.hash.hex() in v for v in eq["violations"])
    for name in ("chain", "decisions", "atomicity", "conservation", "replicas"):
        assert checks[name]["ok"], (name, checks[name])

"""Rollup nodes as real processes behind a real sequencer (the `start_devnet`
fixture: sequencer, alpha, beta and their replicas on 127.0.0.1):

- a transfer is applied on its rollup and only there;
- I4: after 10,000 seeded random transfers (overspends that reach the nodes,
  and refusals at admission that must never apply), each replica has its
  primary's state root at every height from 0 to the head;
- I3/I5 for nodes: a node SIGKILLed mid-stream and restarted on its directory
  resumes where it was and matches its replica at every height; a node started
  after 1,000 blocks catches up from height 0 and matches the primary."""

from __future__ import annotations

import asyncio
import functools
import os
import random
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
import nacl.signing
from grpc import aio

from devnet import launcher
from devnet.manifest import Manifest, ProcessRecord
from xrollup import codec
from xrollup.blocks import compute_id
from xrollup.client import Client, NodeClient
from xrollup.genesis import DEV_ACCOUNT_COUNT, DEV_CHAIN_ID
from xrollup.keys import Address, Keypair, derive_dev_account
from xrollup.model import Signature, Transfer, TxBody
from xrollup.numeric import Amount, Height
from xrollup.v1 import types_pb2 as pb

ACCOUNTS = tuple(derive_dev_account(i) for i in range(DEV_ACCOUNT_COUNT))
ROLLUPS = ("alpha", "beta")
ASSETS = ("USDC", "ETH")
PER_ACCOUNT = {"USDC": 1_000_000 * 10**6, "ETH": 1_000 * 10**9}  # dev genesis, each rollup
SUPPLY = {asset: DEV_ACCOUNT_COUNT * amount for asset, amount in PER_ACCOUNT.items()}

# ---------------------------------------------------------------- signing


@functools.cache
def _signing_key(seed: bytes) -> nacl.signing.SigningKey:
    return nacl.signing.SigningKey(seed)


def sign_transfer(
    signer: Keypair,
    rollup: str,
    to: Address,
    asset: str,
    amount: int,
    expiry: int,
    nonce: int,
    sender: Address | None = None,
    chain_id: str = DEV_CHAIN_ID,
) -> pb.SignedTx:
    """A transfer signed by `signer` for `sender` (default: the signer's own
    account). The same body bytes and Ed25519 signature as xrollup.client's
    build_transfer, with the signing key cached: Keypair.sign rebuilds it on
    every call (~0.3 ms), which would cost seconds over 10,000 transfers."""
    body = TxBody(
        chain_id,
        rollup,
        signer.address if sender is None else sender,
        nonce,
        Height(expiry),
        Transfer(to, asset, Amount(amount)),
    )
    body_bytes = codec.encode_tx_body(body)
    key = _signing_key(signer.seed)
    signature = Signature(bytes(key.verify_key), bytes(key.sign(body_bytes).signature))
    return codec.encode_signed_tx(body_bytes, [signature])


# ---------------------------------------------------------------- node helpers


def endpoint(manifest: Manifest, name: str) -> str:
    rec = manifest.get(name)
    assert rec is not None, f"no {name} in the devnet"
    return rec.endpoint


def nodes_of(manifest: Manifest) -> dict[str, NodeClient]:
    return {p.name: NodeClient(p.endpoint) for p in manifest.processes if p.role == "node"}


async def close_all(clients: Sequence[NodeClient | Client]) -> None:
    for c in clients:
        await c.close()


async def wait_applied(nodes: Sequence[NodeClient], height: int, timeout: float = 60.0) -> None:
    await asyncio.gather(*(n.wait_for_height(height, timeout=timeout) for n in nodes))


async def assert_same_roots(a: NodeClient, b: NodeClient, last: int, what: str) -> None:
    """GetStateRoot of `a` and `b` agree at every height 0..last."""
    step = 250
    for start in range(0, last + 1, step):
        heights = range(start, min(last, start + step - 1) + 1)
        ra = await asyncio.gather(*(a.state_root(h) for h in heights))
        rb = await asyncio.gather(*(b.state_root(h) for h in heights))
        for h, x, y in zip(heights, ra, rb, strict=True):
            assert len(x) == 32, f"{what}: no root at height {h}"
            assert x == y, f"{what}: state roots differ at height {h}: {x.hex()} != {y.hex()}"


async def all_balances(node: NodeClient) -> dict[tuple[int, str], int]:
    """(dev account index, asset) -> balance on the node's rollup."""
    replies = await asyncio.gather(*(node.balances(a.address) for a in ACCOUNTS))
    return {(i, asset): b.get(asset, 0) for i, b in enumerate(replies) for asset in ASSETS}


async def assert_no_receipt(node: NodeClient, ids: Sequence[bytes], what: str) -> None:
    async def one(entry_id: bytes) -> None:
        try:
            r = await node.receipt(entry_id)
        except aio.AioRpcError as e:
            assert e.code() == grpc.StatusCode.NOT_FOUND, e
            return
        raise AssertionError(f"{what}: {entry_id.hex()} has a receipt at height {r.height}")

    for start in range(0, len(ids), 200):
        await asyncio.gather(*(one(i) for i in ids[start : start + 200]))


def wait_gone(pid: int, argv: list[str], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while launcher.is_alive(pid, argv):
        assert time.monotonic() < deadline, f"pid {pid} still alive {timeout}s after SIGKILL"
        time.sleep(0.02)


def restart(rec: ProcessRecord) -> launcher.Launched:
    """Start a node again with its recorded command line, directory and log."""
    ready = Path(rec.argv[rec.argv.index("--ready-file") + 1])
    return launcher.start_process(
        rec.name,
        rec.role,
        rec.rollup,
        rec.argv,
        Path(rec.data_dir),
        Path(rec.log),
        ready,
        timeout=30.0,
        detach=False,
    )


# ---------------------------------------------------------------- (a) one rollup only


async def _transfers_stay_on_their_rollup(manifest: Manifest) -> None:
    seq = Client(endpoint(manifest, "sequencer"))
    nodes = nodes_of(manifest)
    try:
        before = {r: await all_balances(nodes[r]) for r in ROLLUPS}
        expiry = await seq.expiry()
        moves = [  # (rollup, from, to, asset, amount)
            ("alpha", 0, 1, "USDC", 1_000_000),
            ("alpha", 0, 1, "ETH", 7),
            ("alpha", 1, 2, "USDC", 5),
            ("beta", 2, 3, "USDC", 250),
            ("beta", 3, 0, "ETH", 9),
        ]
        txs = [
            sign_transfer(ACCOUNTS[f], r, ACCOUNTS[t].address, asset, amount, expiry, nonce=n)
            for n, (r, f, t, asset, amount) in enumerate(moves)
        ]
        items = await seq.submit_batch(txs)
        assert all(i.ok for i in items), [i.message for i in items if not i.ok]
        ids = {r: [i.id for i, m in zip(items, moves, strict=True) if m[0] == r] for r in ROLLUPS}

        for rollup in ROLLUPS:
            for name in (rollup, f"{rollup}-replica"):
                for entry_id in ids[rollup]:
                    receipt = await nodes[name].wait_for_receipt(entry_id)
                    assert receipt.ok, f"{name}: {receipt.reason}"
        await wait_applied(list(nodes.values()), max(i.height for i in items))

        for rollup in ROLLUPS:
            expected = dict(before[rollup])
            for r, f, t, asset, amount in moves:
                if r == rollup:
                    expected[(f, asset)] -= amount
                    expected[(t, asset)] += amount
            assert await all_balances(nodes[rollup]) == expected, rollup
            assert await all_balances(nodes[f"{rollup}-replica"]) == expected, rollup
            other = "beta" if rollup == "alpha" else "alpha"
            for name in (other, f"{other}-replica"):
                await assert_no_receipt(nodes[name], ids[rollup], f"{rollup} tx on {name}")
    finally:
        await close_all([seq, *nodes.values()])


def test_transfers_are_applied_on_their_rollup_only(start_devnet) -> None:
    manifest = start_devnet(replicas=True)
    asyncio.run(_transfers_stay_on_their_rollup(manifest))


# ---------------------------------------------------------------- (b) 10,000 transfers


TOTAL = 10_000
BATCH = 1_000


@dataclass
class Workload:
    txs: list[pb.SignedTx]
    kinds: list[str]  # "valid" | "overspend" | "refused:<why>"
    rollups: list[str]
    # Net balance change of the valid transfers: (rollup, account index, asset) -> delta.
    deltas: dict[tuple[str, int, str], int]


def make_workload(rng: random.Random, expiry: int) -> Workload:
    """~87% valid transfers (amounts far below any balance, so every one succeeds),
    10% overspends that reach the nodes and always fail there (half more than the
    sender can hold, half more than the asset's whole supply), 3% refused at
    admission (unknown asset, wrong signer, expired, other chain)."""
    w = Workload([], [], [], {})
    for n in range(TOTAL):
        f, t = rng.sample(range(DEV_ACCOUNT_COUNT), 2)
        rollup, asset = rng.choice(ROLLUPS), rng.choice(ASSETS)
        signer, to = ACCOUNTS[f], ACCOUNTS[t].address
        roll = rng.random()
        if roll < 0.10:
            if roll < 0.05:  # valid transfers add at most 10,000 * 10^6 to any balance
                amount = rng.randint(PER_ACCOUNT[asset] + 10**10 + 1, SUPPLY[asset])
            else:
                amount = rng.randint(SUPPLY[asset] + 1, 2**62)
            tx, kind = sign_transfer(signer, rollup, to, asset, amount, expiry, n), "overspend"
        elif roll < 0.13:
            why = rng.choice(("unknown asset", "wrong signer", "expired", "other chain"))
            kind = f"refused:{why}"
            if why == "unknown asset":
                tx = sign_transfer(signer, rollup, to, "DOGE", 1, expiry, n)
            elif why == "wrong signer":  # signed by f for account t
                tx = sign_transfer(signer, rollup, signer.address, asset, 1, expiry, n, sender=to)
            elif why == "expired":
                tx = sign_transfer(signer, rollup, to, asset, 1, 1, n)
            else:
                tx = sign_transfer(signer, rollup, to, asset, 1, expiry, n, chain_id="other")
        else:
            amount = rng.randint(1, 1_000_000)
            tx, kind = sign_transfer(signer, rollup, to, asset, amount, expiry, n), "valid"
            w.deltas[(rollup, f, asset)] = w.deltas.get((rollup, f, asset), 0) - amount
            w.deltas[(rollup, t, asset)] = w.deltas.get((rollup, t, asset), 0) + amount
        w.txs.append(tx)
        w.kinds.append(kind)
        w.rollups.append(rollup)
    return w


REFUSAL_CODES = {
    "unknown asset": grpc.StatusCode.INVALID_ARGUMENT,
    "wrong signer": grpc.StatusCode.PERMISSION_DENIED,
    "expired": grpc.StatusCode.FAILED_PRECONDITION,
    "other chain": grpc.StatusCode.INVALID_ARGUMENT,
}


async def _ten_thousand(manifest: Manifest, seed: int) -> None:
    rng = random.Random(seed)
    seq = Client(endpoint(manifest, "sequencer"))
    nodes = nodes_of(manifest)
    try:
        t0 = time.monotonic()
        w = make_workload(rng, await seq.expiry())
        t1 = time.monotonic()
        batches = [w.txs[i : i + BATCH] for i in range(0, TOTAL, BATCH)]
        results = []
        for start in range(0, len(batches), 2):  # two batches in flight at a time
            parts = await asyncio.gather(*(seq.submit_batch(b) for b in batches[start : start + 2]))
            results.extend(item for part in parts for item in part)
        t2 = time.monotonic()
        assert len(results) == TOTAL

        reached: dict[str, list[bytes]] = {r: [] for r in ROLLUPS}  # overspend ids
        refused: dict[str, list[bytes]] = {r: [] for r in ROLLUPS}
        for tx, kind, rollup, item in zip(w.txs, w.kinds, w.rollups, results, strict=True):
            if kind.startswith("refused:"):
                why = kind.split(":", 1)[1]
                assert item.code == REFUSAL_CODES[why], (why, item.code, item.message)
                refused[rollup].append(compute_id(tx.body))
            else:
                assert item.ok, f"{kind} transfer refused at admission: {item.message}"
                assert item.id == compute_id(tx.body)
                if kind == "overspend":
                    reached[rollup].append(item.id)
        head = (await seq.status()).height
        assert head >= max(item.height for item in results if item.ok)
        await wait_applied(list(nodes.values()), head, timeout=120.0)
        t3 = time.monotonic()

        for rollup in ROLLUPS:
            await assert_same_roots(
                nodes[rollup], nodes[f"{rollup}-replica"], head, f"{rollup} vs its replica"
            )
        t4 = time.monotonic()

        for rollup in ROLLUPS:
            # Every valid transfer applied once; no overspend and no refused one moved funds.
            expected = {
                (i, asset): PER_ACCOUNT[asset] + w.deltas.get((rollup, i, asset), 0)
                for i in range(DEV_ACCOUNT_COUNT)
                for asset in ASSETS
            }
            for name in (rollup, f"{rollup}-replica"):
                got = await all_balances(nodes[name])
                assert got == expected, f"{name}: balances differ from the valid transfers"
                for asset in ASSETS:  # I2 on this rollup
                    assert sum(v for (_, a), v in got.items() if a == asset) == SUPPLY[asset]
            # Overspends reached the node and failed there with their reason.
            for entry_id in reached[rollup][:150]:
                for name in (rollup, f"{rollup}-replica"):
                    r = await nodes[name].receipt(entry_id)
                    assert not r.ok and r.reason.startswith("insufficient"), (name, r.reason)
            # Refused at admission: never ordered, never applied anywhere.
            for name in nodes:
                await assert_no_receipt(nodes[name], refused[rollup], f"refused tx on {name}")
        counts = {k: w.kinds.count(k) for k in sorted(set(w.kinds))}
        print(
            f"{TOTAL} transfers {counts}: signed in {t1 - t0:.1f}s, submitted in {t2 - t1:.1f}s,"
            f" applied by all 4 nodes {t3 - t2:.1f}s later; roots at {head + 1} heights"
            f" compared in {t4 - t3:.1f}s"
        )
    finally:
        await close_all([seq, *nodes.values()])


def test_replicas_match_primaries_at_every_height_after_10000_transfers(
    start_devnet, seed: int
) -> None:
    manifest = start_devnet(replicas=True)
    asyncio.run(_ten_thousand(manifest, seed))


# ---------------------------------------------------------------- load for (c) and (d)


async def _load(
    seq: Client, rng: random.Random, stop: asyncio.Event, rollups: Sequence[str], acked: list
) -> None:
    """Batches of valid transfers until `stop` is set; acknowledgements into `acked`."""
    expiry = await seq.expiry()
    while not stop.is_set():
        txs = []
        for _ in range(100):
            f, t = rng.sample(range(DEV_ACCOUNT_COUNT), 2)
            asset = rng.choice(ASSETS)
            txs.append(
                sign_transfer(
                    ACCOUNTS[f],
                    rng.choice(rollups),
                    ACCOUNTS[t].address,
                    asset,
                    rng.randint(1, 1000),
                    expiry,
                    nonce=rng.getrandbits(63),
                )
            )
        items = await seq.submit_batch(txs)
        assert all(i.ok for i in items), [i.message for i in items if not i.ok][:3]
        acked.extend((tx, i) for tx, i in zip(txs, items, strict=True))
        await asyncio.sleep(0.05)


# ---------------------------------------------------------------- (c) SIGKILL and restart


async def _kill_and_restart(manifest: Manifest, seed: int) -> None:
    rng = random.Random(seed)
    rec = manifest.get("alpha")
    assert rec is not None
    seq = Client(endpoint(manifest, "sequencer"))
    replica = NodeClient(endpoint(manifest, "alpha-replica"))
    stop = asyncio.Event()
    acked: list = []
    load = asyncio.create_task(_load(seq, rng, stop, ROLLUPS, acked))
    pid, alpha_ep = rec.pid, rec.endpoint
    running: launcher.Launched | None = None  # the restarted node, our child
    try:
        # Round 1 kills it while it follows the head; round 2 right after the restart,
        # while it may still be applying the blocks it missed.
        first_kill_at = 0
        for delay in (rng.uniform(0.8, 1.5), rng.uniform(0.0, 0.2)):
            await asyncio.sleep(delay)
            async with NodeClient(alpha_ep) as alpha:
                applied_before = (await alpha.status()).applied_height
            os.kill(pid, signal.SIGKILL)
            if running is not None and running.popen is not None:
                await asyncio.to_thread(running.popen.wait, 10)
            await asyncio.to_thread(wait_gone, pid, rec.argv)
            killed_at = (await seq.status()).height
            first_kill_at = first_kill_at or killed_at
            await asyncio.sleep(1.0)  # the sequencer keeps ordering while alpha is down
            running = await asyncio.to_thread(restart, rec)
            pid, alpha_ep = running.pid, running.endpoint
            async with NodeClient(alpha_ep) as alpha:
                # It resumes from its own store: kill -9 loses nothing LevelDB was handed.
                assert (await alpha.status()).applied_height >= applied_before
            print(f"alpha killed at head {killed_at} (it had applied {applied_before})")
        await asyncio.sleep(0.5)
        stop.set()
        await load
        head = (await seq.status()).height
        async with NodeClient(alpha_ep) as alpha:
            # It caught up by itself with the blocks it missed.
            await wait_applied([alpha, replica], head)
            await assert_same_roots(alpha, replica, head, "restarted alpha vs alpha-replica")
            missed = [
                i.id for tx, i in acked if i.height > first_kill_at and tx_rollup(tx) == "alpha"
            ]
            assert missed, "no alpha transfer was ordered while alpha was down"
            for entry_id in missed[:100]:
                assert (await alpha.receipt(entry_id)).ok
        print(f"caught up to {head}; {len(missed)} alpha transfers ordered since the first kill")
    finally:
        stop.set()
        if not load.done():
            load.cancel()
        if running is not None:
            launcher.stop_pid(running.pid, grace=5.0, popen=running.popen)
        await close_all([seq, replica])


def tx_rollup(tx: pb.SignedTx) -> str:
    return codec.decode_tx(tx).body.rollup


def test_node_killed_mid_stream_restarts_and_matches_its_replica(start_devnet, seed: int) -> None:
    manifest = start_devnet(replicas=True)
    asyncio.run(_kill_and_restart(manifest, seed))


# ---------------------------------------------------------------- (d) a late node


LATE_AFTER = 1_000


async def _late_node(manifest: Manifest, tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    seq = Client(endpoint(manifest, "sequencer"))
    primary = NodeClient(endpoint(manifest, "alpha"))
    stop = asyncio.Event()
    acked: list = []
    load = asyncio.create_task(_load(seq, rng, stop, ("alpha",), acked))
    late: launcher.Launched | None = None
    try:
        while (await seq.status()).height < LATE_AFTER:
            await asyncio.sleep(0.1)
        stop.set()
        await load
        assert acked
        data_dir = tmp_path / "alpha-late"
        ready = tmp_path / "alpha-late.ready"
        log = tmp_path / "alpha-late.log"
        argv = launcher.node_argv(
            "alpha", seq.endpoint, "127.0.0.1:0", data_dir, ready, Path(manifest.genesis)
        )
        late = await asyncio.to_thread(
            launcher.start_process,
            "alpha-late",
            "node",
            "alpha",
            argv,
            data_dir,
            log,
            ready,
            30.0,
            False,
        )
        head = (await seq.status()).height
        assert head >= LATE_AFTER
        async with NodeClient(late.endpoint) as node:
            await wait_applied([node, primary], head)
            assert "following" in log.read_text() and "from height 0" in log.read_text()
            await assert_same_roots(node, primary, head, "late alpha vs alpha")
            # The load stopped before the late node started, so balances are final.
            assert await all_balances(node) == await all_balances(primary)
        print(f"late node caught up from 0 to {head}; {len(acked)} transfers in the history")
    finally:
        stop.set()
        if not load.done():
            load.cancel()
        if late is not None:
            launcher.stop_pid(late.pid, grace=5.0, popen=late.popen)
        await close_all([seq, primary])


def test_node_started_after_1000_blocks_catches_up_from_height_0(
    start_devnet, tmp_path: Path, seed: int
) -> None:
    manifest = start_devnet(block_interval_ms=5)
    asyncio.run(_late_node(manifest, tmp_path, seed))

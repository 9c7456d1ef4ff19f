"""Sequencer benchmark: a real `python -m sequencer` process on 127.0.0.1 against
the floors it cannot beat on this machine.

    .venv/bin/python bench/sequencer.py --json        # one JSON object on stdout
    .venv/bin/python bench/sequencer.py               # a readable table
    .venv/bin/python bench/sequencer.py --ha --json   # and the same against an HA sequencer

Phases (each runs `--duration` seconds after a short warm-up that is not counted):

  clients_1  one client, one process, SubmitTransaction, one call in flight.
  clients_8  8 clients, each a pipelining "trader bot" that keeps a window of W
             submissions in flight (an ack only comes once the block is synced, so
             a client waiting for each ack is bound to ~1 tx per block interval).
             The clients run in OS processes (by default 2 of 4 clients; see
             CLIENT_PROCS for why), each client with its own grpc.aio channel (its
             own TCP connection); requests are pre-serialized bytes.
  batched    SubmitBatch with batches of B transactions from a few concurrent callers;
             acked_per_s counts acknowledged transactions, latency is per call.

With --ha, clients_8 and batched run again as clients_8_ha and batched_ha against an
HA sequencer (issue 12; sequencer/ha.py): a three-member etcd cluster (real
/usr/bin/etcd processes, devnet/etcd.py's command line, data in the run's temporary
folder) and three `python -m sequencer --etcd ... --replica-name ...` replicas on it,
started side by side by devnet.starter. Each client and each batch caller has its own
channel to the replica list "A,B,C" with round_robin (xrollup.client.open_channel
with spread=True: a connection to every replica, each call to the next one), so
submissions spread over the replicas: the leader orders its third, the standbys
admit theirs (decode, signatures, limits) and forward them to the leader in batches.
`ha` holds the HA/single ratios, clients_8_ha against the bare floor, the leader
before and after each phase (a change of lead during a phase is reported), and each
replica's share of the accepted submissions (from its metrics). `--profile DIR`
records the leader and a standby with py-spy during clients_8_ha and each thread's
CPU (the figures of that run are then perturbed by the sampling).

Floors:
  bare_grpc_calls_per_s   a bare grpc.aio server of the same kind (same server
             options, health and reflection, the generated SequencerService servicer
             answering SubmitTransaction at once) in its own process, driven by the
             SAME client model as clients_8 with the same payload size.
  verify_per_s            Ed25519 verifies/s with PyNaCl on all cores (one thread per
             core: crypto_sign_open releases the GIL), on the same body size; the
             single-core figures for PyNaCl and `cryptography` are kept for the record.
  synced_block_write_ms   median time of one synced LevelDBBlockStore.append of a
             block of 1,000 transfer entries with their id index keys.

Every transaction is signed before its phase starts (signing is the client's cost),
with distinct dev accounts and nonces, so every id is unique and every transfer is
valid. Each phase reports the CPU its server (with its child processes; under HA the
three replicas with theirs and the three etcd members, each also on its own in
server_cores_by_process), its load processes and the rest of the machine used: on a
2-core machine anything else running (a test suite) moves every figure, and
`config.max_other_cores_used` says how much did. Everything runs on 127.0.0.1;
every process this script starts is stopped by its pid in a finally block."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import math
import multiprocessing as mp
import multiprocessing.connection as mpc
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import grpc
import nacl.bindings
import nacl.signing
from grpc import aio

# This file is bench/sequencer.py: keep its folder off sys.path so that `sequencer`
# is the package, not this script.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

from devnet import etcd, starter  # noqa: E402
from devnet.launcher import Launched, sequencer_argv, start_process, stop_pid  # noqa: E402
from sequencer.store import LevelDBBlockStore  # noqa: E402
from xrollup import serving  # noqa: E402
from xrollup.blocks import compute_id  # noqa: E402
from xrollup.client import open_channel  # noqa: E402
from xrollup.genesis import DEV_CHAIN_ID, compute_genesis_hash, dev_genesis  # noqa: E402
from xrollup.keys import derive_dev_account, derive_sequencer_key  # noqa: E402
from xrollup.v1 import sequencer_pb2 as spb  # noqa: E402
from xrollup.v1 import sequencer_pb2_grpc as spb_grpc  # noqa: E402
from xrollup.v1 import types_pb2 as pb  # noqa: E402
from xrollup.verify import seal_block  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SERVICE = spb.DESCRIPTOR.services_by_name["SequencerService"].full_name
SUBMIT_TX = f"/{SERVICE}/SubmitTransaction"
SUBMIT_BATCH = f"/{SERVICE}/SubmitBatch"

BLOCK_INTERVAL_MS = 20
# In-flight submissions per clients_8 client. By Little's law throughput = in flight /
# latency, and an ack waits for the next synced block (~20-25 ms at 20 ms blocks), so
# 8 clients need ~2,250/s x 25 ms ~ 56 in flight to keep the sequencer busy: W=8 is
# the smallest power of two where its throughput stops growing (measured W=4: ~1,500/s,
# window-bound); the bare server is saturated from W=4. A larger W adds only queueing
# (W=32: the same throughput, p50 ~100-150 ms).
WINDOW = 8
CLIENTS = 8
# clients_8 and the bare floor: 8 clients in 2 processes of 4 (each client with its
# own grpc.aio channel and TCP connection). On 2 cores the load processes share the
# CPU with the server; 2 processes spent ~160-270 us of client CPU per call against
# ~300-390 us for 8 processes (more poller threads and context switches), so they
# leave the server under test more of the machine. --client-procs 8 runs one each.
CLIENT_PROCS = 2
BATCH_SIZE = 500
BATCH_CALLERS = 4
BATCH_PROCS = 2
EXPIRY_BLOCKS = 3000
# Pre-signing budget: enough for more than the machine can do; a client that runs
# out stops early and its phase is flagged "exhausted".
PER_CLIENT_CAP_PER_S = 1500
BATCH_CAP_PER_S = 24_000
BARE_CYCLE = 2000  # the bare server keeps nothing, so its clients cycle over this many

CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    # Each client gets its own subchannel, hence its own TCP connection.
    ("grpc.use_local_subchannel_pool", 1),
]


_CODE_NAMES = {c.value[0]: c.name for c in grpc.StatusCode}


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- signing


def signed_transfers(
    account: int, nonce_base: int, count: int, expiry: int, chain_id: str = DEV_CHAIN_ID
) -> list[pb.SignedTx]:
    """`count` valid signed transfers of 1 base unit of USDC on alpha from dev
    account `account` to the next one, nonces nonce_base, nonce_base + 1, ..."""
    key = derive_dev_account(account)
    sk = nacl.signing.SigningKey(key.seed)._signing_key
    public_key = key.public_key
    to = derive_dev_account((account + 1) % 10).address
    body = pb.TxBody(
        chain_id=chain_id,
        rollup="alpha",
        sender=key.address,
        expiry_height=expiry,
        action=pb.Action(transfer=pb.Transfer(to=to, asset="USDC", amount=1)),
    )
    out = []
    for i in range(count):
        body.nonce = nonce_base + i
        body_bytes = body.SerializeToString()
        sig = nacl.bindings.crypto_sign(body_bytes, sk)[:64]
        out.append(
            pb.SignedTx(
                body=body_bytes, signatures=[pb.Signature(public_key=public_key, signature=sig)]
            )
        )
    return out


# ---------------------------------------------------------------- load workers


@dataclasses.dataclass(frozen=True)
class ClientSpec:
    account: int
    nonce_base: int
    count: int  # transactions to pre-sign (batch mode: in whole batches)
    window: int  # calls in flight


@dataclasses.dataclass(frozen=True)
class WorkerSpec:
    mode: str  # "tx" | "batch"
    endpoint: str  # HOST:PORT, or "A,B,C" for the replicas of an HA sequencer
    clients: tuple[ClientSpec, ...]
    expiry: int
    warmup: float
    duration: float
    batch_size: int = BATCH_SIZE
    cycle: bool = False  # reuse the signed payloads (only for the bare server)
    spread: bool = False  # round_robin over the endpoints (HA: every call to the next replica)


def _payloads(spec: WorkerSpec, c: ClientSpec) -> list[bytes]:
    """Pre-serialized request bytes: the client's per-call cost is then gRPC alone."""
    txs = signed_transfers(c.account, c.nonce_base, c.count, spec.expiry)
    if spec.mode == "tx":
        return [spb.SubmitTransactionRequest(tx=tx).SerializeToString() for tx in txs]
    b = spec.batch_size
    return [
        spb.SubmitBatchRequest(txs=txs[i : i + b]).SerializeToString()
        for i in range(0, len(txs) - b + 1, b)
    ]


def worker_main(spec: WorkerSpec, conn: mpc.Connection) -> None:
    """A load process: sign, connect, say ready, wait for the start time, run."""
    try:
        payloads = [_payloads(spec, c) for c in spec.clients]
        result = asyncio.run(_worker(spec, payloads, conn))
        conn.send(result)
    except BaseException as e:
        with contextlib.suppress(Exception):
            conn.send({"error": f"{type(e).__name__}: {e}"})
        raise
    finally:
        conn.close()


async def _worker(
    spec: WorkerSpec, payloads: list[list[bytes]], conn: mpc.Connection
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    # One endpoint without spread: open_channel gives the very channel it always was
    # (the target as given, CHANNEL_OPTIONS alone); a list adds ipv4:A,B,C and the policy.
    channels = [open_channel(spec.endpoint, spec.spread, CHANNEL_OPTIONS) for _ in spec.clients]
    try:
        await asyncio.gather(*(asyncio.wait_for(ch.channel_ready(), 15) for ch in channels))
        conn.send({"ready": True})
        t0: float = await loop.run_in_executor(None, conn.recv)
        start = t0 + spec.warmup
        end = start + spec.duration
        acked = 0
        duplicates = 0
        calls = 0
        exhausted = False
        latencies: list[float] = []
        errors: Counter[str] = Counter()

        async def slot(call: Any, it: Iterator[bytes]) -> None:
            nonlocal acked, duplicates, calls, exhausted
            while time.monotonic() < end:
                req = next(it, None)
                if req is None:
                    exhausted = True
                    return
                sent = time.monotonic()
                try:
                    resp = await call(req, timeout=30)
                except aio.AioRpcError as e:
                    errors[e.code().name] += 1
                    continue
                done = time.monotonic()
                if not start <= done <= end:
                    continue
                calls += 1
                latencies.append((done - sent) * 1000)
                if spec.mode == "tx":
                    if resp.height > 0:
                        acked += 1
                        duplicates += resp.duplicate
                    else:
                        errors["NO_HEIGHT"] += 1
                else:
                    for r in resp.results:
                        if r.code == 0 and r.height > 0:
                            acked += 1
                            duplicates += r.duplicate
                        else:
                            errors[_CODE_NAMES.get(r.code, str(r.code))] += 1

        tasks = []
        for ch, c, p in zip(channels, spec.clients, payloads, strict=True):
            if spec.mode == "tx":
                call = ch.unary_unary(SUBMIT_TX, None, spb.SubmitResponse.FromString)
            else:
                call = ch.unary_unary(SUBMIT_BATCH, None, spb.SubmitBatchResponse.FromString)
            it = _cycle(p) if spec.cycle else iter(p)
            tasks += [slot(call, it) for _ in range(c.window)]
        await asyncio.sleep(max(0.0, t0 - time.monotonic()))
        await asyncio.wait_for(asyncio.gather(*tasks), spec.warmup + spec.duration + 40)
        return {
            "acked": acked,
            "calls": calls,
            "duplicates": duplicates,
            "exhausted": exhausted,
            "errors": dict(errors),
            "latencies": latencies,
        }
    finally:
        for ch in channels:
            await ch.close(None)


def _cycle(items: Sequence[bytes]) -> Iterator[bytes]:
    while True:
        yield from items


def _proc_jiffies(pid: int) -> float:
    return _proc_jiffies_path(Path(f"/proc/{pid}/stat"))


def _proc_jiffies_path(path: Path) -> float:
    with contextlib.suppress(OSError, IndexError, ValueError):
        stat = path.read_text().rsplit(")", 1)[1].split()
        return float(int(stat[11]) + int(stat[12]))
    return 0.0


def _children() -> dict[int, list[int]]:
    """Every process's children, from one pass over /proc."""
    out: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            out.setdefault(ppid, []).append(int(stat.parent.name))
    return out


def _tree(pid: int, children: Mapping[int, list[int]]) -> list[int]:
    """`pid` and its children (the sequencer's admission workers count as server)."""
    return [pid, *children.get(pid, ())]


def _cpu_sample(
    servers: Mapping[str, int], clients: Sequence[int]
) -> tuple[float, float, dict[str, float], float]:
    """(machine busy, machine total, each server's process tree, client processes)
    in jiffies."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    total = float(sum(fields[:8]))
    children = _children() if servers else {}
    per = {
        name: sum(_proc_jiffies(p) for p in _tree(pid, children)) for name, pid in servers.items()
    }
    return total - idle, total, per, sum(_proc_jiffies(p) for p in clients)


class CpuMeter:
    """CPU use over the measured part of a phase, in cores: the server's (every
    process of `servers`, each with its children), the load processes', and the rest
    of the machine's (anything else running distorts the figures; `other_cores_used`
    shows how much)."""

    def __init__(self, servers: Mapping[str, int], client_pids: Sequence[int]) -> None:
        self.servers = dict(servers)
        self.clients = list(client_pids)
        self.result: dict[str, Any] = {}
        self._thread: threading.Thread | None = None

    def start(self, begin: float, end: float) -> None:
        def run() -> None:
            time.sleep(max(0.0, begin - time.monotonic()))
            b0, t0, p0, c0 = _cpu_sample(self.servers, self.clients)
            time.sleep(max(0.0, end - time.monotonic()))
            b1, t1, p1, c1 = _cpu_sample(self.servers, self.clients)
            hz = os.sysconf("SC_CLK_TCK")
            cores = os.cpu_count() or 1
            wall = (t1 - t0) / cores / hz
            if wall <= 0:
                return
            busy = (b1 - b0) / hz / wall
            each = {name: (p1[name] - p0[name]) / hz / wall for name in p0}
            server, clients = sum(each.values()), (c1 - c0) / hz / wall
            self.result = {
                "machine_cpu_busy_pct": round(100 * busy / cores, 1),
                "server_cores_used": round(server, 2),
                "client_cores_used": round(clients, 2),
                "other_cores_used": round(max(0.0, busy - server - clients), 2),
            }
            if len(each) > 1:
                self.result["server_cores_by_process"] = {k: round(v, 2) for k, v in each.items()}

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def join(self) -> dict[str, Any]:
        if self._thread is not None:
            self._thread.join(5)
        return self.result


def run_phase(
    name: str,
    specs: Sequence[WorkerSpec],
    servers: int | Mapping[str, int] | None = None,
    during: Callable[[float, float], Any] | None = None,
) -> dict[str, Any]:
    """Run one load phase over worker processes and aggregate what they saw.
    `servers`: name -> pid of the server processes whose CPU counts as server (or
    one pid, as bench/node.py and bench/metrics.py pass it);
    `during(begin, end)`, if given, is called with the measured window (monotonic)
    once the load starts, and what it returns is joined (`.join()`) at the end."""
    ctx = mp.get_context("spawn")
    procs: list[tuple[Any, mpc.Connection]] = []
    meter = CpuMeter({}, [])
    watcher: Any = None
    spec0 = specs[0]
    try:
        for i, spec in enumerate(specs):
            parent, child = ctx.Pipe()
            p = ctx.Process(target=worker_main, args=(spec, child), name=f"{name}-{i}", daemon=True)
            p.start()
            child.close()
            procs.append((p, parent))
        for p, conn in procs:
            msg = _recv(conn, 120, f"{name}: worker {p.pid} did not get ready")
            if "error" in msg:
                raise RuntimeError(f"{name}: worker {p.pid}: {msg['error']}")
        t0 = time.monotonic() + 0.1
        for _p, conn in procs:
            conn.send(t0)
        if isinstance(servers, int):
            servers = {"server": servers}
        meter = CpuMeter(servers or {}, [p.pid for p, _conn in procs])
        begin, end = t0 + spec0.warmup, t0 + spec0.warmup + spec0.duration
        meter.start(begin, end)
        if during is not None:
            watcher = during(begin, end)
        results = []
        for p, conn in procs:
            msg = _recv(
                conn, spec0.warmup + spec0.duration + 60, f"{name}: worker {p.pid} gave no result"
            )
            if "error" in msg:
                raise RuntimeError(f"{name}: worker {p.pid}: {msg['error']}")
            results.append(msg)
        for p, _conn in procs:
            p.join(10)
        profile = watcher.join() if watcher is not None else None
    finally:
        if watcher is not None:
            watcher.stop()
        for p, conn in procs:
            conn.close()
            if p.is_alive():
                stop_pid(p.pid, grace=3)
                p.join(5)
    lat = sorted(x for r in results for x in r["latencies"])
    acked = sum(r["acked"] for r in results)
    errors: Counter[str] = Counter()
    for r in results:
        errors.update(r["errors"])
    out: dict[str, Any] = {
        "acked_per_s": round(acked / spec0.duration, 1),
        "p50_ms": round(_percentile(lat, 0.50), 2),
        "p99_ms": round(_percentile(lat, 0.99), 2),
        "acked": acked,
        "calls": sum(r["calls"] for r in results),
        "mean_ms": round(statistics.fmean(lat), 2) if lat else math.nan,
        "max_ms": round(lat[-1], 2) if lat else math.nan,
        "duplicates": sum(r["duplicates"] for r in results),
        "errors": dict(errors),
        "exhausted": any(r["exhausted"] for r in results),
        **meter.join(),
    }
    if profile is not None:
        out["profile"] = profile
    return out


def _recv(conn: mpc.Connection, timeout: float, what: str) -> dict[str, Any]:
    if not conn.poll(timeout):
        raise TimeoutError(what)
    msg: dict[str, Any] = conn.recv()
    return msg


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[rank - 1]


# ---------------------------------------------------------------- the bare server


class BareService(spb_grpc.SequencerServiceServicer):
    """The floor: the generated servicer, answering SubmitTransaction at once."""

    _RESPONSE = spb.SubmitResponse(id=bytes(32), height=1, index=0)

    async def SubmitTransaction(self, request: Any, context: Any) -> spb.SubmitResponse:
        return self._RESPONSE


async def serve_bare(listen: str, ready_file: Path) -> None:
    server = serving.build_server(dev_genesis().limits.max_message_bytes)
    servicer = BareService()  # type: ignore[abstract]  # only SubmitTransaction is served
    spb_grpc.add_SequencerServiceServicer_to_server(servicer, server)
    health = serving.add_health_and_reflection(server, [SERVICE])
    endpoint = serving.bind(server, listen)
    await server.start()
    await serving.set_serving(health, [SERVICE], True)
    serving.write_ready_file(ready_file, endpoint)
    await serving.wait_for_termination()
    await server.stop(0.5)


# ---------------------------------------------------------------- floors


def floor_verify(seconds: float) -> dict[str, Any]:
    """Ed25519 verifies/s: PyNaCl on one thread per core, PyNaCl and `cryptography`
    on one core, over signed transfer bodies like the ones the phases send."""
    txs = signed_transfers(9, 1 << 61, 512, 10_000)
    items = [
        (bytes(t.signatures[0].signature) + t.body, bytes(t.signatures[0].public_key)) for t in txs
    ]

    def pynacl_loop(deadline: float, counts: list[int], slot: int) -> None:
        n = 0
        open_ = nacl.bindings.crypto_sign_open
        while time.monotonic() < deadline:
            for sm, pk in items:
                open_(sm, pk)
            n += len(items)
        counts[slot] = n

    def run_threads(threads: int, dur: float) -> float:
        counts = [0] * threads
        start = time.monotonic()
        ts = [
            threading.Thread(target=pynacl_loop, args=(start + dur, counts, i))
            for i in range(threads)
        ]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        return sum(counts) / (time.monotonic() - start)

    cores = os.cpu_count() or 1
    all_cores = run_threads(cores, seconds)
    one_core = run_threads(1, seconds / 2)

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    keys = {pk: Ed25519PublicKey.from_public_bytes(pk) for _sm, pk in items}
    crypto_items = [(keys[pk], sm[:64], sm[64:]) for sm, pk in items]
    n = 0
    start = time.monotonic()
    while time.monotonic() < start + seconds / 2:
        for k, sig, body in crypto_items:
            k.verify(sig, body)
        n += len(crypto_items)
    crypto_one = n / (time.monotonic() - start)
    return {
        "verify_per_s": round(all_cores),
        "verify_threads": cores,
        "verify_per_s_1core_pynacl": round(one_core),
        "verify_per_s_1core_cryptography": round(crypto_one),
        "verify_body_bytes": len(txs[0].body),
    }


def floor_block_write(directory: Path, blocks: int = 40, entries: int = 1000) -> dict[str, Any]:
    """Median time of one LevelDBBlockStore.append (block serialization, one synced
    transactional write batch with the id index keys) of a 1,000-entry block."""
    txs = signed_transfers(8, 1 << 61, entries, 10_000)
    payload = [pb.Entry(tx=t) for t in txs]
    genesis = dev_genesis()
    genesis_hash, seq_key = compute_genesis_hash(genesis), derive_sequencer_key()
    out: dict[str, Any] = {"block_entries": entries}
    for sync in (True, False):
        store = LevelDBBlockStore(directory / f"store-sync-{int(sync)}", sync=sync)
        try:
            height, parent = store.head()
            times = []
            for _ in range(blocks):
                height += 1
                ids = [compute_id(b"%d/%d" % (height, i)) for i in range(entries)]
                block = seal_block(payload, height, parent, 0, genesis, genesis_hash, seq_key)
                t = time.perf_counter()
                store.append(block, ids)
                times.append((time.perf_counter() - t) * 1000)
                parent = bytes(block.hash)
            key = "synced_block_write_ms" if sync else "unsynced_block_write_ms"
            out[key] = round(statistics.median(times), 3)
            if sync:
                out["synced_block_write_p90_ms"] = round(sorted(times)[int(0.9 * len(times))], 3)
                out["block_bytes"] = len(block.SerializeToString())
        finally:
            store.close()
    return out


# ---------------------------------------------------------------- orchestration


def head_height(endpoint: str) -> int:
    with grpc.insecure_channel(endpoint) as ch:
        status = spb_grpc.SequencerServiceStub(ch).GetStatus(spb.GetStatusRequest(), timeout=5)
        return int(status.height)


def measure_idle(servers: Mapping[str, int], seconds: float) -> dict[str, Any]:
    """The servers' CPU with no load for `seconds` (blocks are sealed or followed
    all the same; under HA the replicas also poll etcd and renew their leases)."""
    if seconds <= 0:
        return {}
    meter = CpuMeter(servers, [])
    now = time.monotonic()
    meter.start(now, now + seconds)
    time.sleep(seconds)
    out = meter.join()
    out.pop("client_cores_used", None)
    return out


def prime_batch_admission(endpoints: Sequence[str], nonce_base: int) -> None:
    """One small SubmitBatch to each server: a sequencer starts its admission worker
    processes at its first batch (sequencer/admitter.py), so that a batched phase
    measures them running, not starting (three replicas start six of them)."""
    for i, ep in enumerate(endpoints):
        txs = signed_transfers(9, nonce_base + 4 * i, 4, head_height(ep) + EXPIRY_BLOCKS)
        with grpc.insecure_channel(ep) as ch:
            stub = spb_grpc.SequencerServiceStub(ch)
            stub.SubmitBatch(spb.SubmitBatchRequest(txs=txs), timeout=60)


def start_sequencer(tmp: Path, interval_ms: int, extra: Sequence[str] = ()) -> Launched:
    data, ready, log_file = tmp / "sequencer", tmp / "sequencer.ready", tmp / "sequencer.log"
    argv = sequencer_argv("127.0.0.1:0", data, ready, None, interval_ms) + list(extra)
    return start_process("sequencer", "sequencer", None, argv, data, log_file, ready, detach=False)


def start_bare(tmp: Path) -> Launched:
    ready, log_file = tmp / "bare.ready", tmp / "bare.log"
    argv = [sys.executable, str(Path(__file__).resolve()), "--serve-bare", "127.0.0.1:0"]
    argv += ["--ready-file", str(ready)]
    return start_process("bare-grpc", "bench", None, argv, tmp, log_file, ready, detach=False)


# ---------------------------------------------------------------- the HA sequencer

REPLICAS = ("sequencer-1", "sequencer-2", "sequencer-3")
HA_START_TIMEOUT_S = 60.0
LEADER_TIMEOUT_S = 30.0
ACCEPTED_TX_PREFIX = "xrollup_sequencer_admissions_total{"


def start_ha(tmp: Path, interval_ms: int, extra: Sequence[str] = ()) -> list[Launched]:
    """Three etcd members (devnet/etcd.py's command line, data dirs under tmp/ha)
    and three sequencer replicas on them, started side by side and all up: etcd
    first in the list, so that stopping in reverse order stops it last. On a
    failure start_all stops whatever it started."""
    d = tmp / "ha"
    d.mkdir()
    starts = etcd.etcd_starts(d, DEV_CHAIN_ID, None)
    starts += [_replica_start(d, name, interval_ms, extra) for name in REPLICAS]
    return starter.start_all(starts, timeout=HA_START_TIMEOUT_S)


def _replica_start(d: Path, name: str, interval_ms: int, extra: Sequence[str]) -> starter.Start:
    data, ready = d / name, d / f"{name}.ready"

    def argv_for(known: Mapping[str, str], any_port: bool) -> list[str]:
        argv = sequencer_argv("127.0.0.1:0", data, ready, None, interval_ms)
        argv += ["--etcd", ",".join(known[m] for m in etcd.MEMBERS), "--replica-name", name]
        return argv + list(extra)

    return starter.Start(
        name,
        "sequencer",
        None,
        data,
        d / "logs" / f"{name}.log",
        ready,
        argv_for=argv_for,
        needs=etcd.MEMBERS,
    )


def get_replica_status(endpoint: str) -> spb.GetStatusResponse | None:
    try:
        with grpc.insecure_channel(endpoint) as ch:
            stub = spb_grpc.SequencerServiceStub(ch)
            status: spb.GetStatusResponse = stub.GetStatus(spb.GetStatusRequest(), timeout=2)
            return status
    except grpc.RpcError:
        return None


def get_leader(replicas: Sequence[Launched]) -> tuple[Launched, int] | None:
    """The replica that says it leads with the highest term, and that term."""
    found: tuple[Launched, int] | None = None
    for p in replicas:
        s = get_replica_status(p.endpoint)
        if s is not None and s.role == "leader" and (found is None or s.term > found[1]):
            found = (p, int(s.term))
    return found


def wait_for_leader(replicas: Sequence[Launched], timeout: float) -> tuple[Launched, int]:
    deadline = time.monotonic() + timeout
    while (found := get_leader(replicas)) is None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"no sequencer replica leads after {timeout}s")
        time.sleep(0.1)
    return found


def get_accepted_txs(metrics_url: str) -> float | None:
    """Transactions a replica answered as ordered (its admissions counter; a
    standby counts those it admitted and forwarded, the leader those submitted to
    it: what it orders for standbys is not counted). None when unreadable."""
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(metrics_url, timeout=2) as r:
            text = r.read().decode()
    except OSError:
        return None
    total = 0.0
    for line in text.splitlines():
        if line.startswith(ACCEPTED_TX_PREFIX) and 'kind="tx"' in line and "accepted" in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def describe_roles(replicas: Sequence[Launched]) -> dict[str, str]:
    """name -> "leader term T" / "standby of L" / "down" as each replica says now."""
    out = {}
    for p in replicas:
        s = get_replica_status(p.endpoint)
        if s is None:
            out[p.name] = "down"
        elif s.role == "leader":
            out[p.name] = f"leader term {s.term}"
        else:
            out[p.name] = f"{s.role} of {s.leader or '?'}"
    return out


class Profiler:
    """During a phase's measured window: py-spy record (raw collapsed stacks, 100 Hz,
    --nonblocking so the target is not paused, --threads) of each process of
    `targets`, twice: LABEL.txt samples every thread py-spy takes for active (on a
    loaded machine that includes threads waiting for a core, and blocking calls it
    does not recognise as idle), LABEL.gil.txt only the thread holding the GIL (the
    Python CPU the GIL serialises); and each one's CPU per thread from /proc
    (gRPC's C-core threads have names; Python's own threads are all "python"; the
    main thread is "main")."""

    def __init__(self, out_dir: Path, targets: Mapping[str, int]) -> None:
        self.out_dir = out_dir
        self.targets = dict(targets)
        self.spies: dict[str, subprocess.Popen[bytes]] = {}
        self.threads: dict[str, dict[str, float]] = {}
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()

    def start(self, begin: float, end: float) -> Profiler:
        spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        self.out_dir.mkdir(parents=True, exist_ok=True)

        def run() -> None:
            time.sleep(max(0.0, begin - time.monotonic()))
            if self._stopped.is_set():
                return
            seconds = max(1, int(end - time.monotonic()))
            for label, pid in self.targets.items():
                for kind, extra in (("", []), (".gil", ["--gil"])):
                    name = f"{label}{kind}"
                    argv = [spy, "record", "--pid", str(pid), "--duration", str(seconds)]
                    argv += ["--rate", "100", "--nonblocking", "--threads", "--format", "raw"]
                    argv += [*extra, "--output", str(self.out_dir / f"{name}.txt")]
                    log_file = open(self.out_dir / f"{name}.py-spy.log", "wb")  # noqa: SIM115
                    with log_file:
                        self.spies[name] = subprocess.Popen(
                            argv,
                            stdout=log_file,
                            stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL,
                        )
            t0 = {label: _thread_jiffies(pid) for label, pid in self.targets.items()}
            w0 = time.monotonic()
            self._stopped.wait(max(0.0, end - time.monotonic()))
            t1 = {label: _thread_jiffies(pid) for label, pid in self.targets.items()}
            wall = time.monotonic() - w0
            hz = os.sysconf("SC_CLK_TCK")
            for label in self.targets:
                per: dict[str, float] = {}
                for tid, (name, j) in t1[label].items():
                    per[name] = per.get(name, 0.0) + j - t0[label].get(tid, (name, 0.0))[1]
                ranked = sorted(per.items(), key=lambda kv: -kv[1])
                self.threads[label] = {k: round(v / hz / wall, 3) for k, v in ranked if v > 0}

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        return self

    def join(self) -> dict[str, Any]:
        if self._thread is not None:
            self._thread.join(30)
        for spy in self.spies.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                spy.wait(30)
        out: dict[str, Any] = {}
        for label, pid in self.targets.items():
            names = (label, f"{label}.gil")
            out[label] = {
                "pid": pid,
                "py_spy_raw": [str(self.out_dir / f"{n}.txt") for n in names],
                "py_spy_exit": [s.returncode if (s := self.spies.get(n)) else None for n in names],
                "thread_cores": self.threads.get(label, {}),
            }
        return out

    def stop(self) -> None:
        self._stopped.set()
        for spy in self.spies.values():
            if spy.poll() is None:
                stop_pid(spy.pid, grace=5, popen=spy, sig=signal.SIGINT)


def _thread_jiffies(pid: int) -> dict[int, tuple[str, float]]:
    """tid -> (thread name, utime + stime) of every thread of `pid`."""
    out: dict[int, tuple[str, float]] = {}
    for task in Path(f"/proc/{pid}/task").glob("[0-9]*"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            tid = int(task.name)
            name = "main" if tid == pid else (task / "comm").read_text().strip()
            out[tid] = (name, _proc_jiffies_path(task / "stat"))
    return out


def split(clients: Sequence[ClientSpec], procs: int) -> list[tuple[ClientSpec, ...]]:
    return [tuple(clients[i::procs]) for i in range(procs) if clients[i::procs]]


PHASES = ("floor", "clients_1", "clients_8", "batched", "bare")
HA_PHASES = (f"clients_{CLIENTS}_ha", "batched_ha")  # --ha: clients_8 and batched again


def run(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    warmup = args.warmup
    dur = args.duration
    span = warmup + dur
    interval = args.block_interval_ms
    cores = os.cpu_count() or 1
    phases = set(args.phases.split(","))
    unknown = phases - set(PHASES)
    if unknown:
        raise SystemExit(f"--phases: unknown {sorted(unknown)}; choose from {', '.join(PHASES)}")
    if args.ha and not etcd.is_installed():
        raise SystemExit(f"--ha needs etcd ({etcd.ETCD}): `make system-deps` installs it")
    results: dict[str, Any] = {}
    floor: dict[str, Any] = {}
    final_head = None
    ha_final_head = None
    c8_name = f"clients_{CLIENTS}"

    def nonce() -> int:
        return rng.getrandbits(40) << 22

    def c8_specs(ep: str, status_ep: str, spread: bool = False) -> list[WorkerSpec]:
        log(f"{c8_name}: {args.client_procs} processes, window {args.window}")
        expiry = head_height(status_ep) + EXPIRY_BLOCKS
        per_client = int(span * PER_CLIENT_CAP_PER_S)
        clients = [ClientSpec(c, nonce(), per_client, args.window) for c in range(CLIENTS)]
        return [
            WorkerSpec("tx", ep, cs, expiry, warmup, dur, spread=spread)
            for cs in split(clients, args.client_procs)
        ]

    def batched_specs(ep: str, status_ep: str, spread: bool = False) -> list[WorkerSpec]:
        log(f"batched: {BATCH_CALLERS} callers, batches of {args.batch_size}")
        prime_batch_admission(ep.split(","), nonce())
        expiry = head_height(status_ep) + EXPIRY_BLOCKS
        per_caller = int(span * BATCH_CAP_PER_S / BATCH_CALLERS)
        per_caller = per_caller // args.batch_size * args.batch_size
        callers = [ClientSpec(c % 10, nonce(), per_caller, 1) for c in range(BATCH_CALLERS)]
        return [
            WorkerSpec("batch", ep, cs, expiry, warmup, dur, args.batch_size, spread=spread)
            for cs in split(callers, BATCH_PROCS)
        ]

    with tempfile.TemporaryDirectory(prefix="xrollup-bench-") as tmp_name:
        tmp = Path(tmp_name)
        if "floor" in phases:
            log("floor: Ed25519 verify")
            floor.update(floor_verify(args.floor_seconds))
            log("floor: synced block write")
            floor.update(floor_block_write(tmp))

        if phases & {"clients_1", "clients_8", "batched"}:
            log(f"starting the sequencer (block interval {interval} ms)")
            seq = start_sequencer(tmp, interval, args.sequencer_args.split())
            try:
                ep = seq.endpoint
                servers = {"sequencer": seq.pid}
                log(f"sequencer pid {seq.pid} on {ep}")
                if args.idle_seconds > 0:
                    log(f"idle: {args.idle_seconds}s with no load")
                    results["idle"] = measure_idle(servers, args.idle_seconds)
                if "clients_1" in phases:
                    log("clients_1")
                    expiry = head_height(ep) + EXPIRY_BLOCKS
                    n1 = int(span * 1000 / interval * 2) + 200
                    one = WorkerSpec(
                        "tx", ep, (ClientSpec(0, nonce(), n1, 1),), expiry, warmup, dur
                    )
                    results["clients_1"] = run_phase("clients_1", [one], servers)
                if "clients_8" in phases:
                    results[c8_name] = run_phase(c8_name, c8_specs(ep, ep), servers)
                if "batched" in phases:
                    results["batched"] = run_phase("batched", batched_specs(ep, ep), servers)
                final_head = head_height(ep)
            finally:
                stop_pid(seq.pid, grace=10, popen=seq.popen)

        if args.ha and phases & {"clients_8", "batched"}:
            log(f"starting an HA sequencer: {len(etcd.MEMBERS)} etcd members, 3 replicas")
            launched: list[Launched] = []
            try:
                launched = start_ha(tmp, interval, args.sequencer_args.split())
                replicas = [p for p in launched if p.name in REPLICAS]
                members = [p for p in launched if p.role == etcd.ROLE]
                for p in launched:
                    log(f"{p.name} pid {p.pid} on {p.endpoint}")
                ha_ep = ",".join(p.endpoint for p in replicas)
                if args.idle_seconds > 0:
                    leader, term = wait_for_leader(replicas, LEADER_TIMEOUT_S)
                    log(f"idle_ha: {args.idle_seconds}s with no load ({leader.name} leads)")
                    idle_servers = {
                        f"{p.name} ({'leader' if p is leader else 'standby'})": p.pid
                        for p in replicas
                    }
                    idle_servers.update({p.name: p.pid for p in members})
                    results["idle_ha"] = measure_idle(idle_servers, args.idle_seconds)
                runs = [(c8_name, c8_specs), ("batched", batched_specs)]
                for base, make_specs in runs:
                    if base not in phases:
                        continue
                    leader, term = wait_for_leader(replicas, LEADER_TIMEOUT_S)
                    log(f"{base}_ha: {leader.name} leads (term {term}); load spread over {ha_ep}")
                    servers = {
                        f"{p.name} ({'leader' if p is leader else 'standby'})": p.pid
                        for p in replicas
                    }
                    servers.update({p.name: p.pid for p in members})
                    specs = make_specs(ha_ep, leader.endpoint, True)
                    during: Callable[[float, float], Any] | None = None
                    if args.profile is not None and base == c8_name:
                        standby = next(p for p in replicas if p is not leader)
                        profiled = {"leader": leader.pid, "standby": standby.pid}
                        during = Profiler(args.profile, profiled).start
                    before = {p.name: get_accepted_txs(p.info.get("metrics", "")) for p in replicas}
                    r = run_phase(f"{base}_ha", specs, servers, during)
                    after = {p.name: get_accepted_txs(p.info.get("metrics", "")) for p in replicas}
                    now = get_leader(replicas)
                    r["ha"] = {
                        "leader_before": f"{leader.name} term {term}",
                        "leader_after": f"{now[0].name} term {now[1]}" if now else "none",
                        "lead_changed": now is None or (now[0].name, now[1]) != (leader.name, term),
                        "accepted_share": compute_shares(before, after),
                        "roles_after": describe_roles(replicas),
                    }
                    results[f"{base}_ha"] = r
                found = get_leader(replicas)
                ha_final_head = head_height(found[0].endpoint) if found else None
            finally:
                for p in reversed(launched):  # the replicas, then etcd
                    stop_pid(p.pid, grace=10, popen=p.popen)

        if "bare" in phases:
            log(f"floor: bare grpc.aio server, same client model as {c8_name}")
            bare = start_bare(tmp)
            log(f"bare server pid {bare.pid} on {bare.endpoint}")
            try:
                clients = [ClientSpec(c, nonce(), BARE_CYCLE, args.window) for c in range(CLIENTS)]
                specs = [
                    WorkerSpec("tx", bare.endpoint, cs, 10**6, warmup, dur, cycle=True)
                    for cs in split(clients, args.client_procs)
                ]
                bare_result = run_phase("bare", specs, {"bare": bare.pid})
            finally:
                stop_pid(bare.pid, grace=5, popen=bare.popen)
            floor["bare_grpc_calls_per_s"] = bare_result["acked_per_s"]
            floor["bare_grpc_p50_ms"] = bare_result["p50_ms"]
            floor["bare_grpc_p99_ms"] = bare_result["p99_ms"]
            for k in ("server_cores_used", "client_cores_used", "other_cores_used"):
                floor[f"bare_grpc_{k}"] = bare_result.get(k)

    targets = evaluate_targets(results, floor, interval)
    config = {
        "block_interval_ms": interval,
        "duration_s": dur,
        "warmup_s": warmup,
        "window": args.window,
        "clients": CLIENTS,
        "client_processes": args.client_procs,
        "batch_size": args.batch_size,
        "batch_callers": BATCH_CALLERS,
        "batch_processes": BATCH_PROCS,
        "cpu_count": cores,
        "cpu": _cpu_model(),
        "python": platform.python_version(),
        "grpcio": grpc.__version__,
        "seed": args.seed,
        "sequencer_args": args.sequencer_args,
        "ha": args.ha,
        "max_other_cores_used": max(
            [r.get("other_cores_used", 0.0) for r in results.values()]
            + [floor.get("bare_grpc_other_cores_used") or 0.0]
        ),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "final_head_height": final_head,
        "commit": _git_head(),
    }
    report = {**results, "floor": floor, "targets": targets, "config": config}
    if args.ha:
        config["etcd"] = _etcd_version()
        config["ha_final_head_height"] = ha_final_head
        report["ha"] = compute_ha_summary(results, floor)
    return report


def compute_shares(
    before: Mapping[str, float | None], after: Mapping[str, float | None]
) -> dict[str, float]:
    """Each replica's share of the transactions answered as ordered between two
    readings of their counters ({} when one could not be read)."""
    counts = {}
    for name, b in before.items():
        a = after.get(name)
        if a is None or b is None:
            return {}
        counts[name] = a - b
    total = sum(counts.values())
    return {k: round(v / total, 3) for k, v in counts.items()} if total else {}


def compute_ha_summary(results: Mapping[str, Any], floor: Mapping[str, Any]) -> dict[str, Any]:
    """The single sequencer against the HA one, phase by phase, and clients_8 of
    each against the bare gRPC floor."""
    out: dict[str, Any] = {}
    for base in (f"clients_{CLIENTS}", "batched"):
        single, ha = results.get(base), results.get(f"{base}_ha")
        if not single or not ha:
            continue
        for metric in ("acked_per_s", "p50_ms", "p99_ms"):
            out[f"{base}_{metric}"] = {
                "single": single[metric],
                "ha": ha[metric],
                "ha_over_single": _ratio(ha[metric], single[metric]),
            }
        out[f"{base}_server_cores_used"] = {
            "single": single.get("server_cores_used"),
            "ha": ha.get("server_cores_used"),
        }
    bare = floor.get("bare_grpc_calls_per_s")
    c8 = f"clients_{CLIENTS}"
    if bare and (c8 in results or f"{c8}_ha" in results):
        out[f"{c8}_over_bare_grpc"] = {
            "single": _ratio(results.get(c8, {}).get("acked_per_s"), bare),
            "ha": _ratio(results.get(f"{c8}_ha", {}).get("acked_per_s"), bare),
        }
    return out


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else round(a / b, 3)


def _etcd_version() -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run([etcd.ETCD, "--version"], capture_output=True, text=True, timeout=10)
        return out.stdout.split("\n", 1)[0].removeprefix("etcd Version: ")
    return "?"


def evaluate_targets(
    results: dict[str, Any], floor: dict[str, Any], interval: int
) -> dict[str, dict[str, Any]]:
    """Each target with its value, threshold and pass; targets whose inputs were
    not measured (see --phases) are left out."""
    c8 = results.get(f"clients_{CLIENTS}", {})
    c8_ha = results.get(f"clients_{CLIENTS}_ha", {})
    batched = results.get("batched", {})
    rows = [
        (
            "clients_8_vs_bare_grpc",
            "clients_8.acked_per_s >= 0.8 * floor.bare_grpc_calls_per_s",
            c8.get("acked_per_s"),
            _scaled(0.8, floor.get("bare_grpc_calls_per_s")),
            True,
        ),
        (
            # Issue 12: admission spread over the replicas should lift what one
            # sequencer's loop thread cannot (--ha only).
            "clients_8_ha_vs_bare_grpc",
            "clients_8_ha.acked_per_s >= 0.8 * floor.bare_grpc_calls_per_s",
            c8_ha.get("acked_per_s"),
            _scaled(0.8, floor.get("bare_grpc_calls_per_s")),
            True,
        ),
        ("batched_absolute", "batched.acked_per_s >= 8000", batched.get("acked_per_s"), 8000, True),
        (
            "batched_vs_verify",
            "batched.acked_per_s >= 0.5 * floor.verify_per_s",
            batched.get("acked_per_s"),
            _scaled(0.5, floor.get("verify_per_s")),
            True,
        ),
        (
            "clients_8_p99",
            "clients_8.p99_ms <= 2 * block_interval_ms + floor.synced_block_write_ms",
            c8.get("p99_ms"),
            None
            if floor.get("synced_block_write_ms") is None
            else 2 * interval + floor["synced_block_write_ms"],
            False,
        ),
    ]
    out = {}
    for key, rule, value, threshold, at_least in rows:
        if value is None or threshold is None:
            continue
        ok = value >= threshold if at_least else value <= threshold
        out[key] = {
            "rule": rule,
            "value": value,
            "threshold": round(threshold, 2),
            "pass": bool(ok),
        }
    return out


def _scaled(factor: float, value: float | None) -> float | None:
    return None if value is None else factor * value


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def _git_head() -> str | None:
    with contextlib.suppress(OSError):
        head = (ROOT / ".git" / "HEAD").read_text().strip()
        if head.startswith("ref: "):
            ref = ROOT / ".git" / head[5:]
            return ref.read_text().strip()[:12] if ref.exists() else None
        return head[:12]
    return None


def print_table(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    t = Table(title="sequencer load (real process, 127.0.0.1)")
    for col in ("phase", "acked/s", "p50 ms", "p99 ms", "max ms", "acked", "errors", "dups"):
        t.add_column(col, justify="right" if col != "phase" else "left")
    for name in ("clients_1", f"clients_{CLIENTS}", "batched", *HA_PHASES):
        if name not in report:
            continue
        r = report[name]
        if r.get("ha", {}).get("lead_changed"):
            name += " (lead changed)"
        t.add_row(
            name + (" (exhausted)" if r["exhausted"] else ""),
            f"{r['acked_per_s']:,.0f}",
            f"{r['p50_ms']:.1f}",
            f"{r['p99_ms']:.1f}",
            f"{r['max_ms']:.1f}",
            f"{r['acked']:,}",
            ", ".join(f"{k}:{v}" for k, v in r["errors"].items()) or "-",
            str(r["duplicates"]),
        )
    console.print(t)
    if "ha" in report:
        h = Table(title="single sequencer against HA (3 replicas on 3 etcd members)")
        for col in ("metric", "single", "HA", "HA / single"):
            h.add_column(col, justify="right" if col != "metric" else "left")
        for key, v in report["ha"].items():
            cells = (v["single"], v["ha"], v.get("ha_over_single"))
            h.add_row(key, *("" if x is None else f"{x:,}" for x in cells))
        console.print(h)
        c = Table(title="server CPU by process (cores)")
        c.add_column("phase")
        c.add_column("process")
        c.add_column("cores", justify="right")
        for name in ("idle", "idle_ha", *HA_PHASES):
            r = report.get(name, {})
            by = r.get("server_cores_by_process") or (
                {"sequencer": r["server_cores_used"]} if "server_cores_used" in r else {}
            )
            for proc, cores_used in by.items():
                c.add_row(name, proc, f"{cores_used:.2f}")
            share = report.get(name, {}).get("ha", {}).get("accepted_share")
            if share:
                c.add_row(
                    name, "accepted share", ", ".join(f"{k} {v:.0%}" for k, v in share.items())
                )
            for label, prof in report.get(name, {}).get("profile", {}).items():
                top = list(prof["thread_cores"].items())[:6]
                c.add_row(name, f"{label} by thread", ", ".join(f"{k} {v:.2f}" for k, v in top))
        console.print(c)
    f = Table(title="floors on this machine")
    f.add_column("what")
    f.add_column("value", justify="right")
    for k, v in report["floor"].items():
        f.add_row(k, f"{v:,}" if isinstance(v, int | float) else str(v))
    console.print(f)
    g = Table(title="targets")
    for col in ("target", "value", "threshold", "pass"):
        g.add_column(col)
    for v in report["targets"].values():
        g.add_row(
            v["rule"],
            f"{v['value']:,}",
            f"{v['threshold']:,}",
            "[green]yes" if v["pass"] else "[red]no",
        )
    console.print(g)
    console.print("config: " + json.dumps(report["config"]))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    p.add_argument("--duration", type=float, default=8.0, help="measured seconds per phase")
    p.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each phase")
    p.add_argument("--seed", type=int, default=1, help="seed for nonces (ids differ per seed)")
    p.add_argument(
        "--window", type=int, default=WINDOW, help="in-flight calls per clients_8 client"
    )
    p.add_argument(
        "--client-procs",
        type=int,
        default=CLIENT_PROCS,
        choices=(1, 2, 4, 8),
        help="OS processes the 8 clients (and the bare floor's clients) run in",
    )
    p.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    p.add_argument("--block-interval-ms", type=int, default=BLOCK_INTERVAL_MS)
    p.add_argument("--floor-seconds", type=float, default=2.0, help="seconds for the verify floor")
    p.add_argument(
        "--idle-seconds",
        type=float,
        default=3.0,
        help="seconds the servers' CPU is measured with no load once started (0: not)",
    )
    p.add_argument(
        "--phases",
        default=",".join(PHASES),
        help=f"comma-separated subset of {','.join(PHASES)} (targets need all of them)",
    )
    p.add_argument(
        "--sequencer-args",
        default="",
        help="extra arguments for python -m sequencer, e.g. '--admission-processes 0'",
    )
    p.add_argument(
        "--ha",
        action="store_true",
        help="also run clients_8 and batched against an HA sequencer: 3 etcd members and"
        " 3 replicas, submissions spread over the replicas (needs /usr/bin/etcd)",
    )
    p.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="with --ha: py-spy record (raw stacks into DIR) the leader and a standby during"
        " clients_8_ha, and their CPU per thread; needs py-spy on PATH or beside python",
    )
    p.add_argument("--serve-bare", metavar="LISTEN", help=argparse.SUPPRESS)
    p.add_argument("--ready-file", type=Path, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve_bare:
        asyncio.run(serve_bare(args.serve_bare, args.ready_file))
        return 0
    started = time.monotonic()
    report = run(args)
    report["config"]["wall_s"] = round(time.monotonic() - started, 1)
    if report["config"]["max_other_cores_used"] > 0.15:
        log(
            f"warning: other work used up to {report['config']['max_other_cores_used']} cores "
            "during the measurements; the figures are low"
        )
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print_table(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())

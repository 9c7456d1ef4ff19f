"""Sequencer benchmark: a real `python -m sequencer` process on 127.0.0.1 against
the floors it cannot beat on this machine.

    .venv/bin/python bench/sequencer.py --json        # one JSON object on stdout
    .venv/bin/python bench/sequencer.py               # a readable table

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
valid. Each phase reports the CPU its server (with its child processes), its load
processes and the rest of the machine used: on a 2-core machine anything else
running (a test suite) moves every figure, and `config.max_other_cores_used` says
how much did. Everything runs on 127.0.0.1; every process this script starts is
stopped by its pid in a finally block."""

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
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
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

from devnet.launcher import Launched, sequencer_argv, start_process, stop_pid  # noqa: E402
from sequencer.store import LevelDBBlockStore  # noqa: E402
from xrollup import codec, serving  # noqa: E402
from xrollup.blocks import compute_id  # noqa: E402
from xrollup.genesis import DEV_CHAIN_ID, dev_genesis  # noqa: E402
from xrollup.keys import derive_dev_account  # noqa: E402
from xrollup.v1 import sequencer_pb2 as spb  # noqa: E402
from xrollup.v1 import sequencer_pb2_grpc as spb_grpc  # noqa: E402
from xrollup.v1 import types_pb2 as pb  # noqa: E402

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
    endpoint: str
    clients: tuple[ClientSpec, ...]
    expiry: int
    warmup: float
    duration: float
    batch_size: int = BATCH_SIZE
    cycle: bool = False  # reuse the signed payloads (only for the bare server)


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
    channels = [aio.insecure_channel(spec.endpoint, options=CHANNEL_OPTIONS) for _ in spec.clients]
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
    with contextlib.suppress(OSError, IndexError, ValueError):
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return float(int(stat[11]) + int(stat[12]))
    return 0.0


def _tree(pid: int) -> list[int]:
    """`pid` and its children (the sequencer's admission workers count as server)."""
    out = [pid]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(stat.parent.name))
    return out


def _cpu_sample(server: int | None, clients: Sequence[int]) -> tuple[float, float, float, float]:
    """(machine busy, machine total, server processes, client processes) in jiffies."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    total = float(sum(fields[:8]))
    proc = sum(_proc_jiffies(p) for p in _tree(server)) if server is not None else 0.0
    return total - idle, total, proc, sum(_proc_jiffies(p) for p in clients)


class CpuMeter:
    """CPU use over the measured part of a phase, in cores: the server's, the load
    processes', and the rest of the machine's (anything else running distorts the
    figures; `other_cores_used` shows how much)."""

    def __init__(self, server_pid: int | None, client_pids: Sequence[int]) -> None:
        self.pid = server_pid
        self.clients = list(client_pids)
        self.result: dict[str, float] = {}
        self._thread: threading.Thread | None = None

    def start(self, begin: float, end: float) -> None:
        def run() -> None:
            time.sleep(max(0.0, begin - time.monotonic()))
            b0, t0, p0, c0 = _cpu_sample(self.pid, self.clients)
            time.sleep(max(0.0, end - time.monotonic()))
            b1, t1, p1, c1 = _cpu_sample(self.pid, self.clients)
            hz = os.sysconf("SC_CLK_TCK")
            cores = os.cpu_count() or 1
            wall = (t1 - t0) / cores / hz
            if wall <= 0:
                return
            busy = (b1 - b0) / hz / wall
            server, clients = (p1 - p0) / hz / wall, (c1 - c0) / hz / wall
            self.result = {
                "machine_cpu_busy_pct": round(100 * busy / cores, 1),
                "server_cores_used": round(server, 2),
                "client_cores_used": round(clients, 2),
                "other_cores_used": round(max(0.0, busy - server - clients), 2),
            }

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def join(self) -> dict[str, float]:
        if self._thread is not None:
            self._thread.join(5)
        return self.result


def run_phase(
    name: str, specs: Sequence[WorkerSpec], server_pid: int | None = None
) -> dict[str, Any]:
    """Run one load phase over worker processes and aggregate what they saw."""
    ctx = mp.get_context("spawn")
    procs: list[tuple[Any, mpc.Connection]] = []
    meter = CpuMeter(None, [])
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
        meter = CpuMeter(server_pid, [p.pid for p, _conn in procs])
        meter.start(t0 + spec0.warmup, t0 + spec0.warmup + spec0.duration)
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
    finally:
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
    out: dict[str, Any] = {"block_entries": entries}
    for sync in (True, False):
        store = LevelDBBlockStore(directory / f"store-sync-{int(sync)}", sync=sync)
        try:
            height, parent = store.head()
            times = []
            for _ in range(blocks):
                height += 1
                ids = [compute_id(b"%d/%d" % (height, i)) for i in range(entries)]
                block = codec.encode_block(height, parent, 0, payload, ids)
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


def start_sequencer(tmp: Path, interval_ms: int, extra: Sequence[str] = ()) -> Launched:
    data, ready, log_file = tmp / "sequencer", tmp / "sequencer.ready", tmp / "sequencer.log"
    argv = sequencer_argv("127.0.0.1:0", data, ready, None, interval_ms) + list(extra)
    return start_process("sequencer", "sequencer", None, argv, data, log_file, ready, detach=False)


def start_bare(tmp: Path) -> Launched:
    ready, log_file = tmp / "bare.ready", tmp / "bare.log"
    argv = [sys.executable, str(Path(__file__).resolve()), "--serve-bare", "127.0.0.1:0"]
    argv += ["--ready-file", str(ready)]
    return start_process("bare-grpc", "bench", None, argv, tmp, log_file, ready, detach=False)


def split(clients: Sequence[ClientSpec], procs: int) -> list[tuple[ClientSpec, ...]]:
    return [tuple(clients[i::procs]) for i in range(procs) if clients[i::procs]]


PHASES = ("floor", "clients_1", "clients_8", "batched", "bare")


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
    results: dict[str, Any] = {}
    floor: dict[str, Any] = {}
    final_head = None
    c8_name = f"clients_{CLIENTS}"

    def nonce() -> int:
        return rng.getrandbits(40) << 22

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
                log(f"sequencer pid {seq.pid} on {ep}")
                if "clients_1" in phases:
                    log("clients_1")
                    expiry = head_height(ep) + EXPIRY_BLOCKS
                    n1 = int(span * 1000 / interval * 2) + 200
                    one = WorkerSpec(
                        "tx", ep, (ClientSpec(0, nonce(), n1, 1),), expiry, warmup, dur
                    )
                    results["clients_1"] = run_phase("clients_1", [one], seq.pid)
                if "clients_8" in phases:
                    log(f"{c8_name}: {args.client_procs} processes, window {args.window}")
                    expiry = head_height(ep) + EXPIRY_BLOCKS
                    per_client = int(span * PER_CLIENT_CAP_PER_S)
                    clients = [
                        ClientSpec(c, nonce(), per_client, args.window) for c in range(CLIENTS)
                    ]
                    specs = [
                        WorkerSpec("tx", ep, cs, expiry, warmup, dur)
                        for cs in split(clients, args.client_procs)
                    ]
                    results[c8_name] = run_phase(c8_name, specs, seq.pid)
                if "batched" in phases:
                    log(f"batched: {BATCH_CALLERS} callers, batches of {args.batch_size}")
                    expiry = head_height(ep) + EXPIRY_BLOCKS
                    per_caller = int(span * BATCH_CAP_PER_S / BATCH_CALLERS)
                    per_caller = per_caller // args.batch_size * args.batch_size
                    callers = [
                        ClientSpec(c % 10, nonce(), per_caller, 1) for c in range(BATCH_CALLERS)
                    ]
                    specs = [
                        WorkerSpec("batch", ep, cs, expiry, warmup, dur, args.batch_size)
                        for cs in split(callers, BATCH_PROCS)
                    ]
                    results["batched"] = run_phase("batched", specs, seq.pid)
                final_head = head_height(ep)
            finally:
                stop_pid(seq.pid, grace=10, popen=seq.popen)

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
                bare_result = run_phase("bare", specs, bare.pid)
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
        "max_other_cores_used": max(
            [r.get("other_cores_used", 0.0) for r in results.values()]
            + [floor.get("bare_grpc_other_cores_used") or 0.0]
        ),
        "final_head_height": final_head,
        "commit": _git_head(),
    }
    return {**results, "floor": floor, "targets": targets, "config": config}


def evaluate_targets(
    results: dict[str, Any], floor: dict[str, Any], interval: int
) -> dict[str, dict[str, Any]]:
    """Each target with its value, threshold and pass; targets whose inputs were
    not measured (see --phases) are left out."""
    c8 = results.get(f"clients_{CLIENTS}", {})
    batched = results.get("batched", {})
    rows = [
        (
            "clients_8_vs_bare_grpc",
            "clients_8.acked_per_s >= 0.8 * floor.bare_grpc_calls_per_s",
            c8.get("acked_per_s"),
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
    for name in ("clients_1", f"clients_{CLIENTS}", "batched"):
        if name not in report:
            continue
        r = report[name]
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
        "--phases",
        default=",".join(PHASES),
        help=f"comma-separated subset of {','.join(PHASES)} (targets need all of them)",
    )
    p.add_argument(
        "--sequencer-args",
        default="",
        help="extra arguments for python -m sequencer, e.g. '--admission-processes 0'",
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

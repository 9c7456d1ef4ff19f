"""Rollup node benchmark: catch-up rate over a long log and steady lag under load.

    .venv/bin/python bench/node.py --json
    .venv/bin/python bench/node.py --transfers 100000 --duration 10

catchup      A real sequencer is filled with `--transfers` valid signed transfers on
             alpha (SubmitBatch, 1,000 per call). A fresh alpha node process, pinned
             to ONE core (taskset), then replays the whole log from height 0:
             decoding, checking every signature, executing, computing state roots and
             writing LevelDB. Rate = transfers / seconds from its start to the head.
steady_lag   The caught-up node follows live while the sequencer takes the 8-client
             load of bench/sequencer.py (the same worker processes and window);
             lag = sequencer height - node applied height, sampled every 20 ms.

Everything runs on 127.0.0.1; every process started is stopped by its pid."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import multiprocessing as mp
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

from devnet.launcher import node_argv, start_process, stop_pid  # noqa: E402
from xrollup.client import Client, NodeClient  # noqa: E402
from xrollup.v1 import types_pb2 as pb  # noqa: E402


def _load_sequencer_bench() -> Any:
    """bench/sequencer.py under another name (it would shadow the package)."""
    spec = importlib.util.spec_from_file_location("bench_sequencer", _HERE / "sequencer.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_sequencer"] = module
    spec.loader.exec_module(module)
    return module


sb = _load_sequencer_bench()


def _sign(args: tuple[int, int, int, int]) -> list[bytes]:
    account, nonce_base, count, expiry = args
    return [t.SerializeToString() for t in sb.signed_transfers(account, nonce_base, count, expiry)]


def sign_many(total: int, expiry: int) -> list[pb.SignedTx]:
    """Sign in parallel, ten accounts, distinct nonces: every transfer valid and unique."""
    per = -(-total // 10)
    jobs = [(a, 10_000_000 + a * per, per, expiry) for a in range(10)]
    with mp.get_context("spawn").Pool(os.cpu_count() or 2) as pool:
        chunks = pool.map(_sign, jobs)
    return [pb.SignedTx.FromString(b) for chunk in chunks for b in chunk][:total]


async def fill(endpoint: str, txs: list[pb.SignedTx], batch: int = 1000, callers: int = 4) -> int:
    async with Client(endpoint) as c:
        queue = [txs[i : i + batch] for i in range(0, len(txs), batch)]

        async def caller() -> None:
            while queue:
                part = queue.pop()
                items = await c.submit_batch(part, timeout=120)
                bad = [i for i in items if not i.ok]
                if bad:
                    raise RuntimeError(f"fill refused: {bad[0].code.name} {bad[0].message}")

        await asyncio.gather(*(caller() for _ in range(callers)))
        return int((await c.status()).height)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def wait_applied(endpoint: str, height: int, timeout: float) -> float:
    async with NodeClient(endpoint) as n:
        await n.wait_for_height(height, timeout=timeout, poll=0.01)
    return time.perf_counter()


def start_node(tmp: Path, sequencer: str, name: str, one_core: bool) -> Any:
    data, ready, log = tmp / name, tmp / f"{name}.ready", tmp / f"{name}.log"
    argv = node_argv("alpha", sequencer, "127.0.0.1:0", data, ready, None)
    if one_core and shutil.which("taskset"):
        argv = ["taskset", "-c", "1", *argv]
    return start_process(name, "node", "alpha", argv, data, log, ready, detach=False)


class LagSampler:
    """Samples sequencer height - node applied height every 20 ms in a thread."""

    def __init__(self, sequencer: str, node: str) -> None:
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._args = (sequencer, node)
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _run(self) -> None:
        async with Client(self._args[0]) as c, NodeClient(self._args[1]) as n:
            while not self._stop.is_set():
                head = (await c.status()).height
                applied = (await n.status()).applied_height
                self.samples.append(max(0, head - applied))
                await asyncio.sleep(0.02)

    def __enter__(self) -> LagSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def run(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-node-") as tmp_name:
        tmp = Path(tmp_name)
        seq = sb.start_sequencer(tmp, sb.BLOCK_INTERVAL_MS)
        node = None
        try:
            expiry = sb.head_height(seq.endpoint) + 90_000
            t = time.perf_counter()
            txs = sign_many(args.transfers, expiry)
            sb.log(f"signed {len(txs)} transfers in {time.perf_counter() - t:.1f} s")
            t = time.perf_counter()
            head = asyncio.run(fill(seq.endpoint, txs))
            sb.log(f"filled to height {head} in {time.perf_counter() - t:.1f} s")
            del txs
            started = time.perf_counter()
            node = start_node(tmp, seq.endpoint, "alpha", one_core=True)
            cpu0 = 0.0
            done = asyncio.run(wait_applied(node.endpoint, head, timeout=600))
            seconds = done - started
            cpu = _cpu_seconds(node.pid) - cpu0
            out["catchup"] = {
                "transfers": args.transfers,
                "blocks": head,
                "seconds": round(seconds, 2),
                "node_cpu_seconds": round(cpu, 2),
                "transfers_per_s": round(args.transfers / seconds, 1),
                "blocks_per_s": round(head / seconds, 1),
                "signatures_checked": args.transfers,
                "cores": 1 if shutil.which("taskset") else os.cpu_count(),
            }
            sb.log(f"catch-up: {out['catchup']}")

            # steady lag: the node follows live under the 8-client load, starting once it
            # has also applied the empty blocks sealed while it was catching up.
            ep = seq.endpoint
            t = time.perf_counter()
            asyncio.run(wait_applied(node.endpoint, sb.head_height(ep), timeout=120))
            sb.log(f"caught up with the live head in {time.perf_counter() - t:.1f} s")
            head_now = sb.head_height(ep)
            per_client = int((args.duration + 2) * sb.PER_CLIENT_CAP_PER_S)
            clients = [
                sb.ClientSpec(c, 20_000_000 + c * per_client, per_client, args.window)
                for c in range(sb.CLIENTS)
            ]
            specs = [
                sb.WorkerSpec("tx", ep, cs, head_now + 3000, 1.0, args.duration)
                for cs in sb.split(clients, args.client_procs)
            ]
            with LagSampler(ep, node.endpoint) as lag:
                load = sb.run_phase("steady", specs, seq.pid)
            samples = lag.samples or [0]
            sb.log(f"lag samples (blocks): {samples}")
            out["steady_lag"] = {
                "load_acked_per_s": load["acked_per_s"],
                "load_p99_ms": load["p99_ms"],
                "lag_blocks_p50": statistics.median(samples),
                "lag_blocks_p99": sorted(samples)[int(0.99 * (len(samples) - 1))],
                "lag_blocks_max": max(samples),
                "samples": len(samples),
            }
        finally:
            if node is not None:
                stop_pid(node.pid, grace=10, popen=node.popen)
            stop_pid(seq.pid, grace=10, popen=seq.popen)
    out["targets"] = {
        "catchup_transfers_per_s_ge_5000": {
            "value": out["catchup"]["transfers_per_s"],
            "pass": out["catchup"]["transfers_per_s"] >= 5000,
        },
        "steady_lag_p99_le_2_blocks": {
            "value": out["steady_lag"]["lag_blocks_p99"],
            "pass": out["steady_lag"]["lag_blocks_p99"] <= 2,
        },
    }
    out["config"] = {
        "block_interval_ms": sb.BLOCK_INTERVAL_MS,
        "window": args.window,
        "client_procs": args.client_procs,
        "cpus": os.cpu_count(),
    }
    return out


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--transfers", type=int, default=100_000)
    ap.add_argument("--duration", type=float, default=8.0, help="seconds of steady load")
    ap.add_argument("--window", type=int, default=sb.WINDOW)
    ap.add_argument("--client-procs", type=int, default=sb.CLIENT_PROCS)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    result = run(args)
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:>12}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

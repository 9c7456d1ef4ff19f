"""`python -m sequencer`: serve the shared sequencer until SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import os
import sys
from pathlib import Path

from sequencer.admitter import Admitter
from sequencer.ha import Replica
from sequencer.metrics import SequencerMetrics
from sequencer.runtime import Sequencer
from sequencer.service import SequencerService
from sequencer.snapshots import SequencerSnapshotService
from sequencer.store import LevelDBBlockStore
from xrollup import serving
from xrollup.endpoints import parse_endpoints, split_endpoint
from xrollup.errors import InvalidInput, XrollupError
from xrollup.genesis import load_genesis
from xrollup.keys import derive_sequencer_key, load_keypair
from xrollup.metrics import MetricsServer, add_metrics_argument, serve_metrics
from xrollup.v1 import sequencer_pb2, sequencer_pb2_grpc, snapshot_pb2, snapshot_pb2_grpc

log = logging.getLogger("sequencer")
SERVICE_NAME = sequencer_pb2.DESCRIPTOR.services_by_name["SequencerService"].full_name
SNAPSHOT_SERVICE = snapshot_pb2.DESCRIPTOR.services_by_name["SnapshotService"].full_name


DEFAULT_RETAIN_BLOCKS = 10_000


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m sequencer", description=__doc__)
    p.add_argument(
        "--listen", default="127.0.0.1:50051", help="HOST:PORT to serve on (port 0: any free port)"
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        default=Path(".devnet/sequencer"),
        help="LevelDB block store directory",
    )
    p.add_argument(
        "--genesis",
        type=Path,
        default=None,
        help="genesis JSON (default: the embedded dev genesis)",
    )
    p.add_argument(
        "--block-interval-ms", type=int, default=None, help="override genesis block interval"
    )
    p.add_argument(
        "--ready-file", type=Path, default=None, help="write {endpoint, pid} here once serving"
    )
    p.add_argument(
        "--grace", type=float, default=3.0, help="seconds in-flight calls get on SIGTERM"
    )
    p.add_argument(
        "--admission-processes",
        type=int,
        default=os.cpu_count() or 1,
        help="processes that admit SubmitBatch transactions (default: one per core; 0: threads)",
    )
    p.add_argument(
        "--sequencer-key",
        type=Path,
        default=None,
        help="file with the hex Ed25519 seed that signs block headers (default: the dev key)",
    )
    p.add_argument(
        "--retain-blocks",
        type=int,
        default=DEFAULT_RETAIN_BLOCKS,
        metavar="N",
        help="delete blocks older than the last N (default"
        f" {DEFAULT_RETAIN_BLOCKS:,}; 0: keep every block), and only below the prune floor"
        " SetPruneFloor sets (the devnet sets it to where every node and snapshot is); never"
        " within the bundle deadline window",
    )
    p.add_argument(
        "--etcd",
        default="",
        metavar="HOST:PORT,...",
        help="HA: the etcd cluster's client endpoints; the log lives there and this process"
        " is one replica: it leads when elected, else it follows the log, serves reads and"
        " forwards submissions to the leader (sequencer/ha.py). Empty: a single sequencer",
    )
    p.add_argument(
        "--replica-name", default="", help="HA: this replica's name (default: its endpoint)"
    )
    p.add_argument(
        "--unsafe-no-lease-check",
        action="store_true",
        help="HA, for tests of fencing only: append even when the lease may have expired,"
        " so that only etcd's fenced transaction stands between a stale leader and the log",
    )
    add_metrics_argument(p)
    p.add_argument("--log-level", default="INFO")
    return p.parse_args(argv)


async def serve(args: argparse.Namespace) -> int:
    genesis = load_genesis(args.genesis)
    if args.block_interval_ms is not None:
        genesis = dataclasses.replace(genesis, block_interval_ms=args.block_interval_ms)
    key = load_keypair(args.sequencer_key, derive_sequencer_key(), "--sequencer-key")
    if key.public_key != genesis.sequencer_key:
        raise InvalidInput("the sequencer key does not match genesis; pass --sequencer-key")
    if args.retain_blocks < 0:
        raise InvalidInput(f"--retain-blocks is {args.retain_blocks}: 0 (every block) or more")
    etcd = [split_endpoint(e) for e in parse_endpoints(args.etcd)] if args.etcd else None
    # HA: etcd's quorum holds every block durably before it is acknowledged, so a
    # replica's own copy syncs only before it reports how far it goes (ha.Replica).
    store = LevelDBBlockStore(args.data_dir, sync=etcd is None)
    seq = Sequencer(genesis, store, key)
    seq.retain_blocks = args.retain_blocks
    replica: Replica | None = None
    if etcd is not None:
        replica = Replica(seq, etcd, args.replica_name, not args.unsafe_no_lease_check)
    admitter = Admitter(genesis, args.admission_processes) if args.admission_processes > 0 else None
    metrics = SequencerMetrics(seq) if args.metrics_listen else None
    seq.metrics = metrics
    service = SequencerService(seq, admitter, metrics, replica)
    server = serving.build_server(genesis.limits.max_message_bytes)
    sequencer_pb2_grpc.add_SequencerServiceServicer_to_server(service, server)
    snapshot_pb2_grpc.add_SnapshotServiceServicer_to_server(
        SequencerSnapshotService(seq, args.data_dir), server
    )
    health = serving.add_health_and_reflection(server, [SERVICE_NAME, SNAPSHOT_SERVICE])
    failure: BaseException | None = None
    metrics_server: MetricsServer | None = None
    try:
        if metrics is not None:
            metrics_server = serve_metrics(metrics.registry, args.metrics_listen)
        endpoint = serving.bind(server, args.listen)
        await server.start()
        if replica is None:
            seq.start()
            running = seq.sealer
        else:
            replica.name = replica.name or endpoint
            running = asyncio.create_task(replica.run(endpoint), name="replica")
        await serving.set_serving(health, [SERVICE_NAME], True)
        metrics_url = metrics_server.url if metrics_server is not None else ""
        serving.write_ready_file(args.ready_file, endpoint, metrics_url)
        log.info(
            "serving on %s: chain %s, head %d (blocks from %d), block interval %d ms,"
            " retain %s blocks above the prune floor %d, data %s%s",
            endpoint,
            genesis.chain_id,
            seq.head_height,
            seq.first_height,
            genesis.block_interval_ms,
            f"{args.retain_blocks:,}" if args.retain_blocks else "all",
            seq.prune_floor,
            args.data_dir,
            f", metrics {metrics_url}" if metrics_url else "",
        )
        assert running is not None
        failure = await serving.wait_for_termination(running)
        if failure is None:
            log.info("SIGTERM: draining")
        await serving.set_serving(health, [SERVICE_NAME], False)
        # Stop admitting, let in-flight submissions be sealed and acknowledged, then stop
        # (HA: and hand the lead over at once).
        stop_server = asyncio.create_task(server.stop(args.grace))
        if replica is None:
            await seq.stop()
        else:
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await running
            await replica.stop()
        await stop_server
    finally:
        if metrics_server is not None:
            metrics_server.stop()
        service.close()
        store.close()
        log.info("stopped at height %d", seq.head_height)
    return 1 if failure is not None else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    serving.setup_logging("sequencer", args.log_level)
    try:
        return asyncio.run(serve(args))
    except XrollupError as e:
        log.error("%s", e)
        return 2


if __name__ == "__main__":
    sys.exit(main())

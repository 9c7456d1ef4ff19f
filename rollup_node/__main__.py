"""`python -m rollup_node`: run one rollup node until SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from pathlib import Path

from rollup_node.follower import Follower
from rollup_node.metrics import NodeMetrics
from rollup_node.service import RollupNodeService
from rollup_node.snapshots import NodeSnapshotService, open_from_snapshot
from rollup_node.store import NodeStore
from xrollup import serving
from xrollup.errors import InvalidInput, XrollupError
from xrollup.genesis import compute_genesis_hash, load_genesis
from xrollup.keys import derive_rollup_vote_key, load_keypair
from xrollup.metrics import MetricsServer, add_metrics_argument, serve_metrics
from xrollup.v1 import node_pb2, node_pb2_grpc, snapshot_pb2, snapshot_pb2_grpc

log = logging.getLogger("rollup_node")
SERVICE_NAME = node_pb2.DESCRIPTOR.services_by_name["RollupNodeService"].full_name
SNAPSHOT_SERVICE = snapshot_pb2.DESCRIPTOR.services_by_name["SnapshotService"].full_name


DEFAULT_RETAIN_BLOCKS = 10_000


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m rollup_node", description=__doc__)
    p.add_argument("--rollup", required=True, help="which rollup of genesis this node runs")
    p.add_argument(
        "--sequencer",
        required=True,
        help="sequencer HOST:PORT to follow, or its replicas' as a comma-separated list"
        " (the node follows the first that answers and moves on when it dies)",
    )
    p.add_argument(
        "--listen", default="127.0.0.1:0", help="HOST:PORT to serve on (port 0: any free port)"
    )
    p.add_argument("--data-dir", type=Path, required=True, help="LevelDB state directory")
    p.add_argument(
        "--genesis", type=Path, default=None, help="genesis JSON (default: embedded dev genesis)"
    )
    p.add_argument(
        "--ready-file", type=Path, default=None, help="write {endpoint, pid} here once serving"
    )
    p.add_argument(
        "--vote-key",
        type=Path,
        default=None,
        help="file with the hex Ed25519 seed of this rollup's vote key (default: the dev key)",
    )
    p.add_argument(
        "--full-stream",
        action="store_true",
        help="follow every entry of the log instead of the stream filtered to this rollup"
        " (the same state; for comparisons)",
    )
    p.add_argument(
        "--from-snapshot",
        type=Path,
        default=None,
        metavar="DIR",
        help="start from another node's snapshot (a snapshot's node folder) when --data-dir"
        " holds no store yet; verified against --source-node",
    )
    p.add_argument(
        "--source-node",
        default=None,
        metavar="HOST:PORT",
        help="with --from-snapshot: a node of the same rollup whose state root at the"
        " snapshot's height the copy must match, or this node refuses to start",
    )
    p.add_argument(
        "--retain-blocks",
        type=int,
        default=DEFAULT_RETAIN_BLOCKS,
        metavar="N",
        help="keep the state roots, headers and receipts of the last N heights (default"
        f" {DEFAULT_RETAIN_BLOCKS:,}; 0: every height); older ones answer NOT_FOUND, pruned."
        " The root of a height a snapshot was taken at is kept",
    )
    p.add_argument("--grace", type=float, default=2.0)
    add_metrics_argument(p)
    p.add_argument("--log-level", default="INFO")
    return p.parse_args(argv)


async def serve(args: argparse.Namespace) -> int:
    genesis = load_genesis(args.genesis)
    if genesis.get_rollup(args.rollup) is None:
        raise InvalidInput(
            f"--rollup {args.rollup!r} is not in genesis ({', '.join(genesis.rollup_names)})"
        )
    if args.retain_blocks < 0:
        raise InvalidInput(f"--retain-blocks is {args.retain_blocks}: 0 (every height) or more")
    vote_key = load_keypair(args.vote_key, derive_rollup_vote_key(args.rollup), "--vote-key")
    rollup = genesis.get_rollup(args.rollup)
    assert rollup is not None
    if vote_key.public_key != rollup.vote_key:
        raise InvalidInput(
            f"the vote key does not match genesis for {args.rollup}; pass --vote-key"
        )
    if args.from_snapshot is not None:
        store = await open_from_snapshot(
            args.from_snapshot, args.source_node, args.data_dir, genesis, args.rollup
        )
    else:
        store = NodeStore(args.data_dir, compute_genesis_hash(genesis))
    store.retain_blocks = args.retain_blocks
    follower = Follower(store, genesis, args.rollup, args.sequencer, vote_key, args.full_stream)
    server = serving.build_server(genesis.limits.max_message_bytes)
    node_pb2_grpc.add_RollupNodeServiceServicer_to_server(RollupNodeService(follower), server)
    snapshot_pb2_grpc.add_SnapshotServiceServicer_to_server(
        NodeSnapshotService(follower, args.data_dir), server
    )
    health = serving.add_health_and_reflection(server, [SERVICE_NAME, SNAPSHOT_SERVICE])
    following: asyncio.Task[None] | None = None
    failure: BaseException | None = None
    metrics_server: MetricsServer | None = None
    try:
        if args.metrics_listen:
            follower.metrics = NodeMetrics(follower)
            metrics_server = serve_metrics(follower.metrics.registry, args.metrics_listen)
        endpoint = serving.bind(server, args.listen)
        await server.start()
        following = asyncio.create_task(follower.run(), name="follower")
        await serving.set_serving(health, [SERVICE_NAME], True)
        metrics_url = metrics_server.url if metrics_server is not None else ""
        serving.write_ready_file(args.ready_file, endpoint, metrics_url)
        log.info(
            "rollup %s serving on %s, following %s from height %d%s",
            args.rollup,
            endpoint,
            args.sequencer,
            follower.applied.height,
            f", metrics {metrics_url}" if metrics_url else "",
        )
        failure = await serving.wait_for_termination(following)
        if failure is None:
            log.info("SIGTERM: stopping at height %d", follower.applied.height)
        await serving.set_serving(health, [SERVICE_NAME], False)
        await server.stop(args.grace)
    finally:
        if following is not None:
            following.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await following
        if metrics_server is not None:
            metrics_server.stop()
        store.close()
        log.info("stopped at height %d", follower.applied.height)
    return 1 if failure is not None else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    serving.setup_logging(f"rollup_node.{args.rollup}", args.log_level)
    try:
        return asyncio.run(serve(args))
    except XrollupError as e:
        log.error("%s", e)
        return 2


if __name__ == "__main__":
    sys.exit(main())

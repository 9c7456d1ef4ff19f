"""Snapshots of a whole devnet: save one while it runs, list them, and restore one
(into the same devnet, or a fresh directory). The `devnet snapshot` and
`devnet up --from-snapshot` commands call these.

A snapshot at height h is the sequencer's log up to h and every node's store right
after applying h (primaries and replicas), taken by each process on its own
(SnapshotService, proto/xrollup/v1/snapshot.proto) while the devnet keeps running:
the sequencer copies blocks that never change, and a node freezes its store
between two blocks. The pieces land in `DIR/snapshots/NAME/<process>/` beside
`genesis.json`, the load journal's acknowledgements up to h and `snapshot.json`
(height, block hash, each node's state root at h). Restoring stops the devnet,
puts each piece in place, starts it and checks every node's root at h against
`snapshot.json`; blocks after h are gone: the devnet is back at h."""

from __future__ import annotations

import asyncio
import json
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grpc import aio

from devnet import launcher, network, retention
from devnet.manifest import GENESIS, Manifest, ProcessRecord, load_manifest
from xrollup.client import Client, NodeClient, SnapshotClient
from xrollup.errors import AlreadyExists, NotFound, Refused, XrollupError
from xrollup.genesis import Genesis, compute_genesis_hash, decode_genesis
from xrollup.snapshots import (
    SNAPSHOTS,
    compute_dir_bytes,
    copy_store_files,
    validate_snapshot_name,
)
from xrollup.v1 import snapshot_pb2 as snpb

SNAPSHOT_FILE = "snapshot.json"
JOURNAL = "journal.jsonl"
VERSION = 1
# How far past the sequencer's head a snapshot is taken: every node must not have
# applied that height yet when asked, so it needs the time the requests take to
# arrive (a node refuses a height it is past); about half a second of blocks.
AHEAD_SECONDS = 0.5
MIN_AHEAD_BLOCKS = 5


class SnapshotFailed(XrollupError):
    """A snapshot could not be saved or restored; the message says which process and why."""


@dataclass(frozen=True)
class Piece:
    """One process's part of a snapshot."""

    name: str
    role: str  # "sequencer" | "node"
    rollup: str | None
    state_root: bytes  # empty for the sequencer
    keys: int

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role,
            "rollup": self.rollup,
            "state_root": self.state_root.hex(),
            "keys": self.keys,
        }


@dataclass(frozen=True)
class SnapshotInfo:
    name: str
    path: Path
    height: int
    block_hash: bytes
    chain_id: str
    genesis_hash: bytes
    rollups: tuple[str, ...]
    created_unix_ms: int  # for display only
    pieces: tuple[Piece, ...]

    @property
    def replicas(self) -> bool:
        return any(p.role == "node" and p.name != p.rollup for p in self.pieces)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": VERSION,
            "name": self.name,
            "height": self.height,
            "block_hash": self.block_hash.hex(),
            "chain_id": self.chain_id,
            "genesis_hash": self.genesis_hash.hex(),
            "rollups": list(self.rollups),
            "created_unix_ms": self.created_unix_ms,
            "processes": [p.to_json() for p in self.pieces],
        }


def compute_ahead_blocks(block_interval_ms: int) -> int:
    return max(MIN_AHEAD_BLOCKS, math.ceil(AHEAD_SECONDS * 1000 / max(1, block_interval_ms)))


def read_snapshot(path: Path) -> SnapshotInfo:
    """The snapshot in directory `path` (NotFound when there is none; SnapshotFailed
    when its snapshot.json does not read)."""
    file = path / SNAPSHOT_FILE
    if not file.is_file():
        raise NotFound(f"no snapshot in {path} (no {SNAPSHOT_FILE})")
    try:
        doc = json.loads(file.read_text())
        info = SnapshotInfo(
            name=str(doc["name"]),
            path=path,
            height=int(doc["height"]),
            block_hash=bytes.fromhex(doc["block_hash"]),
            chain_id=str(doc["chain_id"]),
            genesis_hash=bytes.fromhex(doc["genesis_hash"]),
            rollups=tuple(str(r) for r in doc["rollups"]),
            created_unix_ms=int(doc["created_unix_ms"]),
            pieces=tuple(
                Piece(
                    str(p["name"]),
                    str(p["role"]),
                    p["rollup"],
                    bytes.fromhex(p["state_root"]),
                    int(p["keys"]),
                )
                for p in doc["processes"]
            ),
        )
    except (ValueError, KeyError, TypeError) as e:
        raise SnapshotFailed(f"{file} is unreadable ({type(e).__name__}: {e})") from None
    validate_pieces(info)
    return info


def validate_pieces(info: SnapshotInfo) -> None:
    """The pieces are the sequencer and every rollup's node, with or without every
    replica, each named as the devnet names it: a restore writes each into
    DIR/<name>, so a name from snapshot.json must never reach outside DIR."""
    names = [p.name for p in info.pieces]
    primaries = list(info.rollups)
    replicas = [f"{r}-replica" for r in info.rollups]
    expected: dict[str, tuple[str, str | None]] = {"sequencer": ("sequencer", None)}
    expected.update({r: ("node", r) for r in primaries})
    expected.update({f"{r}-replica": ("node", r) for r in primaries})
    for p in info.pieces:
        if expected.get(p.name) != (p.role, p.rollup):
            raise SnapshotFailed(
                f"{info.path / SNAPSHOT_FILE}: process {p.name!r} ({p.role}, {p.rollup}) is"
                " not one a devnet of its rollups runs"
            )
    have = set(names)
    if len(have) != len(names) or not {"sequencer", *primaries} <= have:
        raise SnapshotFailed(
            f"{info.path / SNAPSHOT_FILE}: it needs the sequencer and a node of every rollup,"
            " each once"
        )
    if have & set(replicas) and not set(replicas) <= have:
        raise SnapshotFailed(f"{info.path / SNAPSHOT_FILE}: it has some replicas, not all")


def list_snapshots(data_dir: Path) -> list[tuple[SnapshotInfo, int]]:
    """Every snapshot of the devnet in `data_dir` with its size in bytes, by height."""
    root = data_dir / SNAPSHOTS
    found = []
    if root.is_dir():
        for path in sorted(root.iterdir()):
            if path.is_dir() and not path.name.startswith(".") and (path / SNAPSHOT_FILE).exists():
                found.append((read_snapshot(path), compute_dir_bytes(path)))
    return sorted(found, key=lambda x: (x[0].height, x[0].name))


def resolve_snapshot(data_dir: Path, name_or_path: str) -> Path:
    """A snapshot directory: a path holding snapshot.json, else the devnet's snapshot
    of that name."""
    as_path = Path(name_or_path)
    if (as_path / SNAPSHOT_FILE).is_file():
        return as_path.resolve()
    try:
        validate_snapshot_name(name_or_path)
    except XrollupError:
        raise NotFound(f"no snapshot at {name_or_path} (no {SNAPSHOT_FILE} there)") from None
    path = data_dir / SNAPSHOTS / name_or_path
    if not (path / SNAPSHOT_FILE).is_file():
        raise NotFound(
            f"no snapshot {name_or_path!r} in {data_dir / SNAPSHOTS} (`devnet snapshot list`)"
        )
    return path


# ---------------------------------------------------------------- save


async def save_snapshot(
    data_dir: Path, name: str, genesis: Genesis, timeout: float = 120.0
) -> SnapshotInfo:
    """Snapshot the running devnet in `data_dir` as `name`, a little past the
    sequencer's head, without stopping it. Every process must be running."""
    validate_snapshot_name(name)
    data_dir = data_dir.resolve()
    final = data_dir / SNAPSHOTS / name
    if final.exists():
        raise AlreadyExists(f"snapshot {name!r} exists already ({final})")
    manifest = load_manifest(data_dir)
    if manifest is None:
        raise SnapshotFailed(f"no devnet in {data_dir} (run `devnet up`)")
    procs = [p for p in manifest.processes if p.role in ("sequencer", "node")]
    down = [p.name for p in procs if not network.is_running(p)]
    if down:
        raise SnapshotFailed(
            f"not running: {', '.join(down)}; a snapshot needs every process"
            " (`devnet restart NAME`)"
        )
    paused = [p.name for p in procs if launcher.process_state(p.pid) == "paused"]
    if paused:
        raise SnapshotFailed(
            f"paused: {', '.join(paused)}; a paused process never reaches the snapshot's"
            " height (`devnet resume NAME`)"
        )
    seq = next(p for p in procs if p.role == "sequencer")
    async with Client(seq.endpoint, genesis.chain_id) as client:
        status = await client.status()
    height = status.height + compute_ahead_blocks(status.block_interval_ms)
    retention.hold_floor(data_dir, name, height)  # the sequencer keeps blocks after it

    async def one(endpoint: str) -> snpb.SaveSnapshotResponse:
        async with SnapshotClient(endpoint) as c:
            return await c.save(name, height, timeout=timeout)

    results = await asyncio.gather(*(one(p.endpoint) for p in procs), return_exceptions=True)
    # Where each process wrote its piece, computed here: a path a server reports
    # is never moved or removed.
    written = {p.name: Path(p.data_dir) / SNAPSHOTS / name for p in procs}
    saved: list[tuple[ProcessRecord, snpb.SaveSnapshotResponse]] = []
    failed: list[str] = []
    for p, r in zip(procs, results, strict=True):
        if isinstance(r, BaseException):
            failed.append(f"{p.name}: {_describe(r)}")
        else:
            saved.append((p, r))
    hashes = {bytes(r.block_hash) for _, r in saved}
    if not failed and len(hashes) != 1:
        failed.append(f"the processes hold different blocks at height {height}")
    if failed:
        for p, _ in saved:
            shutil.rmtree(written[p.name], ignore_errors=True)
        retention.release_floor(data_dir, name)
        raise SnapshotFailed(f"snapshot {name!r} at height {height} failed: {'; '.join(failed)}")
    pieces = tuple(
        Piece(p.name, p.role, p.rollup, bytes(r.state_root), int(r.keys)) for p, r in saved
    )
    info = SnapshotInfo(
        name,
        final,
        height,
        hashes.pop(),
        genesis.chain_id,
        compute_genesis_hash(genesis),
        tuple(genesis.rollup_names),
        time.time_ns() // 1_000_000,
        pieces,
    )
    staging = data_dir / SNAPSHOTS / f".partial-{name}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        for p in procs:
            shutil.move(written[p.name], staging / p.name)
        shutil.copy2(data_dir / GENESIS, staging / GENESIS)
        save_snapshot_journal(data_dir / JOURNAL, staging / JOURNAL, height)
        (staging / SNAPSHOT_FILE).write_text(json.dumps(info.to_json(), indent=2) + "\n")
        os.rename(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        for p in procs:
            shutil.rmtree(written[p.name], ignore_errors=True)
        raise
    finally:
        retention.release_floor(data_dir, name)  # the snapshot holds it now, or failed
    return info


def _describe(e: BaseException) -> str:
    if isinstance(e, aio.AioRpcError):
        return f"{e.code().name}: {e.details()}"
    return f"{type(e).__name__}: {e}"


def save_snapshot_journal(src: Path, dst: Path, height: int) -> None:
    """The load journal's acknowledgements at or below `height` (what the snapshot's
    log holds), so `devnet check` keeps checking them after a restore."""
    if not src.exists():
        return
    kept = []
    for line in src.read_text().splitlines():
        try:
            if int(json.loads(line)["height"]) <= height:
                kept.append(line)
        except (ValueError, KeyError, TypeError):
            continue  # a torn last line from a writer that was killed
    dst.write_text("".join(f"{line}\n" for line in kept))


# ---------------------------------------------------------------- restore


def restore_snapshot(
    data_dir: Path,
    snapshot: Path,
    timeout: float = 30.0,
    explorer: bool | None = None,
    block_interval_ms: int | None = None,
) -> tuple[Manifest, SnapshotInfo]:
    """Return the devnet in `data_dir` (stopped first if it runs; none yet is fine)
    to `snapshot`: every process's data directory becomes the snapshot's copy, nodes
    without one are cleared (they replay from 0), and the devnet starts again at
    the snapshot's height. Each node's state root at that height must then equal
    the snapshot's (SnapshotFailed otherwise). `explorer` and `block_interval_ms`
    None: as the devnet ran before (the explorer on for a new devnet)."""
    data_dir = data_dir.resolve()
    info = read_snapshot(snapshot)
    try:
        genesis = decode_genesis((snapshot / GENESIS).read_text())
    except (OSError, XrollupError) as e:
        raise SnapshotFailed(f"{snapshot / GENESIS}: {e}") from None
    if compute_genesis_hash(genesis) != info.genesis_hash:
        raise SnapshotFailed(f"{snapshot / GENESIS} is not the genesis the snapshot names")
    previous = load_manifest(data_dir)
    if previous is not None and (data_dir / GENESIS).exists():
        have = decode_genesis((data_dir / GENESIS).read_text())
        if compute_genesis_hash(have) != info.genesis_hash:
            raise Refused(
                f"snapshot {info.name!r} is of another chain than the devnet in {data_dir}"
                f" ({info.chain_id} against {have.chain_id}, or another genesis):"
                " restore it into a new --data-dir"
            )
    if explorer is None:
        explorer = previous is None or previous.get(network.EXPLORER) is not None
    interval = block_interval_ms if block_interval_ms is not None else _block_interval(previous)
    network.stop_devnet(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    pieces = {p.name: p for p in info.pieces}
    old = (
        {p.name for p in previous.processes if p.role in ("sequencer", "node")}
        if previous
        else set()
    )
    for name in sorted(old | set(pieces)):
        target = data_dir / name
        shutil.rmtree(target, ignore_errors=True)
        if name in pieces:
            copy_store_files(snapshot / name, target)
    journal = data_dir / JOURNAL
    if (snapshot / JOURNAL).exists():
        shutil.copy2(snapshot / JOURNAL, journal)
    elif journal.exists():
        journal.unlink()  # its acknowledgements past the snapshot are no longer in the log
    manifest = network.start_devnet(
        data_dir,
        replicas=info.replicas,
        block_interval_ms=interval,
        timeout=timeout,
        explorer=explorer,
        genesis=genesis,
    )
    asyncio.run(verify_restored(manifest, info))
    return manifest, info


def _block_interval(manifest: Manifest | None) -> int | None:
    """The --block-interval-ms the sequencer last ran with, if any."""
    rec = manifest.get("sequencer") if manifest else None
    argv = rec.argv if rec else []
    for i, arg in enumerate(argv[:-1]):
        if arg == "--block-interval-ms":
            return int(argv[i + 1])
    return None


async def verify_restored(manifest: Manifest, info: SnapshotInfo) -> None:
    """Every node of the snapshot reports the snapshot's state root at its height."""
    wrong = []
    for piece in info.pieces:
        rec = manifest.get(piece.name)
        if piece.role != "node" or rec is None:
            continue
        async with NodeClient(rec.endpoint) as n:
            root = await n.state_root(info.height)
        if root != piece.state_root:
            wrong.append(f"{piece.name} {root.hex()[:16]} (snapshot {piece.state_root.hex()[:16]})")
    if wrong:
        raise SnapshotFailed(
            f"after restoring {info.name!r}, state roots at height {info.height} differ: "
            + ", ".join(wrong)
        )

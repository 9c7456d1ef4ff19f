"""devnet.json: the one record of a running devnet — every process, its pid,
endpoint, data directory, log and command line — plus the genesis file beside it.
The command line reads endpoints from here unless given --sequencer/--node."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devnet.launcher import Launched

MANIFEST = "devnet.json"
LOCK = ".devnet.lock"
GENESIS = "genesis.json"
VERSION = 1


@dataclass
class ProcessRecord:
    name: str
    role: str
    rollup: str | None
    pid: int
    endpoint: str
    data_dir: str
    log: str
    argv: list[str] = field(default_factory=list)
    # Its Prometheus metrics URL (http://127.0.0.1:PORT/metrics) from its ready file;
    # "" when it serves none (stopped, or a manifest written before metrics).
    metrics: str = ""

    @classmethod
    def from_launched(cls, p: Launched) -> ProcessRecord:
        return cls(
            p.name,
            p.role,
            p.rollup,
            p.pid,
            p.endpoint,
            str(p.data_dir),
            str(p.log),
            list(p.argv),
            str(p.info.get("metrics", "")),
        )


@dataclass
class Manifest:
    data_dir: str
    chain_id: str
    genesis: str
    processes: list[ProcessRecord]

    def get(self, name: str) -> ProcessRecord | None:
        for p in self.processes:
            if p.name == name:
                return p
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "version": VERSION,
            "data_dir": self.data_dir,
            "chain_id": self.chain_id,
            "genesis": self.genesis,
            "processes": [vars(p) for p in self.processes],
        }


def manifest_path(data_dir: Path) -> Path:
    return data_dir / MANIFEST


def save_manifest(data_dir: Path, manifest: Manifest) -> None:
    """Write devnet.json atomically."""
    path = manifest_path(data_dir)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest.to_json(), indent=2) + "\n")
    os.replace(tmp, path)


@contextlib.contextmanager
def locked_manifest(data_dir: Path) -> Iterator[None]:
    """Hold the devnet's lock: a read-modify-write of devnet.json inside it does
    not lose another's (restarts of two processes at once, from threads or
    from two `devnet restart` commands)."""
    with open(data_dir / LOCK, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def load_manifest(data_dir: Path) -> Manifest | None:
    path = manifest_path(data_dir)
    if not path.exists():
        return None
    doc = json.loads(path.read_text())
    return Manifest(
        data_dir=doc["data_dir"],
        chain_id=doc["chain_id"],
        genesis=doc["genesis"],
        processes=[ProcessRecord(**p) for p in doc["processes"]],
    )

"""Shared fixtures: real sequencer processes on 127.0.0.1 with real LevelDB
directories, stopped by pid when the test ends."""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devnet import network
from devnet.launcher import Launched, sequencer_argv, start_process, stop_pid
from devnet.manifest import Manifest


@pytest.fixture
def seed() -> int:
    """A seed for tests that use randomness; printed so a failure can be replayed
    with XR_SEED=<seed>."""
    value = int(os.environ.get("XR_SEED", random.randrange(2**32)))
    print(f"seed = {value} (replay with XR_SEED={value})")
    return value


StartSequencer = Callable[..., Launched]


@pytest.fixture
def start_sequencer(tmp_path: Path) -> Iterator[StartSequencer]:
    """Start a sequencer process; every one started is stopped at teardown."""
    started: list[Launched] = []

    def start(
        data_dir: Path | None = None,
        listen: str = "127.0.0.1:0",
        genesis: Path | None = None,
        block_interval_ms: int | None = None,
        name: str = "sequencer",
    ) -> Launched:
        d = data_dir or tmp_path / name
        ready = tmp_path / f"{name}.ready"
        argv = sequencer_argv(listen, d, ready, genesis, block_interval_ms)
        proc = start_process(
            name, "sequencer", None, argv, d, tmp_path / f"{name}.log", ready, detach=False
        )
        started.append(proc)
        return proc

    yield start
    for proc in started:
        stop_pid(proc.pid, grace=5, popen=proc.popen)


@pytest.fixture
def start_devnet(tmp_path: Path) -> Iterator[Callable[..., Manifest]]:
    """Start a whole devnet (sequencer, alpha, beta, optional replicas) as real
    processes in a temporary directory; stopped by pid at teardown."""
    dirs: list[Path] = []

    def start(
        replicas: bool = False, block_interval_ms: int | None = None, data_dir: Path | None = None
    ) -> Manifest:
        d = data_dir or tmp_path / f"devnet{len(dirs)}"
        dirs.append(d)
        return network.start_devnet(d, replicas=replicas, block_interval_ms=block_interval_ms)

    yield start
    for d in dirs:
        network.stop_devnet(d, grace=5.0)

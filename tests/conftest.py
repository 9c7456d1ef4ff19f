"""Shared fixtures: real sequencer processes on 127.0.0.1 with real LevelDB
directories, stopped by pid when the test ends."""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devnet.launcher import Launched, sequencer_argv, start_process, stop_pid


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
        proc = start_process(name, "sequencer", None, argv, d, tmp_path / f"{name}.log", ready, detach=False)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        stop_pid(proc.pid, grace=5, popen=proc.popen)

"""What an experiment is given: its seed, its size, where to write, where its
devnets live; and the one way it starts a devnet (stopped by pid on exit)."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from devnet import network
from devnet.experiments.report import Report
from devnet.manifest import Manifest
from xrollup.genesis import Genesis


@dataclass
class Context:
    name: str
    seed: int
    size: str  # "small" (the test suite: seconds) or "full" (docs/results.md)
    out: Path  # the report's folder
    work_dir: Path  # devnet data directories go under here
    command: str  # the command line that reproduces the run

    @property
    def small(self) -> bool:
        return self.size == "small"

    def rng(self, stream: str = "") -> random.Random:
        """A generator for one purpose, seeded from the seed and the purpose's
        name, so adding a draw in one place does not shift every other."""
        return random.Random(f"{self.name}:{self.seed}:{stream}")

    def report(self, title: str) -> Report:
        """The run's report, writing into `out`."""
        return Report(self.name, self.seed, title, self.command).into(self.out)

    @contextlib.contextmanager
    def devnet(
        self,
        label: str,
        genesis: Genesis | None = None,
        block_interval_ms: int | None = None,
        replicas: bool = False,
    ) -> Iterator[Manifest]:
        """A fresh devnet in work_dir/label (no explorer), stopped by pid when the
        block ends, whatever happens in it."""
        data_dir = self.work_dir / label
        try:
            yield network.start_devnet(
                data_dir,
                replicas=replicas,
                block_interval_ms=block_interval_ms,
                explorer=False,
                genesis=genesis,
            )
        finally:
            network.stop_devnet(data_dir)

"""`devnet experiment NAME --seed S`: the essay's questions (../shared/background/)
answered by experiment on a real devnet. Each experiment is a module here with
`run(ctx: Context) -> Report`; it starts its own devnet(s) under ctx.work_dir
(real processes on 127.0.0.1, stopped by pid when it ends), is reproducible by
seed (every choice comes from random.Random(seed); heights, not wall time, in
every consensus figure), and writes its report into ctx.out.

The modules are imported only when run: matplotlib is not loaded by other
commands."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from devnet.experiments.context import Context
from devnet.experiments.report import Report

EXPERIMENTS: dict[str, str] = {
    "capital": "the same option trades against remote collateral (atomic) and"
    " through a bridge-then-trade baseline, over bridge delays",
    "contagion": "options backed by collateral on several rollups; one collateral"
    " rollup halts mid-life: what freezes, for how long, what the exit rule releases",
    "faults": "abort rate and decision latency of bundles against fault intensity"
    " (link delay, partition length, node kill rate), over seeds",
}

SIZES = ("small", "full")


def load(name: str) -> Callable[[Context], Report]:
    """The experiment's run function (KeyError for an unknown name)."""
    if name not in EXPERIMENTS:
        raise KeyError(name)
    module = importlib.import_module(f"devnet.experiments.{name}")
    run: Callable[[Context], Report] = module.run
    return run


__all__ = ["EXPERIMENTS", "SIZES", "Context", "Report", "load"]

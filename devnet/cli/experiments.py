"""`devnet experiment NAME --seed S`: run one of the essay's experiments
(devnet/experiments/) on devnets of its own, write its report and say where."""

from __future__ import annotations

import shlex
import shutil
import sys
import tempfile
from pathlib import Path

import click

from devnet import experiments
from devnet.cli.common import JSON_OPTION, handle_errors
from devnet.cli.render import console, emit_json

NAMES = "\n\n".join(f"{name}: {what}." for name, what in experiments.EXPERIMENTS.items())


@click.command(
    help=f"""Run experiment NAME on devnets of its own (real processes on 127.0.0.1,
started and stopped by the run; a devnet you have running is left alone) and
write its report (report.md with tables and PNG plots, report.json) into
OUT/NAME-seedS[-small]. The same seed gives the same workload.

{NAMES}"""
)
@click.argument("name", type=click.Choice(sorted(experiments.EXPERIMENTS)), metavar="NAME")
@click.option(
    "--seed", type=click.IntRange(0), default=1, show_default=True, help="Seed of every draw."
)
@click.option(
    "--size",
    type=click.Choice(experiments.SIZES),
    default="full",
    show_default=True,
    help="small: a run of seconds (the test suite's); full: the figures of docs/results.md.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("results"),
    show_default=True,
    help="Folder the report's folder is made in.",
)
@click.option(
    "--keep-devnets", is_flag=True, help="Keep the devnets' data directories (logs) after the run."
)
@JSON_OPTION
@handle_errors
def experiment(
    name: str, seed: int, size: str, out: Path, keep_devnets: bool, as_json: bool
) -> None:
    folder = (out / f"{name}-seed{seed}{'-small' if size == 'small' else ''}").resolve()
    command = f"devnet experiment {name} --seed {seed}" + (
        " --size small" if size == "small" else ""
    )
    work = Path(tempfile.mkdtemp(prefix=f"devnet-{name}-"))
    ctx = experiments.Context(name, seed, size, folder, work, command)
    if not as_json:
        console.print(f"experiment {name}, seed {seed}, size {size}: devnets under {work}")
    try:
        report = experiments.load(name)(ctx)
        path = report.write()
    finally:
        if keep_devnets:
            print(f"devnets kept in {shlex.quote(str(work))}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    if as_json:
        emit_json(report.as_json())
    else:
        console.print(f"report: {path}")


COMMANDS = [experiment]

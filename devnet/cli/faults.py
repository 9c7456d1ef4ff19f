"""Fault commands: `devnet kill | pause | resume | partition | byzantine | heal |
restart | delay NAME` break a running devnet on purpose (devnet.faults does the
work), and `devnet faults` lists what is in force."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from devnet import faults, tamper
from devnet.cli.common import DATA_DIR_OPTION, JSON_OPTION, handle_errors, read_manifest, run
from devnet.cli.render import console, emit_json
from devnet.status import link_text, node_note, node_refusals


def _fault_command(verb: str, action: Callable[[Path, str], Any], doc: str) -> click.Command:
    @click.command(verb, help=doc)
    @click.argument("name")
    @DATA_DIR_OPTION
    @JSON_OPTION
    @handle_errors
    def command(name: str, data_dir: Path, as_json: bool) -> None:
        target = faults.resolve_name(data_dir.resolve(), name)
        action(data_dir.resolve(), target)
        if as_json:
            emit_json({"fault": verb, "name": target})
        else:
            click.echo(f"{verb} {target}" + (f" (the {name})" if target != name else ""))

    return command


kill = _fault_command(
    "kill",
    faults.kill,
    "SIGKILL a process (NAME from `devnet status`; with --ha, `leader` or `standby` names"
    " the sequencer replica that has that role now, and etcd-N an etcd member).",
)
pause = _fault_command("pause", faults.pause, "SIGSTOP a process (`leader`, `standby` too).")
resume = _fault_command("resume", faults.resume, "SIGCONT a paused process.")
partition = _fault_command(
    "partition",
    faults.partition,
    "Cut a node off from the sequencer (through the proxy); with --ha, a sequencer replica"
    " (`leader`, `standby` or its name) off from etcd.",
)


@click.command()
@click.argument("mode", type=click.Choice(tamper.MODES), metavar="MODE")
@click.argument("name")
@DATA_DIR_OPTION
@JSON_OPTION
@handle_errors
def byzantine(mode: str, name: str, data_dir: Path, as_json: bool) -> None:
    """Feed node NAME a byzantine block stream through the proxy until `devnet heal NAME`.

    \b
    corrupt         one signature byte of every signed entry flipped, header kept
                    (the node refuses: BAD_COMMITMENT)
    forge-block     blocks re-sealed with a key that is not the sequencer's (BAD_SIGNATURE)
    forge-decision  validly signed blocks with a commit the logged votes do not give
                    (BAD_DECISION)
    equivocate      a second validly signed block for each height: the node keeps the
                    evidence and stops following until `devnet restart NAME`;
                    `devnet check` reports it
    """
    faults.byzantine(data_dir.resolve(), name, mode)
    expected = tamper.EXPECTED_REFUSAL[mode]
    if as_json:
        emit_json({"fault": "byzantine", "mode": mode, "name": name, "expected_refusal": expected})
    else:
        click.echo(
            f"byzantine {mode} {name}: expect `devnet faults` to show {name} refusing ({expected})"
        )


@click.command()
@click.argument("name")
@DATA_DIR_OPTION
@JSON_OPTION
@handle_errors
def heal(name: str, data_dir: Path, as_json: bool) -> None:
    """Lift a partition, delay or byzantine mode from a node's link."""
    was = faults.heal(data_dir.resolve(), name)
    if as_json:
        emit_json({"fault": "heal", "name": name, "lifted": was})
        return
    click.echo(
        f"heal {name}" + (f" (lifted: {link_text(was)})" if was else " (nothing was in force)")
    )
    if was.get("byzantine") == tamper.EQUIVOCATE:
        click.echo(
            f"{name} stops following when it holds evidence of equivocation:"
            f" `devnet restart {name}` resumes it (`devnet check` reports the evidence)"
        )


@click.command()
@click.argument("name")
@DATA_DIR_OPTION
@click.option("--timeout", type=float, default=30.0, show_default=True)
@JSON_OPTION
@handle_errors
def restart(name: str, data_dir: Path, timeout: float, as_json: bool) -> None:
    """Restart a process: same data directory, same port; wait until healthy."""
    rec = faults.restart(data_dir.resolve(), name, timeout)
    if as_json:
        emit_json({"fault": "restart", "name": name, "pid": rec.pid, "endpoint": rec.endpoint})
    else:
        click.echo(f"restarted {name}: pid {rec.pid}, {rec.endpoint}")


@click.command()
@click.argument("name")
@click.argument("ms", type=int)
@DATA_DIR_OPTION
@JSON_OPTION
@handle_errors
def delay(name: str, ms: int, data_dir: Path, as_json: bool) -> None:
    """Delay a node's link to the sequencer by MS milliseconds each way (0 clears)."""
    faults.delay(data_dir.resolve(), name, ms)
    if as_json:
        emit_json({"fault": "delay", "name": name, "ms": ms})
    else:
        click.echo(f"delay {name} {ms} ms")


def read_faults(data_dir: Path) -> list[dict[str, Any]]:
    """Every process with what is in force on it (devnet.faults.list_faults) and,
    for a running node, what it refuses (status.node_refusals)."""
    rows = faults.list_faults(data_dir)
    manifest = read_manifest(data_dir)
    endpoints = {
        r.name: rec.endpoint
        for r in rows
        if r.role == "node" and r.state == "running" and manifest and (rec := manifest.get(r.name))
    }
    refusals = run(node_refusals(endpoints))
    return [{**r.to_json(), **refusals.get(r.name, {})} for r in rows]


@click.command("faults")
@DATA_DIR_OPTION
@click.option(
    "--clear", is_flag=True, help="Resume paused processes, heal every link (byzantine too)."
)
@JSON_OPTION
@handle_errors
def faults_command(data_dir: Path, clear: bool, as_json: bool) -> None:
    """What is in force: dead or paused processes, partitions, delays, byzantine
    links; and what each running node refuses (GetNodeStatus.refusal) or holds as
    evidence of equivocation."""
    data_dir = data_dir.resolve()
    if clear:
        faults.heal_all(data_dir)
    rows = read_faults(data_dir)
    if as_json:
        emit_json({"processes": rows})
        return
    table = Table("name", "role", "pid", "state", "link", "node refuses")
    for r in rows:
        color = {"running": "green", "paused": "yellow", "dead": "red"}[r["state"]]
        table.add_row(
            r["name"],
            r["role"],
            str(r["pid"] or "-"),
            f"[{color}]{r['state']}[/{color}]",
            link_text(r),
            node_note(r) or "-",
        )
    console.print(table)


COMMANDS = (kill, pause, resume, partition, byzantine, heal, restart, delay, faults_command)

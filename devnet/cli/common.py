"""What every `devnet` command shares: its common options, reading the devnet
(devnet.json, genesis) and resolving endpoints from it, parsing accounts and ids,
and turning expected errors into one line and an exit code (1 for what went
wrong at run time, 2 for a bad invocation)."""

from __future__ import annotations

import asyncio
import functools
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
from grpc import aio

from devnet import launcher, network
from devnet.cli.group import echo_error, exit_usage
from devnet.manifest import GENESIS, Manifest, load_manifest
from xrollup.errors import InvalidInput, XrollupError
from xrollup.genesis import Genesis, decode_genesis, dev_genesis
from xrollup.keys import Address, decode_address, derive_dev_account

T = TypeVar("T")
JOURNAL = "journal.jsonl"

DATA_DIR_OPTION = click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=Path(".devnet"),
    show_default=True,
    help="The devnet's directory (devnet.json, genesis, data, logs).",
)
JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON output.")
SEQUENCER_OPTION = click.option(
    "--sequencer",
    "sequencer_endpoint",
    default=None,
    help="Sequencer HOST:PORT (default: from devnet.json).",
)
NODE_OPTION = click.option(
    "--node",
    "node_endpoint",
    default=None,
    help="Rollup node HOST:PORT (default: the rollup's node from devnet.json).",
)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def fail(message: str, code: int = 1) -> NoReturn:
    """Stop with one line on stderr: code 2 (a bad invocation) also names the help."""
    if code == 2:
        exit_usage(message)
    echo_error(message)
    sys.exit(code)


def handle_errors(fn: Callable[..., None]) -> Callable[..., None]:
    """Turn gRPC, domain and launch errors into one clear line and a non-zero exit:
    2 for invalid input, 1 for the rest."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            fn(*args, **kwargs)
        except aio.AioRpcError as e:
            hint = ""
            if e.code().name in ("UNAVAILABLE", "DEADLINE_EXCEEDED"):
                hint = " (is the devnet up? `devnet status`)"
            fail(f"{e.code().name}: {e.details()}{hint}")
        except InvalidInput as e:
            fail(str(e), code=2)
        except XrollupError as e:
            fail(str(e))
        except (launcher.LaunchError, TimeoutError, OSError) as e:
            fail(str(e) or type(e).__name__)

    return wrapper


def read_genesis(data_dir: Path) -> Genesis:
    path = data_dir / GENESIS
    return decode_genesis(path.read_text()) if path.exists() else dev_genesis()


def read_manifest(data_dir: Path) -> Manifest | None:
    return load_manifest(data_dir.resolve())


def resolve_sequencer(data_dir: Path, endpoint: str | None) -> str:
    """--sequencer, else the running sequencer of devnet.json."""
    if endpoint:
        return endpoint
    manifest = read_manifest(data_dir)
    rec = manifest.get("sequencer") if manifest else None
    if rec is None:
        fail(f"no devnet in {data_dir} (run `devnet up`, or pass --sequencer HOST:PORT)")
    if not network.is_running(rec):
        fail("the sequencer is not running (`devnet restart sequencer` starts it)")
    return rec.endpoint


def resolve_node(data_dir: Path, rollup: str, endpoint: str | None) -> str | None:
    """The endpoint of `rollup`'s primary node (a running replica if it is down)."""
    if endpoint:
        return endpoint
    manifest = read_manifest(data_dir)
    if manifest is None:
        return None
    candidates = [p for p in manifest.processes if p.role == "node" and p.rollup == rollup]
    for rec in candidates:
        if network.is_running(rec):
            return rec.endpoint
    return None


def node_or_fail(data_dir: Path, rollup: str, endpoint: str | None) -> str:
    ep = resolve_node(data_dir, rollup, endpoint)
    if ep is None:
        if read_manifest(data_dir) is None:
            fail(f"no devnet in {data_dir} (run `devnet up`, or pass --node HOST:PORT)")
        fail(f"no running node for rollup {rollup!r} (`devnet status`, or pass --node HOST:PORT)")
    return ep


def parse_account(text: str) -> Address:
    """A dev account index (0..) or a 0x address."""
    if text.isdigit():
        return derive_dev_account(int(text)).address
    return decode_address(text)


def parse_id(text: str) -> bytes:
    """A 32-byte id in hex (0x optional)."""
    try:
        raw = bytes.fromhex(text.removeprefix("0x"))
    except ValueError:
        raw = b""
    if len(raw) != 32:
        fail(f"{text!r} is not a 32-byte hex id", code=2)
    return raw


def asset_decimals(genesis: Genesis, symbol: str) -> int:
    asset = genesis.get_asset(symbol)
    if asset is None:
        known = ", ".join(a.symbol for a in genesis.assets)
        fail(f"unknown asset {symbol!r} (assets of genesis: {known})", code=2)
    return asset.decimals

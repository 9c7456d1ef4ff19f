"""What every `devnet` command shares: its common options, reading the devnet
(devnet.json, genesis) and resolving endpoints and rollups from it, reading and
writing amounts (Units), parsing accounts and ids, and turning expected errors
into one line and an exit code (1 for what went wrong at run time, 2 for a bad
invocation)."""

from __future__ import annotations

import asyncio
import functools
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
from grpc import aio

from devnet import launcher, network
from devnet.cli.group import echo_error, exit_usage
from devnet.manifest import GENESIS, Manifest, load_manifest
from xrollup.amounts import format_units, parse_units
from xrollup.endpoints import parse_endpoints
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
    metavar="HOST:PORT[,...]",
    help="Sequencer HOST:PORT, or its replicas' as a comma-separated list: calls go to"
    " the first that answers (default: every running sequencer of devnet.json).",
)
BASE_UNITS_OPTION = click.option(
    "--base-units",
    is_flag=True,
    help="Amounts in and out as integers of base units, for scripts (default: decimals"
    " in the asset's units, e.g. 2.5 USDC; in --json, decimal strings).",
)
NODE_OPTION = click.option(
    "--node",
    "node_endpoint",
    default=None,
    metavar="HOST:PORT",
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
    """The devnet's genesis, or the embedded dev genesis when it has none yet."""
    path = data_dir / GENESIS
    if not path.exists():
        return dev_genesis()
    try:
        return decode_genesis(path.read_text())
    except InvalidInput as e:
        fail(f"{path}: {e}")


def read_manifest(data_dir: Path) -> Manifest | None:
    """devnet.json of `data_dir`, None when there is none; exit 1 when unreadable."""
    try:
        return load_manifest(data_dir.resolve())
    except (ValueError, KeyError, TypeError) as e:
        fail(f"devnet.json in {data_dir} is unreadable ({type(e).__name__}: {e})")


def resolve_sequencer(data_dir: Path, endpoint: str | None) -> str:
    """--sequencer (checked: HOST:PORT or a list of them), else the running
    sequencers of devnet.json (its replicas, when it has several) as one list,
    "A,B,C", which xrollup.client.Client takes."""
    if endpoint:
        try:
            parse_endpoints(endpoint)
        except InvalidInput as e:
            fail(f"--sequencer: {e}", code=2)
        return endpoint
    manifest = read_manifest(data_dir)
    recs = [p for p in manifest.processes if p.role == "sequencer"] if manifest else []
    if not recs:
        fail(f"no devnet in {data_dir} (run `devnet up`, or pass --sequencer HOST:PORT)")
    running = [p.endpoint for p in recs if network.is_running(p)]
    if not running:
        fail("the sequencer is not running (`devnet restart sequencer` starts it)")
    return ",".join(running)


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


def parse_dev_index(text: str, flag: str) -> int:
    """A dev account index (0, 1, ...): the CLI signs only with dev keys."""
    if not (text.isascii() and text.isdigit()):
        fail(f"{flag} {text!r} is not a dev account index (the CLI holds only dev keys)", 2)
    return int(text)


def parse_account(text: str, flag: str) -> Address:
    """A dev account index (0..) or a 0x address."""
    if text.isascii() and text.isdigit():
        return derive_dev_account(int(text)).address
    try:
        return decode_address(text)
    except InvalidInput as e:
        fail(f"{flag}: {e} (want a dev account index or a 0x address of 20 bytes)", code=2)


def parse_id(text: str) -> bytes:
    """A 32-byte id in hex (0x optional)."""
    try:
        raw = bytes.fromhex(text.removeprefix("0x"))
    except ValueError:
        raw = b""
    if len(raw) != 32:
        fail(f"{text!r} is not a 32-byte hex id", code=2)
    return raw


def pick_rollup(genesis: Genesis, name: str | None, flag: str, default: str = "") -> str:
    """`name` given by `flag` if it is a rollup of genesis (else exit 2), or `default`."""
    if name is None:
        return default
    if genesis.get_rollup(name) is None:
        known = ", ".join(genesis.rollup_names)
        fail(f"unknown rollup {name!r} for {flag} (rollups of genesis: {known})", code=2)
    return name


def asset_decimals(genesis: Genesis, symbol: str) -> int:
    asset = genesis.get_asset(symbol)
    if asset is None:
        known = ", ".join(a.symbol for a in genesis.assets)
        fail(f"unknown asset {symbol!r} (assets of genesis: {known})", code=2)
    return asset.decimals


@dataclass(frozen=True)
class Units:
    """How one invocation reads and writes amounts of genesis assets: decimals in
    the asset's units by default ('2.5' USDC is 2500000 base units; --json gives
    decimal strings), integers of base units with --base-units (--json gives JSON
    integers). Parsing is exact (devnet.amounts, never floats): more decimals than
    the asset has, a non-number or an amount over genesis's limit is exit 2."""

    genesis: Genesis
    base_units: bool = False

    def parse(self, text: str, asset: str, flag: str) -> int:
        decimals = asset_decimals(self.genesis, asset)
        if self.base_units:
            if not (text.isascii() and text.isdigit()):
                fail(f"{flag} {text!r} is not an integer of base units (--base-units)", code=2)
            value = int(text)
        else:
            try:
                value = parse_units(text, decimals, flag)
            except InvalidInput as e:
                fail(f"{e} (an amount of {asset}, which has {decimals} decimals)", code=2)
        if value > self.genesis.limits.max_amount:
            top = self.text(self.genesis.limits.max_amount, asset)
            fail(f"{flag} {text!r} is over the largest amount genesis allows ({top})", code=2)
        return value

    def parse_positive(self, text: str, asset: str, flag: str) -> int:
        value = self.parse(text, asset, flag)
        if value == 0:
            fail(f"{flag} must be more than 0", code=2)
        return value

    def json(self, amount: int, asset: str) -> str | int:
        """An amount in --json output: '2.5', or 2500000 with --base-units."""
        if self.base_units:
            return int(amount)
        return format_units(amount, asset_decimals(self.genesis, asset), grouping=False)

    def text(self, amount: int, asset: str, symbol: bool = True) -> str:
        """An amount for people: '1,000,000.5 USDC', or '1000000500000 USDC base units'."""
        if self.base_units:
            shown = f"{int(amount)}" + (f" {asset} base units" if symbol else "")
        else:
            shown = format_units(amount, asset_decimals(self.genesis, asset))
            shown += f" {asset}" if symbol else ""
        return shown

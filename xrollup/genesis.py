"""Genesis: the rollups and their vote keys, the oracle key, assets, the block
interval, the limits and the dev allocations. Stored as JSON; `dev_genesis()` is
the embedded default every devnet starts from (`dev_genesis(rollups=...)` the same
over other rollups). `decode_genesis` refuses what it does not know (unknown keys,
wrong JSON types) and `validate_genesis` what cannot run (the rules below), each
error naming the field and what is wrong."""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import re
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import blake3

from xrollup.errors import InvalidInput
from xrollup.keys import (
    ADDRESS_LEN,
    Address,
    decode_address,
    derive_dev_account,
    derive_oracle_key,
    derive_rollup_vote_key,
    derive_sequencer_key,
    encode_address,
)

DEV_CHAIN_ID = "xrollup-devnet-1"
DEV_ACCOUNT_COUNT = 10
DEV_ROLLUPS = ("alpha", "beta")
# `compute_rollup_names`: the Greek letters in order, then round again with a suffix.
GREEK = (
    "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta",
    "iota", "kappa", "lambda", "mu", "nu", "xi", "omicron", "pi",
    "rho", "sigma", "tau", "upsilon", "phi", "chi", "psi", "omega",
)  # fmt: skip

# What validate_genesis allows.
MAX_ROLLUPS = 64  # one node process each
MAX_ASSETS = 64
MAX_DECIMALS = 18  # one whole unit, 10**18, still fits 64 bits
MAX_BLOCK_INTERVAL_MS = 60_000
MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # what the client library's channels accept
STREAM_HEADROOM_BYTES = 64 * 1024  # a block's header and framing under max_message_bytes
UINT64_MAX = 2**64 - 1
ROLLUP_NAME = re.compile(r"[a-z][a-z0-9-]{0,31}")
ASSET_SYMBOL = re.compile(r"[A-Z][A-Z0-9]{0,9}")
CHAIN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# A rollup's node is a process named after it, with a directory and a log of that
# name in the devnet directory: no rollup may take another process's or folder's name.
RESERVED_NAMES = frozenset({"sequencer", "proxy", "explorer", "logs", "snapshots", "protocol"})
REPLICA_SUFFIX = "-replica"


@dataclass(frozen=True)
class Limits:
    """Bounds on everything a client can send or make the sequencer hold."""

    max_body_bytes: int = 4096
    max_signatures: int = 8
    max_legs: int = 8
    max_batch: int = 1000
    max_pool: int = 50_000
    max_block_entries: int = 5_000
    # A block's entries in bytes: the sequencer seals under it, nodes refuse a block
    # over it, and it leaves room under max_message_bytes so a block always streams.
    max_block_bytes: int = 2 * 1024 * 1024
    max_expiry_window: int = 100_000
    max_amount: int = 2**63 - 1
    max_message_bytes: int = 4 * 1024 * 1024
    max_subscribers: int = 256
    bundle_deadline_blocks: int = (
        50  # abort a bundle this many blocks after it, if a vote is missing
    )
    # An option's holder may settle until expiry + this many blocks; from then on the
    # lien's owner may reclaim it on its own rollup (docs/exits.md).
    lien_grace_blocks: int = 500
    # Finished bundle records, released or reclaimed liens, settled or unclaimable
    # options leave the state this many blocks after they became final, on every node
    # alike (rollup_node/core/retention.py); 0 keeps them all.
    record_retention_blocks: int = 10_000


@dataclass(frozen=True)
class Asset:
    symbol: str
    decimals: int


@dataclass(frozen=True)
class Rollup:
    name: str
    vote_key: bytes  # Ed25519 public key that signs this rollup's votes


@dataclass(frozen=True)
class Allocation:
    rollup: str
    address: Address
    asset: str
    amount: int


@dataclass(frozen=True)
class Genesis:
    chain_id: str
    block_interval_ms: int
    rollups: tuple[Rollup, ...]
    oracle_key: bytes
    assets: tuple[Asset, ...]
    allocations: tuple[Allocation, ...]
    sequencer_key: bytes  # Ed25519 public key that signs block headers
    limits: Limits = field(default_factory=Limits)

    @property
    def rollup_names(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.rollups)

    def get_rollup(self, name: str) -> Rollup | None:
        for r in self.rollups:
            if r.name == name:
                return r
        return None

    def get_asset(self, symbol: str) -> Asset | None:
        for a in self.assets:
            if a.symbol == symbol:
                return a
        return None


def compute_option_rollups(genesis: Genesis) -> tuple[str, str]:
    """(option rollup, collateral rollup): the one rule every tool uses when it is not
    told which rollups an option spans. The option lives on the last rollup of
    genesis and locks its collateral on the first other one; oracle prices go to the
    option rollup (the dev genesis: beta and alpha). An option spans two rollups, so
    a genesis with one has no such pair: InvalidInput."""
    names = genesis.rollup_names
    if len(names) < 2:
        raise InvalidInput(
            f"genesis has one rollup ({', '.join(names)}): an option needs two, its own"
            " and its collateral's"
        )
    return names[-1], names[0]


def compute_rollup_names(count: int) -> tuple[str, ...]:
    """`count` rollup names for `devnet up --rollups N`: the Greek letters in order
    (alpha, beta, gamma, delta, epsilon, ..., omega), then round again with a
    suffix (alpha-2, beta-2, ...)."""
    if not 1 <= count <= MAX_ROLLUPS:
        raise InvalidInput(f"a devnet has 1 to {MAX_ROLLUPS} rollups, not {count}")
    n = len(GREEK)
    return tuple(GREEK[i % n] + (f"-{i // n + 1}" if i >= n else "") for i in range(count))


def dev_genesis(block_interval_ms: int = 20, rollups: Sequence[str] = DEV_ROLLUPS) -> Genesis:
    """The embedded default: rollups alpha (collateral) and beta (options), USDC
    (6 decimals) and ETH (9 decimals, so amounts fit in 64 bits), and ten dev
    accounts each holding 1,000,000 USDC and 1,000 ETH on every rollup. With
    `rollups`, the same over those rollups (vote keys derived from their names, as
    the nodes derive them); the caller validates the names."""
    parts = tuple(Rollup(n, derive_rollup_vote_key(n).public_key) for n in rollups)
    assets = (Asset("USDC", 6), Asset("ETH", 9))
    allocations = tuple(
        Allocation(r.name, derive_dev_account(i).address, a.symbol, amount)
        for i in range(DEV_ACCOUNT_COUNT)
        for r in parts
        for a, amount in ((assets[0], 1_000_000 * 10**6), (assets[1], 1_000 * 10**9))
    )
    return Genesis(
        chain_id=DEV_CHAIN_ID,
        block_interval_ms=block_interval_ms,
        rollups=parts,
        oracle_key=derive_oracle_key().public_key,
        assets=assets,
        allocations=allocations,
        sequencer_key=derive_sequencer_key().public_key,
    )


def encode_genesis(genesis: Genesis) -> str:
    """Genesis as canonical, human-readable JSON (amounts as strings)."""
    doc: dict[str, Any] = {
        "chain_id": genesis.chain_id,
        "block_interval_ms": genesis.block_interval_ms,
        "rollups": [{"name": r.name, "vote_key": r.vote_key.hex()} for r in genesis.rollups],
        "oracle_key": genesis.oracle_key.hex(),
        "sequencer_key": genesis.sequencer_key.hex(),
        "assets": [asdict(a) for a in genesis.assets],
        "limits": asdict(genesis.limits),
        "allocations": [
            {
                "rollup": a.rollup,
                "address": encode_address(a.address),
                "asset": a.asset,
                "amount": str(a.amount),
            }
            for a in genesis.allocations
        ],
    }
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def decode_genesis(text: str) -> Genesis:
    """Parse and validate genesis JSON; raises InvalidInput naming the field and
    what is wrong. Every object's keys are known ones (a typo is refused, never
    ignored); `limits` and `allocations` may be left out (defaults, none), as may
    any single limit."""
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise InvalidInput(f"genesis is not JSON: {e}") from None
    top = _fields(doc, "genesis", _GENESIS_KEYS, ("limits", "allocations"))
    limits_doc = _fields(top.get("limits", {}), "genesis.limits", (), _LIMIT_KEYS)
    limits = Limits(**{k: _int(v, f"genesis.limits.{k}") for k, v in limits_doc.items()})
    rollups = tuple(
        _decode_rollup(r, f"genesis.rollups[{i}]")
        for i, r in enumerate(_list(top["rollups"], "genesis.rollups"))
    )
    assets = tuple(
        _decode_asset(a, f"genesis.assets[{i}]")
        for i, a in enumerate(_list(top["assets"], "genesis.assets"))
    )
    allocations = tuple(
        _decode_allocation(a, f"genesis.allocations[{i}]")
        for i, a in enumerate(_list(top.get("allocations", []), "genesis.allocations"))
    )
    genesis = Genesis(
        chain_id=_str(top["chain_id"], "genesis.chain_id"),
        block_interval_ms=_int(top["block_interval_ms"], "genesis.block_interval_ms"),
        rollups=rollups,
        oracle_key=_key(top["oracle_key"], "genesis.oracle_key"),
        assets=assets,
        allocations=allocations,
        sequencer_key=_key(top["sequencer_key"], "genesis.sequencer_key"),
        limits=limits,
    )
    validate_genesis(genesis)
    return genesis


_GENESIS_KEYS = (
    "chain_id",
    "block_interval_ms",
    "rollups",
    "oracle_key",
    "sequencer_key",
    "assets",
)
_LIMIT_KEYS = tuple(f.name for f in dataclasses.fields(Limits))


def _decode_rollup(value: Any, what: str) -> Rollup:
    r = _fields(value, what, ("name", "vote_key"))
    return Rollup(_str(r["name"], f"{what}.name"), _key(r["vote_key"], f"{what}.vote_key"))


def _decode_asset(value: Any, what: str) -> Asset:
    a = _fields(value, what, ("symbol", "decimals"))
    return Asset(_str(a["symbol"], f"{what}.symbol"), _int(a["decimals"], f"{what}.decimals"))


def _decode_allocation(value: Any, what: str) -> Allocation:
    a = _fields(value, what, ("rollup", "address", "asset", "amount"))
    return Allocation(
        _str(a["rollup"], f"{what}.rollup"),
        _address(a["address"], f"{what}.address"),
        _str(a["asset"], f"{what}.asset"),
        _amount(a["amount"], f"{what}.amount"),
    )


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    names = {dict: "an object", list: "a list", str: "a string", int: "an integer"}
    return names.get(type(value), "a number")


def _fields(
    value: Any, what: str, required: Collection[str], optional: Collection[str] = ()
) -> dict[str, Any]:
    """`value` as a JSON object holding every required key and no unknown one."""
    if not isinstance(value, dict):
        raise InvalidInput(f"{what} must be an object, not {_json_type(value)}")
    known = [*required, *optional]
    for key in value:
        if key not in known:
            near = difflib.get_close_matches(key, known, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else f" (known: {', '.join(known)})"
            raise InvalidInput(f"{what}: unknown key {key!r}{hint}")
    for key in required:
        if key not in value:
            raise InvalidInput(f"{what}: missing key {key!r}")
    return value


def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise InvalidInput(f"{what} must be a list, not {_json_type(value)}")
    return value


def _str(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be a string, not {_json_type(value)}")
    return value


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{what} must be an integer, not {_json_type(value)}")
    return value


def _amount(value: Any, what: str) -> int:
    """Base units: a string of decimal digits (as encode_genesis writes) or an integer."""
    if isinstance(value, str) and value.isascii() and value.isdigit():
        if len(value) > 40:
            raise InvalidInput(f"{what} has {len(value)} digits: over 64 bits")
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    shown = repr(value[:40]) if isinstance(value, str) else _json_type(value)
    raise InvalidInput(f"{what} must be an integer of base units (a string of digits), not {shown}")


def _key(value: Any, what: str) -> bytes:
    """An Ed25519 public key: 64 hex digits."""
    text = _str(value, what)
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise InvalidInput(
            f"{what} must be 64 hex digits (a 32-byte Ed25519 public key), not {text[:80]!r}"
        )
    return raw


def _address(value: Any, what: str) -> Address:
    try:
        return decode_address(_str(value, what))
    except InvalidInput as e:
        raise InvalidInput(f"{what}: {e}") from None


def validate_genesis(genesis: Genesis) -> None:
    """What a genesis must be to run; raises InvalidInput naming the field:
    chain_id of 1 to 64 letters, digits, '.', '_' or '-'; a block interval within
    1..60000 ms; 1 to 64 rollups with unique well-formed names (lower case, see
    validate_rollup_name) and 32-byte vote keys; 32-byte oracle and sequencer keys;
    every limit positive and consistent (validate_limits); 1 to 64 assets with
    unique well-formed symbols (upper case, up to 10 characters) and 0..18
    decimals; allocations of known rollups and assets, none repeated, and per
    rollup and asset a total supply within limits.max_amount (so within 64 bits)."""
    if not CHAIN_ID.fullmatch(genesis.chain_id):
        raise InvalidInput(
            f"genesis.chain_id {genesis.chain_id[:80]!r} is not well-formed: 1 to 64 letters,"
            " digits, '.', '_' or '-', starting with a letter or digit"
        )
    if not 1 <= genesis.block_interval_ms <= MAX_BLOCK_INTERVAL_MS:
        raise InvalidInput(
            f"genesis.block_interval_ms is {genesis.block_interval_ms}: must be within"
            f" 1..{MAX_BLOCK_INTERVAL_MS}"
        )
    validate_rollup_names(genesis.rollup_names, "genesis.rollups")
    for i, r in enumerate(genesis.rollups):
        if len(r.vote_key) != 32:
            raise InvalidInput(f"genesis.rollups[{i}].vote_key ({r.name}) is not 32 bytes")
    if len(genesis.oracle_key) != 32:
        raise InvalidInput("genesis.oracle_key is not 32 bytes")
    if len(genesis.sequencer_key) != 32:
        raise InvalidInput("genesis.sequencer_key is not 32 bytes")
    validate_limits(genesis.limits)
    _validate_assets(genesis)
    _validate_allocations(genesis)


def validate_rollup_name(name: str, what: str) -> None:
    """A rollup's name names its node process, directory and log in the devnet
    directory: a lower-case letter, then up to 31 lower-case letters, digits or
    '-'; not the name of another process or folder (RESERVED_NAMES), and not
    ending in '-replica' (a replica's process name)."""
    if not ROLLUP_NAME.fullmatch(name):
        raise InvalidInput(
            f"{what} {name[:80]!r} is not a well-formed rollup name: a lower-case letter,"
            " then up to 31 lower-case letters, digits or '-'"
        )
    if name in RESERVED_NAMES:
        raise InvalidInput(
            f"{what} {name!r} is taken by the devnet"
            f" (reserved: {', '.join(sorted(RESERVED_NAMES))})"
        )
    if name.endswith(REPLICA_SUFFIX):
        raise InvalidInput(
            f"{what} {name!r} ends in {REPLICA_SUFFIX!r}, which names a rollup's replica node"
        )


def validate_rollup_names(names: Sequence[str], what: str) -> None:
    """1 to MAX_ROLLUPS unique, well-formed rollup names."""
    if not 1 <= len(names) <= MAX_ROLLUPS:
        raise InvalidInput(f"{what}: a genesis has 1 to {MAX_ROLLUPS} rollups, not {len(names)}")
    seen: set[str] = set()
    for i, name in enumerate(names):
        validate_rollup_name(name, f"{what}[{i}].name")
        if name in seen:
            raise InvalidInput(f"{what}[{i}].name {name!r} is a second rollup of that name")
        seen.add(name)


ZERO_MEANS_OFF = ("record_retention_blocks",)  # limits that may be 0: off


def validate_limits(limits: Limits) -> None:
    """Every limit a positive integer (max_amount within 64 bits; the retention of
    finished records may be 0, keeping them all), and consistent:
    a submission fits a block (max_body_bytes < max_block_bytes), and a block fits
    one stream message with 64 KiB to spare, at most 64 MiB (what clients accept)."""
    for f in dataclasses.fields(limits):
        value = getattr(limits, f.name)
        top = UINT64_MAX if f.name == "max_amount" else 2**63 - 1
        low = 0 if f.name in ZERO_MEANS_OFF else 1
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= top:
            raise InvalidInput(
                f"genesis.limits.{f.name} is {value!r}: must be within {low}..{top}"
                + (" (0 keeps every record)" if low == 0 else "")
            )
    if limits.max_message_bytes > MAX_MESSAGE_BYTES:
        raise InvalidInput(
            f"genesis.limits.max_message_bytes is {limits.max_message_bytes}: at most"
            f" {MAX_MESSAGE_BYTES} (64 MiB, what the client library accepts)"
        )
    if limits.max_block_bytes > limits.max_message_bytes - STREAM_HEADROOM_BYTES:
        raise InvalidInput(
            f"genesis.limits.max_block_bytes is {limits.max_block_bytes}: it must leave 64 KiB"
            f" under limits.max_message_bytes ({limits.max_message_bytes}), so that a block"
            " fits one stream message"
        )
    if limits.max_body_bytes >= limits.max_block_bytes:
        raise InvalidInput(
            f"genesis.limits.max_body_bytes is {limits.max_body_bytes}: it must be under"
            f" limits.max_block_bytes ({limits.max_block_bytes}), so that a submission fits"
            " a block"
        )


def _validate_assets(genesis: Genesis) -> None:
    if not 1 <= len(genesis.assets) <= MAX_ASSETS:
        raise InvalidInput(
            f"genesis.assets: a genesis has 1 to {MAX_ASSETS} assets, not {len(genesis.assets)}"
        )
    seen: set[str] = set()
    for i, a in enumerate(genesis.assets):
        what = f"genesis.assets[{i}]"
        if not ASSET_SYMBOL.fullmatch(a.symbol):
            raise InvalidInput(
                f"{what}.symbol {a.symbol[:80]!r} is not well-formed: an upper-case letter,"
                " then up to 9 upper-case letters or digits"
            )
        if a.symbol in seen:
            raise InvalidInput(f"{what}.symbol {a.symbol!r} is a second asset of that symbol")
        seen.add(a.symbol)
        if not 0 <= a.decimals <= MAX_DECIMALS:
            raise InvalidInput(
                f"{what}.decimals of {a.symbol} is {a.decimals}: must be within 0..{MAX_DECIMALS}"
            )
        if 10**a.decimals > genesis.limits.max_amount:
            raise InvalidInput(
                f"{what}.decimals of {a.symbol} is {a.decimals}: one whole {a.symbol}"
                f" (10^{a.decimals} base units) is over limits.max_amount"
                f" ({genesis.limits.max_amount})"
            )


def _validate_allocations(genesis: Genesis) -> None:
    names = genesis.rollup_names
    symbols = [a.symbol for a in genesis.assets]
    max_amount = genesis.limits.max_amount
    first: dict[tuple[str, Address, str], int] = {}
    totals: dict[tuple[str, str], int] = {}
    for i, a in enumerate(genesis.allocations):
        what = f"genesis.allocations[{i}]"
        if a.rollup not in names:
            raise InvalidInput(
                f"{what}.rollup {a.rollup!r} is not a rollup of genesis ({', '.join(names)})"
            )
        if a.asset not in symbols:
            raise InvalidInput(
                f"{what}.asset {a.asset!r} is not an asset of genesis ({', '.join(symbols)})"
            )
        if len(a.address) != ADDRESS_LEN:
            raise InvalidInput(f"{what}.address is not {ADDRESS_LEN} bytes")
        if not 0 <= a.amount <= max_amount:
            raise InvalidInput(
                f"{what}.amount is {a.amount}: must be within 0..{max_amount}"
                " (limits.max_amount, in base units)"
            )
        key = (a.rollup, a.address, a.asset)
        if key in first:
            raise InvalidInput(
                f"{what} repeats allocations[{first[key]}] ({a.asset} of"
                f" {encode_address(a.address)} on {a.rollup}): give one amount"
            )
        first[key] = i
        total = totals[a.rollup, a.asset] = totals.get((a.rollup, a.asset), 0) + a.amount
        if total > max_amount:
            raise InvalidInput(
                f"{what}: the supply of {a.asset} on {a.rollup} reaches {total} base units,"
                f" over limits.max_amount ({max_amount}): a supply must fit 64 bits"
            )


def validate_dev_keys(genesis: Genesis) -> None:
    """`devnet up` starts the sequencer and every node with their dev keys (xrollup.keys:
    derive_sequencer_key, derive_rollup_vote_key of the rollup's name), so a genesis
    naming other keys cannot run there: InvalidInput naming the key. Other keys need
    the processes started by hand (`python -m sequencer --sequencer-key FILE`,
    `python -m rollup_node --vote-key FILE`)."""
    if genesis.sequencer_key != derive_sequencer_key().public_key:
        raise InvalidInput(
            "genesis.sequencer_key is not the dev sequencer key"
            " (xrollup.keys.derive_sequencer_key): devnet up signs blocks with the dev key"
            " only (python -m sequencer --sequencer-key FILE runs another)"
        )
    for i, r in enumerate(genesis.rollups):
        if r.vote_key != derive_rollup_vote_key(r.name).public_key:
            raise InvalidInput(
                f"genesis.rollups[{i}].vote_key of rollup {r.name!r} is not its dev vote key"
                f" ({derive_rollup_vote_key(r.name).public_key.hex()}, derived from the name"
                " by xrollup.keys.derive_rollup_vote_key): devnet up runs nodes with dev vote"
                " keys only (python -m rollup_node --vote-key FILE runs another)"
            )


@functools.lru_cache(maxsize=16)
def compute_genesis_hash(genesis: Genesis) -> bytes:
    """blake3 of the canonical genesis JSON: binds votes and block signatures to
    this chain, so neither counts on another devnet. The block interval is left
    out: it is the sequencer's pace (`--block-interval-ms` overrides it), not
    something any state or signature depends on."""
    consensus = replace(genesis, block_interval_ms=1)
    return blake3.blake3(encode_genesis(consensus).encode()).digest()


def load_genesis(path: Path | None) -> Genesis:
    """Read genesis from a file, or the embedded dev genesis when path is None."""
    if path is None:
        return dev_genesis()
    try:
        text = path.read_text()
    except OSError as e:
        raise InvalidInput(f"cannot read genesis {path}: {e}") from None
    return decode_genesis(text)

"""Genesis: the rollups and their vote keys, the oracle key, assets, the block
interval, the limits and the dev allocations. Stored as JSON; `dev_genesis()` is
the embedded default every devnet starts from."""

from __future__ import annotations

import functools
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import blake3

from xrollup.errors import InvalidInput
from xrollup.keys import (
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


def dev_genesis(block_interval_ms: int = 20) -> Genesis:
    """The embedded default: rollups alpha (collateral) and beta (options), USDC
    (6 decimals) and ETH (9 decimals, so amounts fit in 64 bits), and ten dev
    accounts each holding 1,000,000 USDC and 1,000 ETH on both rollups."""
    rollups = tuple(Rollup(n, derive_rollup_vote_key(n).public_key) for n in ("alpha", "beta"))
    assets = (Asset("USDC", 6), Asset("ETH", 9))
    allocations = tuple(
        Allocation(r.name, derive_dev_account(i).address, a.symbol, amount)
        for i in range(DEV_ACCOUNT_COUNT)
        for r in rollups
        for a, amount in ((assets[0], 1_000_000 * 10**6), (assets[1], 1_000 * 10**9))
    )
    return Genesis(
        chain_id=DEV_CHAIN_ID,
        block_interval_ms=block_interval_ms,
        rollups=rollups,
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
    """Parse and validate genesis JSON; raises InvalidInput saying what is wrong."""
    try:
        doc = json.loads(text)
        limits = Limits(**doc.get("limits", {}))
        rollups = tuple(Rollup(r["name"], bytes.fromhex(r["vote_key"])) for r in doc["rollups"])
        assets = tuple(Asset(a["symbol"], int(a["decimals"])) for a in doc["assets"])
        allocations = tuple(
            Allocation(a["rollup"], decode_address(a["address"]), a["asset"], int(a["amount"]))
            for a in doc.get("allocations", [])
        )
        genesis = Genesis(
            chain_id=str(doc["chain_id"]),
            block_interval_ms=int(doc["block_interval_ms"]),
            rollups=rollups,
            oracle_key=bytes.fromhex(doc["oracle_key"]),
            assets=assets,
            allocations=allocations,
            sequencer_key=bytes.fromhex(doc["sequencer_key"]),
            limits=limits,
        )
    except (KeyError, TypeError, ValueError) as e:
        raise InvalidInput(f"genesis is malformed: {type(e).__name__}: {e}") from None
    validate_genesis(genesis)
    return genesis


def validate_genesis(genesis: Genesis) -> None:
    if not genesis.chain_id:
        raise InvalidInput("genesis: chain_id is empty")
    if not 1 <= genesis.block_interval_ms <= 60_000:
        raise InvalidInput("genesis: block_interval_ms must be within 1..60000")
    names = genesis.rollup_names
    if not names or len(set(names)) != len(names):
        raise InvalidInput("genesis: rollup names must be present and unique")
    for r in genesis.rollups:
        if len(r.vote_key) != 32:
            raise InvalidInput(f"genesis: vote key of rollup {r.name!r} is not 32 bytes")
    if len(genesis.oracle_key) != 32:
        raise InvalidInput("genesis: oracle_key is not 32 bytes")
    if len(genesis.sequencer_key) != 32:
        raise InvalidInput("genesis: sequencer_key is not 32 bytes")
    lim = genesis.limits
    if not 0 < lim.max_block_bytes <= lim.max_message_bytes - 64 * 1024:
        raise InvalidInput(
            "genesis: limits.max_block_bytes must be positive and leave 64 KiB under"
            " limits.max_message_bytes (a block must fit one stream message)"
        )
    if lim.lien_grace_blocks <= 0 or lim.bundle_deadline_blocks <= 0:
        raise InvalidInput(
            "genesis: limits.lien_grace_blocks and bundle_deadline_blocks must be positive"
        )
    symbols = {a.symbol for a in genesis.assets}
    for a in genesis.allocations:
        if a.rollup not in names or a.asset not in symbols:
            raise InvalidInput(f"genesis: allocation names unknown rollup or asset: {a}")
        if not 0 <= a.amount <= genesis.limits.max_amount:
            raise InvalidInput(f"genesis: allocation amount out of range: {a}")


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

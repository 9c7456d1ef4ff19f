"""The capital experiment's bridge: a lock-and-mint bridge from alpha (USDC) to
beta (wrapped USDC, symbol WUSDC) made of plain transfers, so it needs no
protocol change, and a relayer that waits a finality delay of D blocks.

- genesis (`bridge_genesis`): the dev genesis plus the asset WUSDC, whose whole
  supply is a reserve held by the bridge's RESERVE account on beta;
- lock: the trader transfers USDC to the bridge's VAULT account on alpha;
- mint: the relayer, D blocks after the lock was ordered, transfers as much
  WUSDC out of the reserve to the trader on beta;
- burn: the trader transfers WUSDC back to the reserve on beta;
- unlock: the relayer, D blocks after the burn was ordered, transfers as much
  USDC from the vault to the trader on alpha.

Every rollup's supply of every asset stays what genesis minted (I2 needs no mint
rule), and the wrapped supply in circulation (the reserve's genesis amount minus
what it holds) equals what the vault holds whenever nothing is in transit
(`read_books`). The relayer learns of locks and burns from the ordered log, not
from the trader: `Chain` follows the sequencer's block stream and hands every
block to it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from xrollup import codec
from xrollup.client import Client, NodeClient, Submitted, build_transfer
from xrollup.genesis import Allocation, Asset, Genesis, dev_genesis
from xrollup.keys import derive_keypair
from xrollup.model import Decision, Entry, Transfer, Tx, Vote

SOURCE, DEST = "alpha", "beta"  # the bridge's two sides: collateral home, options rollup
ASSET, WRAPPED = "USDC", "WUSDC"  # WUSDC is the report's wUSDC (symbols are upper case)
VAULT = derive_keypair("capital/bridge-vault")  # holds the locked USDC on alpha
RESERVE = derive_keypair("capital/bridge-reserve")  # holds the un-minted WUSDC on beta
RESERVE_SUPPLY = 10_000_000 * 10**6  # 10 M WUSDC: more than any run mints
EXPIRY_BLOCKS = 3_000  # every submission's expiry: far past its ordering
STALL_S = 20.0  # no new block for this long: the devnet is stuck, give up
SUBMIT_TIMEOUT_S = 30.0


def bridge_genesis(block_interval_ms: int) -> Genesis:
    """The dev genesis (alpha, beta, USDC, ETH, ten funded dev accounts) with
    WUSDC added: 6 decimals like USDC, all of it in the reserve on beta."""
    g = dev_genesis(block_interval_ms)
    return replace(
        g,
        assets=(*g.assets, Asset(WRAPPED, 6)),
        allocations=(
            *g.allocations,
            Allocation(DEST, RESERVE.address, WRAPPED, RESERVE_SUPPLY),
        ),
    )


# ---------------------------------------------------------------- the log as it grows


class Chain:
    """The sequencer's log from a height on: the head, every bundle's decision
    (its height and outcome) and the rollup votes on it, and each block's
    entries to the listeners."""

    def __init__(self, client: Client, from_height: int) -> None:
        self.client = client
        self.head = from_height - 1
        self.decided: dict[bytes, tuple[int, bool]] = {}
        self.votes: dict[bytes, int] = {}  # bundle id -> rollup votes on it in the log
        self.listeners: list[Callable[[int, Sequence[Entry]], None]] = []
        self._tick = asyncio.Event()

    async def run(self) -> None:
        async for msg in self.client.follow(self.head + 1):
            height = int(msg.header.height)
            entries = codec.decode_block(msg).entries
            for e in entries:
                if isinstance(e, Decision):
                    self.decided[e.bundle_id] = (height, e.commit)
                elif isinstance(e, Vote):
                    for v in e.body.votes:
                        self.votes[v.bundle_id] = self.votes.get(v.bundle_id, 0) + 1
            for listen in self.listeners:
                listen(height, entries)
            self.head = height
            self._tick.set()
            self._tick = asyncio.Event()

    async def next_block(self) -> int:
        await asyncio.wait_for(self._tick.wait(), STALL_S)
        return self.head

    async def wait_height(self, height: int) -> int:
        """The head once it is at `height` or past it."""
        while self.head < height:
            await self.next_block()
        return self.head

    async def wait_decided(self, bundle_id: bytes) -> tuple[int, bool]:
        """(the height of the bundle's decision in the log, committed?)."""
        while bundle_id not in self.decided:
            await self.next_block()
        return self.decided[bundle_id]


# ---------------------------------------------------------------- the relayer


@dataclass(frozen=True)
class Crossing:
    """One relayed transfer: the trader's lock (or burn) and the relayer's mint (or unlock)."""

    kind: str  # "mint" or "unlock"
    account: bytes
    amount: int
    source_id: bytes
    source_height: int  # where the lock or burn was ordered
    ordered: Submitted  # the relayer's mint or unlock
    ok: bool


@dataclass
class Relayer:
    """Watches the log for transfers to the vault (locks, on alpha) and to the
    reserve (burns, on beta); for each, waits until the head is `delay` blocks
    past the height that ordered it (the finality delay), checks on the source
    rollup's node that it executed, then pays the sender on the other side.
    Transfers it finds that failed are not relayed."""

    client: Client
    chain: Chain
    nodes: dict[str, NodeClient]  # alpha's and beta's
    chain_id: str
    delay: int
    crossings: list[Crossing] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    _waiting: dict[bytes, asyncio.Future[Crossing]] = field(default_factory=dict)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.chain.listeners.append(self.observe)

    def observe(self, height: int, entries: Sequence[Entry]) -> None:
        for e in entries:
            if not isinstance(e, Tx) or not isinstance(e.body.action, Transfer):
                continue
            a, rollup = e.body.action, e.body.rollup
            if (rollup, a.to, a.asset) == (SOURCE, VAULT.address, ASSET):
                kind = "mint"
            elif (rollup, a.to, a.asset) == (DEST, RESERVE.address, WRAPPED):
                kind = "unlock"
            else:
                continue
            task = asyncio.create_task(self._relay(kind, e, height))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def wait(self, source_id: bytes) -> asyncio.Future[Crossing]:
        """The crossing that relays the lock or burn `source_id`, once the
        relayer's transfer has executed on the other side."""
        return self._future(source_id)

    def _future(self, source_id: bytes) -> asyncio.Future[Crossing]:
        if source_id not in self._waiting:
            self._waiting[source_id] = asyncio.get_running_loop().create_future()
        return self._waiting[source_id]

    async def _relay(self, kind: str, tx: Tx, height: int) -> None:
        a = tx.body.action
        assert isinstance(a, Transfer)
        future = self._future(tx.id)
        try:
            if kind == "mint":
                src, dst, signer, asset = SOURCE, DEST, RESERVE, WRAPPED
            else:
                src, dst, signer, asset = DEST, SOURCE, VAULT, ASSET
            head = await self.chain.wait_height(height + self.delay)
            receipt = await self.nodes[src].wait_for_receipt(tx.id, timeout=STALL_S)
            if not receipt.ok:
                self.problems.append(f"{kind}: source {tx.id.hex()[:16]} failed ({receipt.reason})")
                return
            out = build_transfer(
                signer,
                dst,
                tx.body.sender,
                asset,
                int(a.amount),
                head + EXPIRY_BLOCKS,
                self.chain_id,
            )
            ack = await self.client.submit_retrying(out, SUBMIT_TIMEOUT_S, attempt=10.0)
            done = await self.nodes[dst].wait_for_receipt(ack.id, timeout=STALL_S)
            crossing = Crossing(kind, tx.body.sender, int(a.amount), tx.id, height, ack, done.ok)
            self.crossings.append(crossing)
            if not done.ok:
                self.problems.append(f"{kind} {ack.id.hex()[:16]} failed ({done.reason})")
            if not future.done():
                future.set_result(crossing)
        except Exception as e:
            self.problems.append(f"{kind} of {tx.id.hex()[:16]}: {type(e).__name__}: {e}")
            if not future.done():
                future.set_exception(e)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def read_books(nodes: dict[str, NodeClient]) -> tuple[int, int]:
    """(USDC the vault holds on alpha, WUSDC in circulation on beta: the reserve's
    genesis amount minus what it holds), in base units."""
    vault = (await nodes[SOURCE].balances(VAULT.address)).get(ASSET, 0)
    reserve = (await nodes[DEST].balances(RESERVE.address)).get(WRAPPED, 0)
    return vault, RESERVE_SUPPLY - reserve


__all__ = [
    "ASSET",
    "DEST",
    "RESERVE",
    "SOURCE",
    "VAULT",
    "WRAPPED",
    "Chain",
    "Crossing",
    "Relayer",
    "bridge_genesis",
    "read_books",
]

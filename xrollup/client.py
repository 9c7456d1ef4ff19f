"""The client library: connect, keys, build and sign transactions and bundles,
submit, wait for inclusion, follow blocks. Tests, benchmarks, the `devnet`
command and users' scripts all go through it.

    async with Client("127.0.0.1:50051") as c:
        alice, bob = derive_dev_account(0), derive_dev_account(1)
        tx = await c.build_transfer(alice, "alpha", bob.address, "USDC", 5_000_000)
        ack = await c.submit_tx(tx)

A sequencer's replicas are one comma-separated list, "127.0.0.1:5001,127.0.0.1:5002"
(xrollup/endpoints.py): by default a Client on a list sends each call to the next
ready replica (round_robin), so admission spreads over them and a retry after
UNAVAILABLE lands on another replica (one answering UNAVAILABLE for good, say a
standby cut off from etcd, is never the only one tried); `spread=False` stays on
the first replica that accepts and moves on only when its connection breaks.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Self, TypeVar

import grpc
from grpc import aio

from xrollup import codec
from xrollup.blocks import compute_id
from xrollup.endpoints import (
    PICK_FIRST,
    ROUND_ROBIN,
    compute_channel_target,
    compute_service_config,
    parse_endpoints,
)
from xrollup.genesis import DEV_CHAIN_ID, Genesis, compute_genesis_hash
from xrollup.keys import Address, Keypair
from xrollup.model import (
    Action,
    BundleBody,
    BundleVote,
    Leg,
    LockCollateral,
    OpenOption,
    OptionKind,
    PriceUpdate,
    ReclaimLien,
    ReleaseLien,
    SettleOption,
    Signature,
    Transfer,
    TxBody,
    VoteBody,
)
from xrollup.numeric import Amount, Height
from xrollup.options import collateral_asset, compute_collateral, split_payout
from xrollup.v1 import node_pb2 as npb
from xrollup.v1 import node_pb2_grpc as npb_grpc
from xrollup.v1 import sequencer_pb2 as spb
from xrollup.v1 import sequencer_pb2_grpc as spb_grpc
from xrollup.v1 import snapshot_pb2 as snpb
from xrollup.v1 import snapshot_pb2_grpc as snpb_grpc
from xrollup.v1 import types_pb2 as pb

DEFAULT_EXPIRY_BLOCKS = 3000
# A paused replica (SIGSTOP) keeps its connections open and the kernel still
# accepts new ones, so without pings a channel on a list would wait on it for
# ever: ping every second, also with no call in flight (an idle client learns
# too) and with no data flowing (a stream waiting for a block), and drop the
# connection when a ping is not answered within a second; pick_first then moves
# to the next replica (measured: 1.2-1.5 s from SIGSTOP to an ack by the next).
# In grpcio 1.85 the timer that drops the connection is grpc.http2.ping_timeout_ms
# (default 60 s): keepalive_timeout_ms alone changes nothing, though it must be
# finite for any ping timeout to be set. The servers must permit pings this often
# (xrollup/serving.py KEEPALIVE_OPTIONS), or they answer GOAWAY too_many_pings.
# gRPC answers pings on its own threads, so a busy event loop does not miss one;
# a stopped or hung process does. Only a channel with somewhere else to go pings
# (compute_channel_options): one endpoint has no other replica to move to, and a
# node's one endpoint is its proxy route, where a `devnet delay` of 500 ms each
# way would make every ping late and cut the link every few seconds (measured at
# 600 ms: a drop every ~3 s); the proxy probes the replicas behind it instead.
KEEPALIVE_OPTIONS: list[tuple[str, int | str]] = [
    ("grpc.keepalive_time_ms", 1000),
    ("grpc.keepalive_timeout_ms", 1000),
    ("grpc.http2.ping_timeout_ms", 1000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),  # 0: no limit (default 2, then silence)
]
CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    # gRPC's default reconnect backoff grows to 120 s; on a devnet where processes
    # are killed and links cut on purpose, reconnect within a fraction of a second
    # (loopback: a connection attempt costs nothing). With 1 s a node back from a
    # cut link could take 50 blocks of 20 ms to connect: a whole bundle deadline.
    ("grpc.initial_reconnect_backoff_ms", 50),  # gRPC takes at least 100
    ("grpc.max_reconnect_backoff_ms", 250),
    # Not a backoff: gRPC core's minimum connect timeout (at least 100 ms), the time
    # a connection attempt has to finish TCP and receive the server's HTTP/2
    # SETTINGS. At 100 ms an attempt through a busy proxy or a delayed link failed
    # ("timed out before receiving SETTINGS frame") and a call made meanwhile
    # failed UNAVAILABLE; 2 s lets a link delayed ~1 s each way connect. A paused
    # replica costs no more: pick_first tries the next one after 250 ms anyway.
    ("grpc.min_reconnect_backoff_ms", 2000),
    # A new channel would otherwise share a subchannel (and its backoff) with an
    # older channel to the same address that is still waiting to reconnect.
    ("grpc.use_local_subchannel_pool", 1),
]
ChannelOptions = list[tuple[str, int | str]]


def compute_channel_options(
    endpoints: Sequence[str],
    spread: bool = False,
    base: Sequence[tuple[str, int | str]] | None = None,
) -> ChannelOptions:
    """`base` (default CHANNEL_OPTIONS) and, for several endpoints or `spread`,
    the load-balancing policy: round_robin when `spread` (every call to the next
    ready replica), else pick_first (stay on the first that accepts, move on when
    it breaks), and KEEPALIVE_OPTIONS (pings that find a paused replica). One
    endpoint without `spread`: `base` alone, as it always was."""
    options: ChannelOptions = list(CHANNEL_OPTIONS if base is None else base)
    if spread or len(endpoints) > 1:
        policy = ROUND_ROBIN if spread else PICK_FIRST
        options.append(("grpc.service_config", compute_service_config(policy)))
        options += [o for o in KEEPALIVE_OPTIONS if o not in options]
    return options


def open_channel(
    endpoints: str | Sequence[str],
    spread: bool = False,
    base: Sequence[tuple[str, int | str]] | None = None,
) -> aio.Channel:
    """An insecure grpc.aio channel to one endpoint or a list of replicas
    ("A,B,C"), options as compute_channel_options; raises InvalidInput for a
    malformed list."""
    parsed = parse_endpoints(endpoints)
    return aio.insecure_channel(
        compute_channel_target(parsed), options=compute_channel_options(parsed, spread, base)
    )


@dataclass(frozen=True, slots=True)
class Submitted:
    """An acknowledged submission: ordered at `height`, position `index`."""

    id: bytes
    height: int
    index: int
    duplicate: bool


@dataclass(frozen=True, slots=True)
class BatchItem:
    """One transaction's result in a batch: code 0 (OK) with a height, or a refusal."""

    id: bytes
    code: grpc.StatusCode
    message: str
    height: int
    index: int
    duplicate: bool

    @property
    def ok(self) -> bool:
        return self.code == grpc.StatusCode.OK


_CODES = {c.value[0]: c for c in grpc.StatusCode}


# ---------------------------------------------------------------- building and signing


def new_nonce() -> int:
    """A random salt so two otherwise equal bodies get different ids."""
    return secrets.randbits(63)


def sign_tx(body: TxBody, signers: Sequence[Keypair]) -> pb.SignedTx:
    body_bytes = codec.encode_tx_body(body)
    sigs = [Signature(k.public_key, k.sign(body_bytes)) for k in signers]
    return codec.encode_signed_tx(body_bytes, sigs)


def sign_bundle(body: BundleBody, signers: Sequence[Keypair]) -> pb.SignedBundle:
    body_bytes = codec.encode_bundle_body(body)
    sigs = [Signature(k.public_key, k.sign(body_bytes)) for k in signers]
    return codec.encode_signed_bundle(body_bytes, sigs)


def build_tx(
    signer: Keypair,
    rollup: str,
    action: Action,
    expiry_height: int,
    chain_id: str = DEV_CHAIN_ID,
    nonce: int | None = None,
) -> pb.SignedTx:
    body = TxBody(
        chain_id=chain_id,
        rollup=rollup,
        sender=signer.address,
        nonce=new_nonce() if nonce is None else nonce,
        expiry_height=Height(expiry_height),
        action=action,
    )
    return sign_tx(body, [signer])


def build_transfer(
    signer: Keypair,
    rollup: str,
    to: Address,
    asset: str,
    amount: int,
    expiry_height: int,
    chain_id: str = DEV_CHAIN_ID,
    nonce: int | None = None,
) -> pb.SignedTx:
    return build_tx(
        signer, rollup, Transfer(to, asset, Amount(amount)), expiry_height, chain_id, nonce
    )


def build_price_update(
    oracle: Keypair,
    rollup: str,
    base: str,
    quote: str,
    price: int,
    expiry_height: int,
    chain_id: str = DEV_CHAIN_ID,
) -> pb.SignedTx:
    return build_tx(
        oracle, rollup, PriceUpdate(base, quote, Amount(price)), expiry_height, chain_id
    )


def build_bundle(
    legs: Sequence[Leg],
    signers: Sequence[Keypair],
    expiry_height: int,
    chain_id: str = DEV_CHAIN_ID,
    nonce: int | None = None,
) -> pb.SignedBundle:
    """A bundle signed by every given key; each leg's sender must be among them."""
    body = BundleBody(
        chain_id, new_nonce() if nonce is None else nonce, Height(expiry_height), tuple(legs)
    )
    return sign_bundle(body, signers)


def build_open_option(
    writer: Keypair,
    holder: Keypair,
    kind: OptionKind,
    strike: int,
    size: int,
    option_expiry_height: int,
    premium: int,
    expiry_height: int,
    underlying: str = "ETH",
    quote: str = "USDC",
    underlying_decimals: int = 9,
    collateral: int | None = None,
    collateral_rollup: str = "alpha",
    option_rollup: str = "beta",
    chain_id: str = DEV_CHAIN_ID,
    nonce: int | None = None,
    liens: Sequence[tuple[str, int]] | None = None,
) -> pb.SignedBundle:
    """The open bundle: the writer locks collateral on `collateral_rollup` (by
    default exactly what the margin rule demands) and the holder opens the option
    on `option_rollup`, paying the premium. With `liens`, one lien per
    (rollup, amount) instead, in that payout order (`collateral` and
    `collateral_rollup` unused). The option's and each lien's id is the bundle's
    id. Signed by writer and holder."""
    asset = collateral_asset(kind, underlying, quote)
    if liens is None:
        amount = (
            collateral
            if collateral is not None
            else compute_collateral(kind, strike, size, underlying_decimals)
        )
        liens = [(collateral_rollup, amount)]
    legs = [
        *(
            Leg(on, writer.address, LockCollateral(asset, Amount(amount), option_rollup))
            for on, amount in liens
        ),
        Leg(
            option_rollup,
            holder.address,
            OpenOption(
                kind=kind,
                underlying=underlying,
                quote=quote,
                strike=Amount(strike),
                size=Amount(size),
                expiry_height=Height(option_expiry_height),
                premium=Amount(premium),
                writer=writer.address,
                collateral_rollups=tuple(on for on, _ in liens),
            ),
        ),
    ]
    return build_bundle(legs, [writer, holder], expiry_height, chain_id, nonce)


def build_settle_option(
    submitter: Keypair,
    option_id: bytes,
    payout: int,
    holder: Address,
    expiry_height: int,
    option_rollup: str = "beta",
    collateral_rollup: str = "alpha",
    chain_id: str = DEV_CHAIN_ID,
    nonce: int | None = None,
    liens: Sequence[tuple[str, int]] | None = None,
) -> pb.SignedBundle:
    """The settle bundle (anyone may submit it): settle the option on its rollup
    at the stated payout, and pay that payout from its lien on
    `collateral_rollup` to the holder. With `liens` (the option's (rollup,
    amount) list, in its order: `option_liens`), one release per lien, each
    paying its share (xrollup.options.split_payout)."""
    if liens is None:
        liens = [(collateral_rollup, payout)]
    shares = split_payout(payout, [amount for _, amount in liens])
    legs = [
        Leg(option_rollup, submitter.address, SettleOption(option_id, Amount(payout))),
        *(
            Leg(on, submitter.address, ReleaseLien(option_id, Amount(share), holder))
            for (on, _), share in zip(liens, shares, strict=True)
        ),
    ]
    return build_bundle(legs, [submitter], expiry_height, chain_id, nonce)


def option_liens(option: npb.OptionPosition) -> list[tuple[str, int]]:
    """An option's liens as (rollup, amount), in payout order (GetOption's answer)."""
    return [(lien.rollup, int(lien.amount)) for lien in option.liens]


def build_reclaim_lien(
    owner: Keypair,
    lien_id: bytes,
    expiry_height: int,
    rollup: str = "alpha",
    chain_id: str = DEV_CHAIN_ID,
) -> pb.SignedTx:
    """The lien owner's exit (docs/exits.md): take back a lien still locked at its
    option's expiry plus the genesis grace period, on the lien's own rollup."""
    return build_tx(owner, rollup, ReclaimLien(lien_id), expiry_height, chain_id)


def build_vote(
    key: Keypair, rollup: str, height: int, votes: Sequence[BundleVote], genesis: Genesis
) -> pb.SignedVote:
    """A rollup's signed votes on bundles it prepared in block `height`, bound to
    this chain's genesis (each BundleVote names its bundle's height)."""
    body = VoteBody(
        genesis.chain_id, rollup, Height(height), tuple(votes), compute_genesis_hash(genesis)
    )
    return sign_vote(key, body)


def sign_vote(key: Keypair, body: VoteBody) -> pb.SignedVote:
    body_bytes = codec.encode_vote_body(body)
    return codec.encode_signed_vote(body_bytes, Signature(key.public_key, key.sign(body_bytes)))


def compute_submission_id(msg: pb.SignedTx | pb.SignedBundle) -> bytes:
    return compute_id(msg.body)


# ---------------------------------------------------------------- the connection

T = TypeVar("T")
# Worth sending again, the same bytes: the server is restarting, slow, or full.
TRANSIENT = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.CANCELLED,
    }
)
NOT_YET = (
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
)


async def poll_until(
    fetch: Callable[[], Awaitable[T | None]], timeout: float, poll: float, what: str
) -> T:
    """Call `fetch` until it returns a value. NOT_FOUND, UNAVAILABLE and
    DEADLINE_EXCEEDED mean "not yet"; other errors are raised; TimeoutError
    after `timeout` seconds names `what`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            value = await fetch()
            if value is not None:
                return value
        except aio.AioRpcError as e:
            if e.code() not in NOT_YET:
                raise
        if loop.time() > deadline:
            raise TimeoutError(f"no {what} within {timeout}s")
        await asyncio.sleep(poll)


class _Connection:
    """One grpc.aio channel to a server, or to any of a list of its replicas
    ("A,B,C": open_channel); use as `async with`."""

    def __init__(self, endpoint: str | Sequence[str], spread: bool | None = None) -> None:
        self.endpoints = parse_endpoints(endpoint)
        self.endpoint = ",".join(self.endpoints)
        if spread is None:  # a list spreads (module docstring); one endpoint is one
            spread = len(self.endpoints) > 1
        self.channel = open_channel(self.endpoints, spread)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self.channel.close(grace=None)

    async def wait_ready(self, timeout: float = 10.0) -> None:
        await asyncio.wait_for(self.channel.channel_ready(), timeout)


class Client(_Connection):
    """An async connection to a sequencer: one HOST:PORT or its replicas,
    "A,B,C". On a list, each call goes to the next ready replica (round_robin;
    a call in flight on one that broke fails UNAVAILABLE and submit_retrying and
    follow carry on through another); spread=False: the first replica that
    accepts until it breaks (pick_first)."""

    def __init__(
        self,
        endpoint: str | Sequence[str],
        chain_id: str = DEV_CHAIN_ID,
        spread: bool | None = None,
    ) -> None:
        super().__init__(endpoint, spread)
        self.chain_id = chain_id
        self.stub = spb_grpc.SequencerServiceStub(self.channel)

    async def status(self, timeout: float | None = 5.0) -> spb.GetStatusResponse:
        return await self.stub.GetStatus(spb.GetStatusRequest(), timeout=timeout)

    async def expiry(self, blocks: int = DEFAULT_EXPIRY_BLOCKS) -> int:
        """An expiry height `blocks` past the current head."""
        return (await self.status()).height + blocks

    async def build_transfer(
        self,
        signer: Keypair,
        rollup: str,
        to: Address,
        asset: str,
        amount: int,
        expiry_height: int | None = None,
    ) -> pb.SignedTx:
        expiry = expiry_height if expiry_height is not None else await self.expiry()
        return build_transfer(signer, rollup, to, asset, amount, expiry, self.chain_id)

    async def submit_tx(self, tx: pb.SignedTx, timeout: float | None = 30.0) -> Submitted:
        r = await self.stub.SubmitTransaction(spb.SubmitTransactionRequest(tx=tx), timeout=timeout)
        return Submitted(r.id, r.height, r.index, r.duplicate)

    async def submit_bundle(
        self, bundle: pb.SignedBundle, timeout: float | None = 30.0
    ) -> Submitted:
        r = await self.stub.SubmitBundle(spb.SubmitBundleRequest(bundle=bundle), timeout=timeout)
        return Submitted(r.id, r.height, r.index, r.duplicate)

    async def submit_retrying(
        self, msg: pb.SignedTx | pb.SignedBundle, timeout: float = 30.0, attempt: float = 5.0
    ) -> Submitted:
        """Submit the same bytes until acknowledged, for up to `timeout` seconds
        (the same id each time, so a retry is harmless: the second gets the
        first's result), as a client riding through a fault or a busy machine
        would; an error that is not transient (TRANSIENT) is raised at once. On
        a list of replicas, a retry after the one it was on died goes to the
        next that accepts (the channel's policy), with no wait but the 50 ms."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                if isinstance(msg, pb.SignedBundle):
                    return await self.submit_bundle(msg, timeout=attempt)
                return await self.submit_tx(msg, timeout=attempt)
            except aio.AioRpcError as e:
                if e.code() not in TRANSIENT or loop.time() > deadline:
                    raise
            await asyncio.sleep(0.05)

    async def submit_vote(self, vote: pb.SignedVote, timeout: float | None = 30.0) -> Submitted:
        r = await self.stub.SubmitVote(spb.SubmitVoteRequest(vote=vote), timeout=timeout)
        return Submitted(r.id, r.height, r.index, r.duplicate)

    async def submit_batch(
        self, txs: Sequence[pb.SignedTx], timeout: float | None = 60.0
    ) -> list[BatchItem]:
        r = await self.stub.SubmitBatch(spb.SubmitBatchRequest(txs=txs), timeout=timeout)
        return [
            BatchItem(
                x.id,
                _CODES.get(x.code, grpc.StatusCode.UNKNOWN),
                x.message,
                x.height,
                x.index,
                x.duplicate,
            )
            for x in r.results
        ]

    async def get_block(self, height: int, timeout: float | None = 10.0) -> pb.Block:
        return await self.stub.GetBlock(spb.GetBlockRequest(height=height), timeout=timeout)

    async def set_prune_floor(
        self, height: int, timeout: float | None = 5.0
    ) -> spb.SetPruneFloorResponse:
        """Retention: the sequencer may delete blocks below `height` (every node and
        snapshot is past them), as its --retain-blocks allows."""
        return await self.stub.SetPruneFloor(
            spb.SetPruneFloorRequest(height=height), timeout=timeout
        )

    async def get_submission(
        self, submission_id: bytes, timeout: float | None = 5.0
    ) -> spb.GetSubmissionResponse:
        return await self.stub.GetSubmission(
            spb.GetSubmissionRequest(id=submission_id), timeout=timeout
        )

    async def wait_for_inclusion(
        self, submission_id: bytes, timeout: float = 30.0, poll: float = 0.02
    ) -> int:
        """The height that orders `submission_id`, polling until it is ordered."""

        async def ordered() -> int | None:
            r = await self.get_submission(submission_id)
            return int(r.height) if r.state == spb.GetSubmissionResponse.STATE_ORDERED else None

        return await poll_until(ordered, timeout, poll, f"{submission_id.hex()} ordered")

    async def stream_blocks(
        self, from_height: int = 1, rollup: str = ""
    ) -> AsyncIterator[pb.Block]:
        """One stream of blocks from `from_height`; ends when the server ends it.
        `rollup`: each block filtered to that rollup's and the protocol's entries
        (verify with xrollup.verify.verify_block(..., rollup=rollup))."""
        request = spb.StreamBlocksRequest(from_height=from_height, rollup=rollup)
        call = self.stub.StreamBlocks(request)
        try:
            async for block in call:
                yield block
        finally:
            call.cancel()

    async def follow(
        self,
        from_height: int = 1,
        retry_delay: float = 0.05,
        max_delay: float = 2.0,
        rollup: str = "",
    ) -> AsyncIterator[pb.Block]:
        """Blocks from `from_height` in order, each exactly once, resuming after
        disconnects and sequencer restarts with exponential backoff (`rollup`: as
        stream_blocks)."""
        next_height = max(1, from_height)
        delay = retry_delay
        while True:
            try:
                async for block in self.stream_blocks(next_height, rollup):
                    if block.header.height != next_height:
                        raise RuntimeError(
                            f"stream gave height {block.header.height}, want {next_height}"
                        )
                    next_height += 1
                    delay = retry_delay
                    yield block
            except aio.AioRpcError as e:
                # INTERNAL too: a stream cut mid-message by a dying server reads as one.
                if e.code() not in TRANSIENT and e.code() != grpc.StatusCode.INTERNAL:
                    raise
            await asyncio.sleep(delay)
            delay = min(max_delay, delay * 2)


# ---------------------------------------------------------------- rollup nodes


@dataclass(frozen=True, slots=True)
class ReceiptInfo:
    id: bytes
    ok: bool
    reason: str
    height: int
    index: int


class NodeClient(_Connection):
    """An async connection to a rollup node."""

    def __init__(self, endpoint: str) -> None:
        super().__init__(endpoint)
        self.stub = npb_grpc.RollupNodeServiceStub(self.channel)

    async def status(self, timeout: float | None = 5.0) -> npb.GetNodeStatusResponse:
        return await self.stub.GetNodeStatus(npb.GetNodeStatusRequest(), timeout=timeout)

    async def balances(self, address: Address, timeout: float | None = 5.0) -> dict[str, int]:
        r = await self.stub.GetBalances(npb.GetBalancesRequest(address=address), timeout=timeout)
        return {b.asset: int(b.amount) for b in r.balances}

    async def state_root(self, height: int, timeout: float | None = 5.0) -> bytes:
        r = await self.stub.GetStateRoot(npb.GetStateRootRequest(height=height), timeout=timeout)
        return bytes(r.state_root)

    async def price(
        self, base: str, quote: str, timeout: float | None = 5.0
    ) -> npb.GetPriceResponse:
        return await self.stub.GetPrice(
            npb.GetPriceRequest(base=base, quote=quote), timeout=timeout
        )

    async def receipt(self, entry_id: bytes, timeout: float | None = 5.0) -> ReceiptInfo:
        r = await self.stub.GetReceipt(npb.GetReceiptRequest(id=entry_id), timeout=timeout)
        return ReceiptInfo(r.id, r.status == npb.Receipt.STATUS_OK, r.reason, r.height, r.index)

    async def wait_for_receipt(
        self, entry_id: bytes, timeout: float = 30.0, poll: float = 0.02
    ) -> ReceiptInfo:
        """The receipt of `entry_id` once this node has executed it."""
        return await poll_until(
            lambda: self.receipt(entry_id), timeout, poll, f"a receipt for {entry_id.hex()}"
        )

    async def bundle(self, bundle_id: bytes, timeout: float | None = 5.0) -> npb.BundleRecord:
        return await self.stub.GetBundle(npb.GetBundleRequest(id=bundle_id), timeout=timeout)

    async def lien(self, lien_id: bytes, timeout: float | None = 5.0) -> npb.Lien:
        return await self.stub.GetLien(npb.GetLienRequest(id=lien_id), timeout=timeout)

    async def option(self, option_id: bytes, timeout: float | None = 5.0) -> npb.OptionPosition:
        return await self.stub.GetOption(npb.GetOptionRequest(id=option_id), timeout=timeout)

    async def supply(self, timeout: float | None = 10.0) -> npb.GetSupplyResponse:
        return await self.stub.GetSupply(npb.GetSupplyRequest(), timeout=timeout)

    async def account(
        self, address: Address, limit: int = 0, timeout: float | None = 5.0
    ) -> npb.GetAccountResponse:
        """The account on this rollup: free balances, the liens it owns that hold
        funds, what undecided bundles hold in escrow for it, the open or settling
        options it writes or holds (at most `limit` of each, 0: the node's most).
        Across every rollup, with the position each lien backs: devnet.margin."""
        return await self.stub.GetAccount(
            npb.GetAccountRequest(address=address, limit=limit), timeout=timeout
        )

    async def wait_for_bundle(
        self, bundle_id: bytes, timeout: float = 30.0, poll: float = 0.01
    ) -> npb.BundleRecord:
        """This rollup's record of the bundle once the decision has been applied here."""
        finished = (npb.BundleRecord.STATUS_COMMITTED, npb.BundleRecord.STATUS_ABORTED)

        async def decided() -> npb.BundleRecord | None:
            r = await self.bundle(bundle_id)
            return r if r.status in finished else None

        return await poll_until(decided, timeout, poll, f"bundle {bundle_id.hex()} decided")

    async def wait_for_height(self, height: int, timeout: float = 30.0, poll: float = 0.02) -> int:
        """Wait until the node has applied `height`; returns its applied height."""

        async def applied() -> int | None:
            s = await self.status()
            return int(s.applied_height) if s.applied_height >= height else None

        return await poll_until(applied, timeout, poll, f"{self.endpoint} at height {height}")


class SnapshotClient(_Connection):
    """An async connection to the SnapshotService of a sequencer or a node."""

    def __init__(self, endpoint: str) -> None:
        super().__init__(endpoint)
        self.stub = snpb_grpc.SnapshotServiceStub(self.channel)

    async def save(
        self, name: str, height: int, timeout: float | None = 120.0
    ) -> snpb.SaveSnapshotResponse:
        """Copy the server's storage at `height` into its data dir's snapshots/`name`/;
        waits for `height` when the server is not there yet."""
        return await self.stub.SaveSnapshot(
            snpb.SaveSnapshotRequest(name=name, height=height), timeout=timeout
        )


@contextlib.asynccontextmanager
async def node_clients(endpoints: dict[str, str]) -> AsyncIterator[dict[str, NodeClient]]:
    """NodeClients for {name: endpoint}, closed on exit."""
    clients = {name: NodeClient(ep) for name, ep in endpoints.items()}
    try:
        yield clients
    finally:
        for c in clients.values():
            await c.close()


async def wait_for_decision(
    nodes: dict[str, NodeClient], bundle_id: bytes, timeout: float = 30.0
) -> dict[str, npb.BundleRecord]:
    """Each involved rollup's record of the bundle once decided there.
    `nodes` maps each rollup the bundle touches to a node of that rollup."""
    records = await asyncio.gather(*(n.wait_for_bundle(bundle_id, timeout) for n in nodes.values()))
    return dict(zip(nodes, records, strict=True))

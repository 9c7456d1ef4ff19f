"""The RollupNodeService gRPC servicer: balances, receipts, state roots, prices,
positions, accounts (GetAccount: the margin view's holds) and status, read from
the node's store. Errors go through xrollup.grpc_status."""

from __future__ import annotations

from typing import Any

from grpc import aio

from rollup_node.core import accounts, bank, bundles, collateral, options, oracle, supply
from rollup_node.core.state import State
from rollup_node.follower import Follower
from xrollup.errors import InvalidInput, NotFound
from xrollup.grpc_status import grpc_method
from xrollup.keys import ADDRESS_LEN
from xrollup.model import describe_reason
from xrollup.v1 import node_pb2 as npb
from xrollup.v1 import node_pb2_grpc as npb_grpc

Context = aio.ServicerContext[Any, Any]


class RollupNodeService(npb_grpc.RollupNodeServiceServicer):
    def __init__(self, follower: Follower) -> None:
        self.follower = follower
        self.store = follower.store
        self.genesis = follower.genesis

    @grpc_method
    async def GetBalances(
        self, request: npb.GetBalancesRequest, context: Context
    ) -> npb.GetBalancesResponse:
        _validate_address(request.address)
        reader, height = self.store.snapshot_reader()
        state = State(reader)
        balances = [
            npb.Balance(asset=a.symbol, amount=bank.get_balance(state, request.address, a.symbol))
            for a in sorted(self.genesis.assets, key=lambda a: a.symbol)
        ]
        return npb.GetBalancesResponse(address=request.address, height=height, balances=balances)

    @grpc_method
    async def GetReceipt(self, request: npb.GetReceiptRequest, context: Context) -> npb.Receipt:
        if len(request.id) != 32:
            raise InvalidInput(f"id is {len(request.id)} bytes, want 32")
        r = self.store.get_receipt(request.id)
        if r is None:
            raise NotFound(
                f"no receipt for {request.id.hex()} on {self.follower.rollup} "
                f"(applied up to height {self.follower.applied.height})"
                + (f"; {self._pruned_heights()}: an older receipt is gone" if self._pruning else "")
            )
        status = npb.Receipt.STATUS_OK if r.ok else npb.Receipt.STATUS_FAILED
        return npb.Receipt(id=r.id, status=status, reason=r.reason, height=r.height, index=r.index)

    @grpc_method
    async def GetStateRoot(
        self, request: npb.GetStateRootRequest, context: Context
    ) -> npb.GetStateRootResponse:
        root = self.store.get_root(request.height)
        if root is None:
            if request.height < self.store.retained_from():
                raise NotFound(
                    f"no state root at height {request.height}: {self._pruned_heights()}"
                )
            raise NotFound(
                f"no state root at height {request.height};"
                f" applied up to {self.follower.applied.height}"
            )
        return npb.GetStateRootResponse(height=request.height, state_root=root)

    @grpc_method
    async def GetNodeStatus(
        self, request: npb.GetNodeStatusRequest, context: Context
    ) -> npb.GetNodeStatusResponse:
        f = self.follower
        applied = f.applied.height
        seq = max(f.sequencer_height, applied)
        # Read once: the header (and its term, the follower's) of this very height,
        # even when the apply thread moves on meanwhile.
        header = self.store.get_header(applied) if applied else None
        return npb.GetNodeStatusResponse(
            rollup=f.rollup,
            applied_height=applied,
            state_root=f.state_root,
            sequencer_height=seq,
            lag=seq - applied,
            connected=f.connected,
            refusal=(
                npb.Refusal(
                    code=int(f.refusal.code),  # type: ignore[arg-type]
                    height=f.refusal.height,
                    message=f.refusal.message,
                )
                if f.refusal is not None
                else None
            ),
            refused_blocks=f.refused_blocks,
            equivocation=self.store.get_equivocation(),
            stream_error=f.stream_error,
            applied_header=header,
            retained_from=self.store.retained_from(),
            retain_blocks=self.store.retain_blocks,
            term=header.header.term if header is not None else 0,
        )

    @grpc_method
    async def GetPrice(
        self, request: npb.GetPriceRequest, context: Context
    ) -> npb.GetPriceResponse:
        p = oracle.get_price(self._state(), request.base, request.quote)
        if p is None:
            raise NotFound(f"no {request.base}/{request.quote} price on {self.follower.rollup}")
        return npb.GetPriceResponse(
            base=p.base, quote=p.quote, price=p.price, posted_height=p.height
        )

    @property
    def _pruning(self) -> bool:
        return self.store.retain_blocks > 0 or self.store.retained_from() > 0

    def _pruned_heights(self) -> str:
        """Why a height's root or receipt may be gone (retention, --retain-blocks)."""
        keep, first = self.store.retain_blocks, self.store.retained_from()
        kept = f"keeps the last {keep} heights" if keep else "keeps every height now"
        return (
            f"pruned: this node {kept}, from {first} (applied up to"
            f" {self.follower.applied.height}; --retain-blocks)"
        )

    def _pruned_records(self, what: str, since: str) -> str:
        """The end of a NOT_FOUND message for a record retention may have pruned."""
        keep = self.genesis.limits.record_retention_blocks
        if keep == 0:
            return ""
        return (
            f"; {what} are pruned {keep} blocks after {since}"
            " (genesis limits.record_retention_blocks)"
        )

    def _state(self) -> State:
        reader, _ = self.store.snapshot_reader()
        return State(reader)

    @grpc_method
    async def GetBundle(self, request: npb.GetBundleRequest, context: Context) -> npb.BundleRecord:
        _validate_id(request.id)
        r = bundles.get_record(self._state(), request.id)
        if r is None:
            raise NotFound(
                f"no bundle {request.id.hex()} with a leg on {self.follower.rollup}"
                f" (applied up to height {self.follower.applied.height})"
                + self._pruned_records("bundle records", "their decision")
            )
        # Consensus state holds reason codes; the text comes from the bundle's receipt.
        receipt = self.store.get_receipt(r.id)
        text = receipt.reason if receipt is not None and receipt.reason else describe_reason(r.code)
        legs = [
            npb.BundleRecord.LegOutcome(
                index=i,
                ok=ok,
                reason=text if not ok else "",
                code=int(code),  # type: ignore[arg-type]
            )
            for i, ok, code in r.legs
        ]
        return npb.BundleRecord(
            id=r.id,
            status=_BUNDLE_STATUS[r.status],
            vote=r.vote,
            reason=text if not r.vote else describe_reason(r.code),
            reason_code=int(r.code),  # type: ignore[arg-type]
            prepare_height=r.prepare_height,
            decision_height=r.decision_height,
            legs=legs,
            prepared_unix_ms=self.follower.applied_ms(r.prepare_height),
            finished_unix_ms=self.follower.applied_ms(r.decision_height)
            if r.decision_height
            else 0,
        )

    @grpc_method
    async def GetLien(self, request: npb.GetLienRequest, context: Context) -> npb.Lien:
        _validate_id(request.id)
        lien = collateral.get_lien(self._state(), request.id)
        if lien is None:
            raise NotFound(
                f"no lien {request.id.hex()} on {self.follower.rollup}"
                + self._pruned_records("released or reclaimed liens", "that")
            )
        return self._lien_pb(lien)

    def _lien_pb(self, lien: collateral.Lien) -> npb.Lien:
        return npb.Lien(
            id=lien.id,
            owner=lien.owner,
            asset=lien.asset,
            amount=lien.amount,
            controller_rollup=lien.controller_rollup,
            controller_position=lien.controller_position,
            status=_LIEN_STATUS[lien.status],
            paid_out=lien.paid_out,
            payee=lien.payee,
            locked_height=lien.locked_height,
            released_height=lien.released_height,
            option_expiry_height=lien.option_expiry_height,
            reclaimable_height=collateral.compute_reclaimable_height(
                lien.option_expiry_height, self.genesis.limits.lien_grace_blocks
            ),
        )

    @grpc_method
    async def GetOption(
        self, request: npb.GetOptionRequest, context: Context
    ) -> npb.OptionPosition:
        _validate_id(request.id)
        o = options.get_option(self._state(), request.id)
        if o is None:
            raise NotFound(
                f"no option {request.id.hex()} on {self.follower.rollup}"
                + self._pruned_records(
                    "settled options, and open ones whose claim window closed,", "that"
                )
            )
        return _option_pb(o)

    @grpc_method
    async def GetAccount(
        self, request: npb.GetAccountRequest, context: Context
    ) -> npb.GetAccountResponse:
        _validate_address(request.address)
        limit = request.limit if 0 < request.limit <= ACCOUNT_LIMIT else ACCOUNT_LIMIT
        reader, height = self.store.snapshot_reader()
        assets = sorted(a.symbol for a in self.genesis.assets)
        view = accounts.get_account(reader, request.address, assets, limit)
        deadline = self.genesis.limits.bundle_deadline_blocks
        return npb.GetAccountResponse(
            address=view.address,
            rollup=self.follower.rollup,
            height=height,
            balances=[npb.Balance(asset=a, amount=v) for a, v in view.balances.items()],
            liens=[self._lien_pb(lien) for lien in view.liens],
            escrows=[
                npb.EscrowHold(
                    bundle_id=e.bundle_id,
                    held=[npb.Balance(asset=a, amount=v) for a, v in e.held.items()],
                    prepare_height=e.prepare_height,
                    deadline_height=e.prepare_height + deadline,
                )
                for e in view.escrows
            ],
            options=[
                npb.AccountOption(role=_role(o, view.address), option=_option_pb(o))
                for o in view.options
            ],
            truncated=view.truncated,
        )

    @grpc_method
    async def GetSupply(
        self, request: npb.GetSupplyRequest, context: Context
    ) -> npb.GetSupplyResponse:
        reader, height = self.store.snapshot_reader()
        report = supply.compute_supply(reader.iterate(b"", b"\xff" * 8))
        return npb.GetSupplyResponse(
            height=height,
            assets=[
                npb.AssetSupply(
                    asset=a.asset,
                    minted=a.minted,
                    balances=a.balances,
                    escrowed=a.escrowed,
                    liened=a.liened,
                )
                for a in report.assets.values()
            ],
            open_bundles=report.open_bundles,
        )


ACCOUNT_LIMIT = 1000  # GetAccount's most entries per list


def _role(o: options.OptionPosition, account: bytes) -> npb.AccountOption.Role.ValueType:
    if o.writer == account and o.holder == account:
        return npb.AccountOption.ROLE_BOTH
    return npb.AccountOption.ROLE_WRITER if o.writer == account else npb.AccountOption.ROLE_HOLDER


def _option_pb(o: options.OptionPosition) -> npb.OptionPosition:
    return npb.OptionPosition(
        id=o.id,
        kind=int(o.kind),  # type: ignore[arg-type]
        underlying=o.underlying,
        quote=o.quote,
        strike=o.strike,
        size=o.size,
        expiry_height=o.expiry_height,
        premium=o.premium,
        writer=o.writer,
        holder=o.holder,
        collateral_asset=o.collateral_asset,
        collateral=o.collateral,
        status=_OPTION_STATUS[o.status],
        opened_height=o.opened_height,
        settled_height=o.settled_height,
        settle_price=o.settle_price,
        payout=o.payout,
        liens=[
            npb.OptionLien(rollup=on, amount=amount, paid=paid)
            for (on, amount), paid in zip(o.liens, o.shares or (0,) * len(o.liens), strict=True)
        ],
    )


def _validate_address(raw: bytes) -> None:
    if len(raw) != ADDRESS_LEN:
        raise InvalidInput(
            f"address is {len(raw)} bytes, want {ADDRESS_LEN} (an account is a 20-byte address)"
        )


def _validate_id(raw: bytes) -> None:
    if len(raw) != 32:
        raise InvalidInput(f"id is {len(raw)} bytes, want 32")


_BUNDLE_STATUS = {
    bundles.PREPARED: npb.BundleRecord.STATUS_PREPARED,
    bundles.COMMITTED: npb.BundleRecord.STATUS_COMMITTED,
    bundles.ABORTED: npb.BundleRecord.STATUS_ABORTED,
}
_LIEN_STATUS = {
    collateral.LOCKED: npb.Lien.STATUS_LOCKED,
    collateral.PENDING: npb.Lien.STATUS_PENDING,
    collateral.RELEASED: npb.Lien.STATUS_RELEASED,
    collateral.RECLAIMED: npb.Lien.STATUS_RECLAIMED,
}
_OPTION_STATUS = {
    options.OPEN: npb.OptionPosition.STATUS_OPEN,
    options.SETTLING: npb.OptionPosition.STATUS_SETTLING,
    options.SETTLED: npb.OptionPosition.STATUS_SETTLED,
}

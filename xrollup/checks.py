"""Immutable checks on a decoded submission: chain id, known rollups and assets,
sizes and amounts within limits, and signatures by exactly the accounts it
touches. The sequencer runs them at admission; nodes run them again on what
they execute. Mutable checks (balances, expiry against a height) live with the
state they read."""

from __future__ import annotations

from collections.abc import Iterable

from xrollup.errors import BadSignature, Expired, InvalidInput, LimitExceeded, NotAuthorized
from xrollup.genesis import Genesis
from xrollup.keys import Address, compute_address, encode_address, is_valid_signature
from xrollup.model import Action, Bundle, PriceUpdate, Signature, Transfer, Tx, Vote


def validate_body_size(body_bytes: bytes, genesis: Genesis, what: str) -> None:
    limit = genesis.limits.max_body_bytes
    if len(body_bytes) > limit:
        raise LimitExceeded(f"{what} body is {len(body_bytes)} bytes, limit is {limit}")


def validate_chain_id(chain_id: str, genesis: Genesis, what: str) -> None:
    if chain_id != genesis.chain_id:
        raise InvalidInput(f"{what}.chain_id is {chain_id!r}, this chain is {genesis.chain_id!r}")


def validate_rollup(rollup: str, genesis: Genesis, what: str) -> None:
    if genesis.get_rollup(rollup) is None:
        known = ", ".join(genesis.rollup_names)
        raise InvalidInput(f"{what}: unknown rollup {rollup!r} (known: {known})")


def validate_asset(symbol: str, genesis: Genesis, what: str) -> None:
    if genesis.get_asset(symbol) is None:
        known = ", ".join(a.symbol for a in genesis.assets)
        raise InvalidInput(f"{what}: unknown asset {symbol!r} (known: {known})")


def validate_action(action: Action, sender: Address, genesis: Genesis, what: str) -> None:
    max_amount = genesis.limits.max_amount
    if isinstance(action, Transfer):
        validate_asset(action.asset, genesis, f"{what}.transfer")
        if action.amount > max_amount:
            raise LimitExceeded(
                f"{what}.transfer.amount {action.amount} is over the limit {max_amount}"
            )
    elif isinstance(action, PriceUpdate):
        validate_asset(action.base, genesis, f"{what}.price_update.base")
        validate_asset(action.quote, genesis, f"{what}.price_update.quote")
        if action.price > max_amount:
            raise LimitExceeded(
                f"{what}.price_update.price {action.price} is over the limit {max_amount}"
            )
        if sender != compute_address(genesis.oracle_key):
            raise NotAuthorized(f"{what}: price updates must come from the genesis oracle account")


def validate_signatures(
    body_bytes: bytes,
    signatures: Iterable[Signature],
    required: set[Address],
    genesis: Genesis,
    what: str,
) -> None:
    """Every signature verifies over the body, and the signers are exactly `required`."""
    sigs = tuple(signatures)
    if len(sigs) > genesis.limits.max_signatures:
        raise LimitExceeded(
            f"{what} has {len(sigs)} signatures, limit is {genesis.limits.max_signatures}"
        )
    signed: set[Address] = set()
    for i, s in enumerate(sigs):
        if not is_valid_signature(s.public_key, s.signature, body_bytes):
            raise BadSignature(f"{what}.signatures[{i}] does not verify over the body bytes")
        signed.add(compute_address(s.public_key))
    missing = required - signed
    if missing:
        by = ", ".join(sorted(encode_address(a) for a in signed))
        raise NotAuthorized(
            f"{what}: account {encode_address(min(missing))} has not signed; signatures are by "
            f"{by}, a key that does not own the account"
        )
    extra = signed - required
    if extra:
        raise NotAuthorized(
            f"{what}: signature by {encode_address(min(extra))}, an account it does not touch"
        )


def validate_tx(tx: Tx, genesis: Genesis) -> None:
    body = tx.body
    validate_body_size(tx.body_bytes, genesis, "tx")
    validate_chain_id(body.chain_id, genesis, "tx")
    validate_rollup(body.rollup, genesis, "tx.rollup")
    validate_action(body.action, body.sender, genesis, "tx")
    validate_signatures(tx.body_bytes, tx.signatures, {body.sender}, genesis, "tx")


def validate_bundle(bundle: Bundle, genesis: Genesis) -> None:
    body = bundle.body
    validate_body_size(bundle.body_bytes, genesis, "bundle")
    validate_chain_id(body.chain_id, genesis, "bundle")
    if len(body.legs) > genesis.limits.max_legs:
        raise LimitExceeded(f"bundle has {len(body.legs)} legs, limit is {genesis.limits.max_legs}")
    for i, leg in enumerate(body.legs):
        validate_rollup(leg.rollup, genesis, f"bundle.legs[{i}].rollup")
        validate_action(leg.action, leg.sender, genesis, f"bundle.legs[{i}]")
    required = {leg.sender for leg in body.legs}
    validate_signatures(bundle.body_bytes, bundle.signatures, required, genesis, "bundle")


def validate_vote(vote: Vote, genesis: Genesis) -> None:
    body = vote.body
    validate_body_size(vote.body_bytes, genesis, "vote")
    validate_chain_id(body.chain_id, genesis, "vote")
    rollup = genesis.get_rollup(body.rollup)
    if rollup is None:
        validate_rollup(body.rollup, genesis, "vote.rollup")
        return
    if not is_valid_signature(vote.signature.public_key, vote.signature.signature, vote.body_bytes):
        raise BadSignature("vote.signature does not verify over the body bytes")
    if vote.signature.public_key != rollup.vote_key:
        raise NotAuthorized(
            f"vote for rollup {body.rollup!r} is not signed by its genesis vote key"
        )


def validate_expiry(expiry_height: int, next_height: int, genesis: Genesis, what: str) -> None:
    """The submission can still be ordered at `next_height`, and does not live too long."""
    if expiry_height < next_height:
        raise Expired(f"{what} expired at height {expiry_height}; the next block is {next_height}")
    window = genesis.limits.max_expiry_window
    if expiry_height > next_height + window:
        raise InvalidInput(
            f"{what}.expiry_height {expiry_height} is more than {window} blocks"
            f" ahead of {next_height}"
        )

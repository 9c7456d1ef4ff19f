"""I6 safety of input against a real sequencer: each kind of bad input gets its
own gRPC status with a message naming the problem, the process stays healthy,
and nothing is written. No answer in this file may be UNKNOWN or INTERNAL."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
from chainsupport import (
    NEVER,
    ORDERED,
    Acked,
    assert_acked_in_chain,
    assert_clean_log,
    expect_rpc_error,
    id_of,
    index_entries,
    read_verified_chain,
)

from devnet.launcher import check_health
from xrollup import codec
from xrollup.client import Client, build_bundle, build_price_update, build_transfer, sign_tx
from xrollup.genesis import DEV_CHAIN_ID, Limits, compute_genesis_hash, dev_genesis, encode_genesis
from xrollup.keys import Keypair, derive_dev_account, derive_oracle_key, derive_rollup_vote_key
from xrollup.model import Leg, Signature, Transfer, VoteBody
from xrollup.numeric import Amount, Height
from xrollup.v1 import sequencer_pb2 as spb
from xrollup.v1 import types_pb2 as pb

ALICE, BOB, CAROL = (derive_dev_account(i) for i in range(3))
OK = grpc.StatusCode.OK
INVALID = grpc.StatusCode.INVALID_ARGUMENT
UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
DENIED = grpc.StatusCode.PERMISSION_DENIED
EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED
PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION
NOT_FOUND = grpc.StatusCode.NOT_FOUND


# ---------------------------------------------------------------- building bad input


def transfer(expiry: int, **kw: object) -> pb.SignedTx:
    """A good transfer from ALICE to BOB unless `kw` changes it."""
    args: dict[str, object] = dict(
        signer=ALICE,
        rollup="alpha",
        to=BOB.address,
        asset="USDC",
        amount=1_000,
        expiry_height=expiry,
        chain_id=DEV_CHAIN_ID,
    )
    args.update(kw)
    return build_transfer(**args)  # type: ignore[arg-type]


def signed_body(body: pb.TxBody, *signers: Keypair) -> pb.SignedTx:
    """Sign hand-built body bytes, so fields the builders insist on can be left out."""
    raw = body.SerializeToString()
    return pb.SignedTx(
        body=raw,
        signatures=[pb.Signature(public_key=k.public_key, signature=k.sign(raw)) for k in signers],
    )


def signed_raw(raw: bytes, signer: Keypair = ALICE) -> pb.SignedTx:
    return pb.SignedTx(
        body=raw,
        signatures=[pb.Signature(public_key=signer.public_key, signature=signer.sign(raw))],
    )


def body_fields(expiry: int) -> dict[str, object]:
    return dict(
        chain_id=DEV_CHAIN_ID,
        rollup="alpha",
        sender=ALICE.address,
        nonce=7,
        expiry_height=expiry,
        action=pb.Action(transfer=pb.Transfer(to=BOB.address, asset="USDC", amount=5)),
    )


def without(fields: dict[str, object], name: str) -> dict[str, object]:
    return {k: v for k, v in fields.items() if k != name}


def with_bad_signature(tx: pb.SignedTx) -> pb.SignedTx:
    sig = bytearray(tx.signatures[0].signature)
    sig[0] ^= 0x01
    return pb.SignedTx(
        body=tx.body,
        signatures=[pb.Signature(public_key=tx.signatures[0].public_key, signature=bytes(sig))],
    )


def transfer_leg(sender: Keypair, rollup: str = "alpha") -> Leg:
    return Leg(rollup, sender.address, Transfer(CAROL.address, "USDC", Amount(1)))


def vote(signer: Keypair, rollup: str = "alpha", tamper: bool = False) -> pb.SignedVote:
    body = VoteBody(DEV_CHAIN_ID, rollup, Height(1), (), compute_genesis_hash(dev_genesis()))
    raw = codec.encode_vote_body(body)
    sig = signer.sign(raw)
    if tamper:
        sig = bytes([sig[0] ^ 1]) + sig[1:]
    return codec.encode_signed_vote(raw, Signature(signer.public_key, sig))


# ---------------------------------------------------------------- checking refusals


Call = Callable[[], Awaitable[object]]


@dataclasses.dataclass
class Case:
    name: str
    call: Call
    code: grpc.StatusCode
    words: tuple[str, ...]
    id: bytes | None  # the id the refused submission would have had


async def assert_refused(case: Case, client: Client, endpoint: str) -> None:
    err = await expect_rpc_error(case.call())
    details = err.details() or ""
    assert err.code() not in NEVER, f"{case.name}: {err.code()} {details}"
    assert err.code() == case.code, f"{case.name}: got {err.code()} {details!r}, want {case.code}"
    for word in case.words:
        assert word.lower() in details.lower(), (
            f"{case.name}: message {details!r} does not name {word!r}"
        )
    # Still healthy, and nothing written: no pending entry, no record of the id.
    assert await asyncio.to_thread(check_health, endpoint), f"{case.name}: server unhealthy"
    status = await client.status()
    assert status.pending == 0, f"{case.name}: something was queued"
    if case.id is not None:
        lookup = await expect_rpc_error(client.get_submission(case.id))
        assert lookup.code() == NOT_FOUND, f"{case.name}: GetSubmission gave {lookup.code()}"


async def wait_for_height(client: Client, height: int) -> None:
    while (await client.status()).height < height:
        await asyncio.sleep(0.02)


def build_cases(client: Client, head: int) -> list[Case]:
    stub = client.stub
    expiry = head + 1_000

    def tx_call(tx: pb.SignedTx) -> Call:
        return lambda: stub.SubmitTransaction(spb.SubmitTransactionRequest(tx=tx), timeout=10)

    def bundle_call(b: pb.SignedBundle) -> Call:
        return lambda: stub.SubmitBundle(spb.SubmitBundleRequest(bundle=b), timeout=10)

    def vote_call(v: pb.SignedVote) -> Call:
        return lambda: stub.SubmitVote(spb.SubmitVoteRequest(vote=v), timeout=10)

    def tx_case(name: str, tx: pb.SignedTx, code: grpc.StatusCode, *words: str) -> Case:
        return Case(name, tx_call(tx), code, words, id_of(tx))

    fields = body_fields(expiry)
    good = transfer(expiry)
    undecodable = signed_raw(b"\x0a\xff\x01not a protobuf")
    unsigned = pb.SignedTx(body=good.body)
    wrong_signer = sign_tx(codec.decode_tx(good).body, [BOB])  # sender ALICE, signed by BOB
    extra_signer = sign_tx(codec.decode_tx(transfer(expiry, nonce=11)).body, [ALICE, BOB])
    too_many_sigs = sign_tx(codec.decode_tx(transfer(expiry, nonce=12)).body, [ALICE] * 9)
    huge_body = transfer(expiry, asset="X" * 5_000)
    huge_message = signed_raw(b"\x00" * (5 * 1024 * 1024))
    nine_legs = build_bundle([transfer_leg(ALICE) for _ in range(9)], [ALICE], expiry)
    unsigned_bundle = pb.SignedBundle(
        body=build_bundle([transfer_leg(ALICE)], [ALICE], expiry).body
    )
    half_signed_bundle = build_bundle(
        [transfer_leg(ALICE), transfer_leg(BOB, "beta")], [ALICE], expiry
    )
    bad_sig_bundle = build_bundle([transfer_leg(ALICE)], [ALICE], expiry)
    bad_sig_bundle.signatures[0].signature = bytes(64)
    price_by_alice = build_price_update(ALICE, "alpha", "ETH", "USDC", 3_000_000_000, expiry)
    price_by_oracle_bad_pair = build_price_update(
        derive_oracle_key(), "alpha", "ETH", "DOGE", 1, expiry
    )
    vote_by_alice = vote(ALICE)
    vote_by_beta_key_for_alpha = vote(derive_rollup_vote_key("beta"), "alpha")
    vote_tampered = vote(derive_rollup_vote_key("alpha"), tamper=True)
    vote_unknown_rollup = vote(derive_rollup_vote_key("alpha"), "gamma")
    unsigned_vote = pb.SignedVote(body=vote(derive_rollup_vote_key("alpha")).body)
    oversized_batch = spb.SubmitBatchRequest(
        txs=[signed_raw(bytes([i]) * (1024 * 1024)) for i in range(5)]
    )
    long_batch = spb.SubmitBatchRequest(txs=[good] * 1_001)

    return [
        tx_case("undecodable body", undecodable, INVALID, "tx", "do not decode"),
        Case(
            "request without tx",
            lambda: stub.SubmitTransaction(spb.SubmitTransactionRequest()),
            INVALID,
            ("request.tx", "missing"),
            None,
        ),
        Case(
            "request without bundle",
            lambda: stub.SubmitBundle(spb.SubmitBundleRequest()),
            INVALID,
            ("request.bundle", "missing"),
            None,
        ),
        Case(
            "request without vote",
            lambda: stub.SubmitVote(spb.SubmitVoteRequest()),
            INVALID,
            ("request.vote", "missing"),
            None,
        ),
        tx_case(
            "empty body",
            pb.SignedTx(body=b"", signatures=list(good.signatures)),
            INVALID,
            "tx",
            "missing body",
        ),
        tx_case(
            "no rollup",
            signed_body(pb.TxBody(**without(fields, "rollup")), ALICE),
            INVALID,
            "tx.rollup",
            "missing",
        ),
        tx_case(
            "no action",
            signed_body(pb.TxBody(**without(fields, "action")), ALICE),
            INVALID,
            "tx.action",
            "missing",
        ),
        tx_case(
            "no chain id",
            signed_body(pb.TxBody(**without(fields, "chain_id")), ALICE),
            INVALID,
            "tx.chain_id",
            "missing",
        ),
        tx_case(
            "no sender",
            signed_body(pb.TxBody(**without(fields, "sender")), ALICE),
            INVALID,
            "tx.sender",
            "missing",
        ),
        tx_case(
            "no expiry",
            signed_body(pb.TxBody(**without(fields, "expiry_height")), ALICE),
            INVALID,
            "tx.expiry_height",
            "missing",
        ),
        tx_case(
            "short sender address",
            signed_body(pb.TxBody(**{**fields, "sender": b"\x01" * 19}), ALICE),
            INVALID,
            "tx.sender",
            "19 bytes",
        ),
        tx_case(
            "unknown rollup", transfer(expiry, rollup="gamma"), INVALID, "unknown rollup", "gamma"
        ),
        tx_case(
            "bad signature",
            with_bad_signature(good),
            UNAUTHENTICATED,
            "signatures[0]",
            "does not verify",
        ),
        tx_case(
            "signed by a key that does not own the sender",
            wrong_signer,
            DENIED,
            ALICE.address.hex(),
            "has not signed",
        ),
        tx_case(
            "signed by an account it does not touch too",
            extra_signer,
            DENIED,
            BOB.address.hex(),
            "does not touch",
        ),
        tx_case("too many signatures", too_many_sigs, EXHAUSTED, "9 signatures", "limit is 8"),
        tx_case("unsigned", unsigned, INVALID, "tx.signatures", "unsigned"),
        tx_case(
            "wrong chain id",
            transfer(expiry, chain_id="another-chain"),
            INVALID,
            "chain_id",
            "another-chain",
        ),
        tx_case(
            "message over the server's max message length",
            huge_message,
            EXHAUSTED,
            "larger than max",
        ),
        Case(
            "batch over the server's max message length",
            lambda: stub.SubmitBatch(oversized_batch, timeout=30),
            EXHAUSTED,
            ("larger than max",),
            None,
        ),
        tx_case("body over max_body_bytes", huge_body, EXHAUSTED, "tx body", "limit is 4096"),
        Case(
            "bundle with too many legs",
            bundle_call(nine_legs),
            EXHAUSTED,
            ("9 legs", "limit is 8"),
            id_of(nine_legs),
        ),
        Case(
            "unsigned bundle",
            bundle_call(unsigned_bundle),
            INVALID,
            ("bundle.signatures", "unsigned"),
            id_of(unsigned_bundle),
        ),
        Case(
            "bundle not signed by every leg's sender",
            bundle_call(half_signed_bundle),
            DENIED,
            (BOB.address.hex(), "has not signed"),
            id_of(half_signed_bundle),
        ),
        Case(
            "bundle with a bad signature",
            bundle_call(bad_sig_bundle),
            UNAUTHENTICATED,
            ("bundle.signatures[0]", "does not verify"),
            id_of(bad_sig_bundle),
        ),
        Case(
            "batch over max_batch",
            lambda: stub.SubmitBatch(long_batch, timeout=30),
            EXHAUSTED,
            ("1001 transactions", "limit is 1000"),
            id_of(good),
        ),
        tx_case(
            "expired (expiry below the next height)",
            transfer(expiry, expiry_height=1),
            PRECONDITION,
            "expired at height 1",
        ),
        tx_case(
            "expiry too far ahead",
            transfer(expiry, expiry_height=head + 1_000_000),
            INVALID,
            "expiry_height",
            "blocks ahead",
        ),
        tx_case("price update not from the oracle key", price_by_alice, DENIED, "oracle"),
        tx_case(
            "price update for an unknown asset",
            price_by_oracle_bad_pair,
            INVALID,
            "unknown asset",
            "DOGE",
        ),
        Case(
            "vote signed by a non-rollup key",
            vote_call(vote_by_alice),
            DENIED,
            ("genesis vote key", "alpha"),
            id_of(vote_by_alice),
        ),
        Case(
            "vote signed by another rollup's key",
            vote_call(vote_by_beta_key_for_alpha),
            DENIED,
            ("genesis vote key",),
            id_of(vote_by_beta_key_for_alpha),
        ),
        Case(
            "vote with a bad signature",
            vote_call(vote_tampered),
            UNAUTHENTICATED,
            ("vote.signature", "does not verify"),
            id_of(vote_tampered),
        ),
        Case(
            "vote for an unknown rollup",
            vote_call(vote_unknown_rollup),
            INVALID,
            ("unknown rollup", "gamma"),
            id_of(vote_unknown_rollup),
        ),
        Case(
            "unsigned vote",
            vote_call(unsigned_vote),
            INVALID,
            ("vote.signature", "unsigned"),
            id_of(unsigned_vote),
        ),
        tx_case("amount 0", transfer(expiry, amount=0), INVALID, "amount", "must be positive"),
        tx_case(
            "amount over max_amount",
            transfer(expiry, amount=2**63),
            EXHAUSTED,
            "amount",
            "over the limit",
        ),
        tx_case("unknown asset", transfer(expiry, asset="DOGE"), INVALID, "unknown asset", "DOGE"),
        Case(
            "GetSubmission with a short id",
            lambda: client.get_submission(b"\x01" * 31),
            INVALID,
            ("31 bytes", "want 32"),
            None,
        ),
        Case(
            "GetBlock above the head",
            lambda: client.get_block(head + 1_000_000),
            NOT_FOUND,
            ("no block at height",),
            None,
        ),
    ]


def test_each_bad_input_gets_its_own_status_and_nothing_is_written(
    start_sequencer, subtests
) -> None:
    seq = start_sequencer()

    async def run() -> None:
        async with Client(seq.endpoint) as client:
            await wait_for_height(client, 2)  # so that expiry height 1 is in the past
            head = (await client.status()).height
            cases = build_cases(client, head)
            for case in cases:
                with subtests.test(msg=case.name):
                    await assert_refused(case, client, seq.endpoint)

            # Still serving: a good transfer is ordered after all that.
            tx = transfer(head + 1_000, nonce=99)
            ack = await client.submit_tx(tx)
            assert not ack.duplicate
            # Nothing refused reached any block: the good transfer is the chain's only entry.
            where = index_entries(await read_verified_chain(client))
            assert_acked_in_chain([Acked(ack.id, ack.height, ack.index)], where)
            assert set(where) == {ack.id}
            refused_ids = {c.id for c in cases if c.id is not None}
            assert not refused_ids & set(where)

    asyncio.run(run())
    assert check_health(seq.endpoint)
    assert_clean_log(seq.log)


def test_batch_refuses_bad_transactions_alone(start_sequencer) -> None:
    seq = start_sequencer()

    async def run() -> None:
        async with Client(seq.endpoint) as client:
            await wait_for_height(client, 2)
            head = (await client.status()).height
            expiry = head + 1_000
            txs = [
                ("good 1", transfer(expiry, nonce=1), OK, ""),
                (
                    "bad signature",
                    with_bad_signature(transfer(expiry, nonce=2)),
                    UNAUTHENTICATED,
                    "does not verify",
                ),
                ("good 2", transfer(expiry, nonce=3), OK, ""),
                ("unknown asset", transfer(expiry, asset="DOGE"), INVALID, "unknown asset"),
                ("expired", transfer(expiry, expiry_height=1), PRECONDITION, "expired"),
                (
                    "wrong signer",
                    sign_tx(codec.decode_tx(transfer(expiry, nonce=4)).body, [BOB]),
                    DENIED,
                    "has not signed",
                ),
                ("undecodable", signed_raw(b"\xff\xff"), INVALID, "do not decode"),
                ("unsigned", pb.SignedTx(body=transfer(expiry, nonce=5).body), INVALID, "unsigned"),
                ("amount 0", transfer(expiry, amount=0), INVALID, "must be positive"),
                ("too big", transfer(expiry, asset="X" * 5_000), EXHAUSTED, "limit is 4096"),
                ("good 3", transfer(expiry, nonce=6), OK, ""),
            ]
            items = await client.submit_batch([tx for _, tx, _, _ in txs])
            assert len(items) == len(txs)
            acked = []
            for (name, tx, code, words), item in zip(txs, items, strict=True):
                assert item.code not in NEVER, f"{name}: {item.code} {item.message}"
                assert item.code == code, f"{name}: got {item.code} {item.message!r}, want {code}"
                assert words.lower() in item.message.lower(), f"{name}: {item.message!r}"
                if code == OK:
                    assert item.id == id_of(tx) and item.height > head
                    acked.append(Acked(item.id, item.height, item.index))
                    r = await client.get_submission(item.id)
                    assert r.state == ORDERED and (r.height, r.index) == (item.height, item.index)
                else:
                    assert item.height == 0
                    lookup = await expect_rpc_error(client.get_submission(id_of(tx)))
                    assert lookup.code() == NOT_FOUND, name
            assert await asyncio.to_thread(check_health, seq.endpoint)
            where = index_entries(await read_verified_chain(client))
            assert_acked_in_chain(acked, where)
            assert set(where) == {a.id for a in acked}

    asyncio.run(run())
    assert_clean_log(seq.log)


def test_full_pool_refuses_with_resource_exhausted(start_sequencer, tmp_path: Path) -> None:
    genesis = dataclasses.replace(
        dev_genesis(), block_interval_ms=2_000, limits=dataclasses.replace(Limits(), max_pool=50)
    )
    genesis_path = tmp_path / "genesis.json"
    genesis_path.write_text(encode_genesis(genesis))
    seq = start_sequencer(genesis=genesis_path)

    async def run() -> None:
        async with Client(seq.endpoint) as client:
            status = await client.status()
            assert status.block_interval_ms == 2_000
            expiry = status.height + 1_000
            txs = [transfer(expiry, nonce=n) for n in range(120)]
            results = await asyncio.gather(
                *(client.submit_tx(tx) for tx in txs), return_exceptions=True
            )

            acked: list[Acked] = []
            refused: list[pb.SignedTx] = []
            for tx, r in zip(txs, results, strict=True):
                if isinstance(r, grpc.aio.AioRpcError):
                    assert r.code() not in NEVER, r
                    assert r.code() == EXHAUSTED, f"{r.code()} {r.details()}"
                    assert "pool is full" in (r.details() or ""), r.details()
                    refused.append(tx)
                else:
                    assert not isinstance(r, BaseException), r
                    assert r.id == id_of(tx)
                    acked.append(Acked(r.id, r.height, r.index))
            assert refused, "120 concurrent submissions into a pool of 50 were all admitted"
            assert len(acked) >= 50
            assert await asyncio.to_thread(check_health, seq.endpoint)

            # A batch into a full pool: the overflow is refused item by item.
            batch = [transfer(expiry, nonce=1_000 + n) for n in range(70)]
            items = await client.submit_batch(batch)
            for tx, item in zip(batch, items, strict=True):
                assert item.code in (OK, EXHAUSTED), f"{item.code} {item.message}"
                if item.ok:
                    acked.append(Acked(item.id, item.height, item.index))
                else:
                    assert "pool is full" in item.message
                    refused.append(tx)
            assert sum(1 for i in items if not i.ok) >= 20

            for tx in refused:
                lookup = await expect_rpc_error(client.get_submission(id_of(tx)))
                assert lookup.code() == NOT_FOUND
            where = index_entries(await read_verified_chain(client, genesis))
            assert_acked_in_chain(acked, where)
            assert set(where) == {a.id for a in acked}
            assert await asyncio.to_thread(check_health, seq.endpoint)

    asyncio.run(run())
    assert_clean_log(seq.log)

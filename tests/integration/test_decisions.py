"""The sequencer's side of the bundle protocol against a real process, with votes
submitted by the test in place of rollup nodes: each bundle gets exactly one
decision in the ordered log — commit in the block of the last yes vote, abort in
the block of the first no, abort at the deadline height when a vote is missing —
and a sequencer killed mid-protocol rebuilds its view from the log."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

from chainsupport import assert_clean_log, read_verified_chain

from devnet.launcher import kill_pid
from xrollup.client import Client, build_bundle, build_vote
from xrollup.genesis import dev_genesis, encode_genesis
from xrollup.keys import Keypair, derive_dev_account, derive_rollup_vote_key
from xrollup.model import Block, BundleVote, Decision, Leg, ReasonCode, Transfer
from xrollup.numeric import Amount, Height
from xrollup.v1 import types_pb2 as pb

DEADLINE = 15
ALICE, BOB, CAROL = (derive_dev_account(i) for i in range(3))


GENESIS = dataclasses.replace(
    dev_genesis(),
    limits=dataclasses.replace(dev_genesis().limits, bundle_deadline_blocks=DEADLINE),
)


def write_genesis(tmp_path: Path) -> Path:
    path = tmp_path / "genesis.json"
    path.write_text(encode_genesis(GENESIS))
    return path


def two_rollup_bundle(expiry: int, nonce: int) -> pb.SignedBundle:
    legs = [
        Leg("alpha", ALICE.address, Transfer(CAROL.address, "USDC", Amount(1))),
        Leg("beta", BOB.address, Transfer(CAROL.address, "ETH", Amount(1))),
    ]
    return build_bundle(legs, [ALICE, BOB], expiry, nonce=nonce)


def vote(rollup: str, height: int, *votes: tuple[bytes, bool, ReasonCode]) -> pb.SignedVote:
    """`rollup`'s signed votes on bundles ordered (and prepared) at `height`."""
    key: Keypair = derive_rollup_vote_key(rollup)
    return build_vote(
        key, rollup, height, [BundleVote(b, y, r, Height(height)) for b, y, r in votes], GENESIS
    )


def decisions(blocks: list[Block]) -> dict[bytes, list[tuple[int, Decision]]]:
    """bundle id -> every (height, decision) the log holds for it."""
    out: dict[bytes, list[tuple[int, Decision]]] = {}
    for block in blocks:
        for entry in block.entries:
            if isinstance(entry, Decision):
                out.setdefault(entry.bundle_id, []).append((int(block.height), entry))
    return out


async def wait_for_height(client: Client, height: int) -> None:
    while (await client.status()).height < height:
        await asyncio.sleep(0.02)


def test_each_bundle_is_decided_once_by_votes_or_deadline(start_sequencer, tmp_path: Path) -> None:
    seq = start_sequencer(genesis=write_genesis(tmp_path))

    async def run() -> None:
        async with Client(seq.endpoint) as c:
            expiry = await c.expiry()
            bundles = [two_rollup_bundle(expiry, n) for n in (1, 2, 3)]
            acks = await asyncio.gather(*(c.submit_bundle(b) for b in bundles))
            ids = [a.id for a in acks]

            # Both rollups vote yes on the first: commit, in the block of the last vote.
            await c.submit_vote(vote("alpha", acks[0].height, (ids[0], True, ReasonCode.NONE)))
            last_yes = await c.submit_vote(
                vote("beta", acks[0].height, (ids[0], True, ReasonCode.NONE))
            )
            # Beta votes no on the second: abort at once; alpha's later yes changes nothing.
            no = vote("beta", acks[1].height, (ids[1], False, ReasonCode.INSUFFICIENT_FUNDS))
            first_no = await c.submit_vote(no)
            await c.submit_vote(vote("alpha", acks[1].height, (ids[1], True, ReasonCode.NONE)))
            # Only alpha votes on the third: abort at its deadline height.
            await c.submit_vote(vote("alpha", acks[2].height, (ids[2], True, ReasonCode.NONE)))
            # A second vote by the same rollup is ignored.
            await c.submit_vote(vote("beta", acks[0].height, (ids[0], False, ReasonCode.REFUSED)))

            await wait_for_height(c, acks[2].height + DEADLINE + 3)
            blocks = await read_verified_chain(c, GENESIS)

        found = decisions(blocks)
        assert set(found) == set(ids), "a bundle with no decision, or a decision for nothing"
        assert all(len(v) == 1 for v in found.values()), f"decided more than once: {found}"

        (h0, d0), (h1, d1), (h2, d2) = (found[i][0] for i in ids)
        assert d0.commit and h0 == last_yes.height
        assert not d1.commit and h1 == first_no.height and d1.code == ReasonCode.VOTED_NO
        assert not d2.commit and h2 == acks[2].height + DEADLINE
        assert d2.code == ReasonCode.DEADLINE
        # A decision comes after the entries it follows from, in its block.
        block = blocks[h0 - 1]
        index = next(i for i, e in enumerate(block.entries) if isinstance(e, Decision))
        assert index > last_yes.index

    asyncio.run(run())
    assert_clean_log(seq.log)


def test_bundle_protocol_survives_sigkill(start_sequencer, tmp_path: Path) -> None:
    genesis = write_genesis(tmp_path)
    seq = start_sequencer(genesis=genesis, name="seq")

    async def before() -> tuple[list[bytes], int, int]:
        async with Client(seq.endpoint) as c:
            expiry = await c.expiry()
            half_voted, unvoted = two_rollup_bundle(expiry, 10), two_rollup_bundle(expiry, 11)
            a0, a1 = await asyncio.gather(c.submit_bundle(half_voted), c.submit_bundle(unvoted))
            await c.submit_vote(vote("alpha", a0.height, (a0.id, True, ReasonCode.NONE)))
            return [a0.id, a1.id], a1.height, a0.height

    ids, unvoted_height, ids_height = asyncio.run(before())
    kill_pid(seq.pid, seq.popen)
    seq = start_sequencer(genesis=genesis, name="seq")  # same data directory

    async def after() -> None:
        async with Client(seq.endpoint) as c:
            # Beta's vote after the restart completes the first bundle: the alpha vote
            # ordered before the kill still counts.
            last = await c.submit_vote(vote("beta", ids_height, (ids[0], True, ReasonCode.NONE)))
            await wait_for_height(c, max(last.height, unvoted_height + DEADLINE) + 3)
            found = decisions(await read_verified_chain(c, GENESIS))
        assert set(found) == set(ids)
        assert all(len(v) == 1 for v in found.values()), f"decided more than once: {found}"
        (h0, d0), (h1, d1) = found[ids[0]][0], found[ids[1]][0]
        assert d0.commit and h0 == last.height
        assert not d1.commit and h1 == unvoted_height + DEADLINE

    asyncio.run(after())


def test_restart_after_a_deadline_abort_of_a_bundle_older_than_the_window(
    start_sequencer, tmp_path: Path
) -> None:
    """The restarted sequencer rebuilds its tracker from the last DEADLINE blocks;
    a bundle ordered before them but decided inside them must not stop it."""
    genesis = write_genesis(tmp_path)
    seq = start_sequencer(genesis=genesis, name="seq")

    async def before() -> int:
        async with Client(seq.endpoint) as c:
            ack = await c.submit_bundle(two_rollup_bundle(await c.expiry(), 20))
            await wait_for_height(c, ack.height + DEADLINE + 5)
            return ack.height

    ordered = asyncio.run(before())
    kill_pid(seq.pid, seq.popen)
    seq = start_sequencer(genesis=genesis, name="seq")

    async def after() -> None:
        async with Client(seq.endpoint) as c:
            head = (await c.status()).height
            await wait_for_height(c, head + 3)  # it seals again
            found = decisions(await read_verified_chain(c, GENESIS))
        assert [h for h, _ in next(iter(found.values()))] == [ordered + DEADLINE]

    asyncio.run(after())

"""Helpers the explorer's tests share (tests/integration/test_explorer.py and
tests/browser/test_explorer_browser.py): the explorer's URL from a running
devnet, plain HTTP GETs, and the two option bundles of the demo story, one that
commits and one under-collateralized that aborts, built with the client
library's builder as devnet/demo.py builds them."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from devnet.manifest import Manifest
from xrollup.client import Client, NodeClient, build_open_option, wait_for_decision
from xrollup.keys import derive_dev_account, encode_address
from xrollup.model import OptionKind
from xrollup.v1 import node_pb2 as npb

USDC, ETH = 10**6, 10**9
WRITER, HOLDER = derive_dev_account(2), derive_dev_account(3)


@dataclass(frozen=True)
class Options:
    committed: str  # bundle (= option = lien) id, hex
    aborted: str
    aborted_reason: str  # what beta said when it voted no
    writer: str  # 0x address
    holder: str


@dataclass(frozen=True)
class Reply:
    status: int
    url: str  # after redirects
    body: str

    def json(self) -> Any:
        return json.loads(self.body)


def explorer_url(manifest: Manifest) -> str:
    rec = manifest.get("explorer")
    assert rec is not None, "devnet.json has no explorer"
    return f"http://{rec.endpoint}"


def get(url: str, timeout: float = 10.0) -> Reply:
    """GET `url` (following redirects); 4xx and 5xx are replies, not errors."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return Reply(r.status, r.geturl(), r.read().decode())
    except urllib.error.HTTPError as e:
        return Reply(e.code, e.geturl() or url, e.read().decode())


async def open_options(manifest: Manifest) -> Options:
    """A 2 ETH put at strike 2,800 USDC fully collateralized (commits), then the
    same put with 1,000 USDC of collateral (beta refuses the margin: aborts)."""
    seq = manifest.get("sequencer")
    alpha, beta = manifest.get("alpha"), manifest.get("beta")
    assert seq and alpha and beta
    async with (
        Client(seq.endpoint) as c,
        NodeClient(alpha.endpoint) as a,
        NodeClient(beta.endpoint) as b,
    ):
        head = (await c.status()).height
        ids = []
        for collateral in (None, 1_000 * USDC):
            bundle = build_open_option(
                WRITER,
                HOLDER,
                OptionKind.PUT,
                2_800 * USDC,
                2 * ETH,
                head + 500,
                50 * USDC,
                head + 200,
                collateral=collateral,
            )
            ack = await c.submit_bundle(bundle)
            records = await wait_for_decision({"alpha": a, "beta": b}, ack.id, timeout=30)
            ids.append((ack.id.hex(), records))
    (committed, ok), (aborted, no) = ids
    assert all(r.status == npb.BundleRecord.STATUS_COMMITTED for r in ok.values()), ok
    assert all(r.status == npb.BundleRecord.STATUS_ABORTED for r in no.values()), no
    return Options(
        committed,
        aborted,
        no["beta"].reason,
        encode_address(WRITER.address),
        encode_address(HOLDER.address),
    )


def wait_indexed(base: str, bundle_ids: list[str], timeout: float = 15.0) -> dict[str, Any]:
    """/api/home once the explorer's index lists every bundle id as decided."""
    deadline = time.monotonic() + timeout
    while True:
        home = get(base + "/api/home").json()
        states = {x["id"]: x["state"] for x in home["latest_bundles"]}
        if all(states.get(i) in ("committed", "aborted") for i in bundle_ids):
            return home
        assert time.monotonic() < deadline, f"explorer did not index {bundle_ids}: {states}"
        time.sleep(0.1)


def run(coro: Any) -> Any:
    return asyncio.run(coro)

"""A bundle's lifecycle timeline (devnet.lifecycle.trace_bundle) on a real devnet:
an option open that commits and an under-collateralized one that aborts, traced
from the public gRPC APIs only. The stages come in order with heights that agree
with the nodes' records and milliseconds that add up; the abort names the rollup
that voted no and why; an unknown id is "unknown". `devnet bundle trace` prints
the same timeline (table and --json); an unknown or malformed id is one line."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from devnet import network
from devnet.lifecycle import DECIDED, FINISHED, ORDERED, PREPARED, SUBMITTED, trace_bundle
from devnet.manifest import Manifest
from xrollup.client import Client, NodeClient, build_open_option, build_price_update
from xrollup.genesis import DEV_CHAIN_ID
from xrollup.keys import derive_dev_account, derive_oracle_key
from xrollup.model import OptionKind

USDC = 10**6
ETH = 10**9


async def _trace_two(manifest: Manifest) -> tuple[dict, dict]:  # type: ignore[type-arg]
    seq_ep = manifest.get("sequencer").endpoint  # type: ignore[union-attr]
    nodes_eps = {p.name: (p.rollup, p.endpoint) for p in manifest.processes if p.role == "node"}
    writer, holder = derive_dev_account(2), derive_dev_account(3)
    async with Client(seq_ep) as seq:
        clients = {n: (r, NodeClient(ep)) for n, (r, ep) in nodes_eps.items()}
        try:
            head = (await seq.status()).height
            price = build_price_update(
                derive_oracle_key(), "beta", "ETH", "USDC", 3_000 * USDC, head + 100, DEV_CHAIN_ID
            )
            await seq.submit_tx(price)
            await asyncio.sleep(0.3)  # the price is applied before the option opens

            def open_bundle(collateral: int | None, nonce: int) -> object:
                return build_open_option(
                    writer,
                    holder,
                    OptionKind.PUT,
                    2_800 * USDC,
                    2 * ETH,
                    head + 60,
                    50 * USDC,
                    head + 200,
                    collateral=collateral,
                    nonce=nonce,
                )

            good = await seq.submit_bundle(open_bundle(None, 1))  # type: ignore[arg-type]
            thin = await seq.submit_bundle(open_bundle(1_000 * USDC, 2))  # type: ignore[arg-type]
            traces = {}
            for name, ack in (("good", good), ("thin", thin)):
                for _ in range(200):
                    t = await trace_bundle(seq, clients, ack.id)
                    done = [s for s in t.stages if s.name == FINISHED]
                    if t.state in ("committed", "aborted") and len(done) == len(clients):
                        break
                    await asyncio.sleep(0.05)
                traces[name] = t.to_json()
            missing = await trace_bundle(seq, clients, b"\x07" * 32)
            assert missing.state == "unknown" and missing.stages == ()
        finally:
            for _, c in clients.values():
                await c.close()
    return traces["good"], traces["thin"]


DEVNET = str(Path(sys.executable).parent / "devnet")


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict, dict]]:  # type: ignore[type-arg]
    """One devnet for the module; the two bundles' traces."""
    d = tmp_path_factory.mktemp("lifecycle") / "dn"
    try:
        manifest = network.start_devnet(d)
        good, thin = asyncio.run(_trace_two(manifest))
        print(good, thin, sep="\n")
        yield d, good, thin
    finally:
        network.stop_devnet(d, grace=5.0)


def _devnet(d: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DEVNET, *args, "--data-dir", str(d)], capture_output=True, text=True, timeout=60
    )


@pytest.mark.timeout(120)
def test_trace_shows_commit_and_abort_with_reason(traced: tuple[Path, dict, dict]) -> None:  # type: ignore[type-arg]
    _, good, thin = traced

    for t, state in ((good, "committed"), (thin, "aborted")):
        assert t["state"] == state
        names = [s["name"] for s in t["stages"]]
        assert names[:2] == [SUBMITTED, ORDERED]
        assert names.count(PREPARED) == 2 and names.count(DECIDED) == 1
        assert names.count(FINISHED) == 2  # alpha's and beta's node
        assert names.index(DECIDED) > max(i for i, n in enumerate(names) if n == PREPARED)
        assert t["rollups"] == ["alpha", "beta"]
        stages = {(s["name"], s["rollup"]): s for s in t["stages"]}
        ordered = stages[(ORDERED, None)]["height"]
        decided = stages[(DECIDED, None)]
        assert ordered > 0 and decided["height"] > ordered
        for r in ("alpha", "beta"):
            prep = stages[(PREPARED, r)]
            assert ordered < prep["height"] <= decided["height"]
            assert prep["ms_since_previous"] is not None and prep["ms_since_previous"] >= 0
        for s in t["stages"]:
            if s["name"] == FINISHED:
                assert s["height"] == decided["height"]
                assert s["ms_since_previous"] is not None and s["ms_since_previous"] >= 0
        assert stages[(SUBMITTED, None)]["unix_ms"] > 0
        assert t["total_ms"] is not None and t["total_ms"] > 0

    g = {(s["name"], s["rollup"]): s for s in good["stages"]}
    assert g[(DECIDED, None)]["ok"] is True and g[(DECIDED, None)]["code"] == "ALL_YES"
    assert all(g[(PREPARED, r)]["ok"] for r in ("alpha", "beta"))

    h = {(s["name"], s["rollup"]): s for s in thin["stages"]}
    decided = h[(DECIDED, None)]
    assert decided["ok"] is False and decided["code"] == "VOTED_NO"
    # Too little collateral: the option's rollup refuses the margin; the reason says so.
    no = [r for r in ("alpha", "beta") if h[(PREPARED, r)]["ok"] is False]
    assert no and all(h[(PREPARED, r)]["code"] != "NONE" for r in no)
    assert all(f"{r} voted no" in decided["reason"] for r in no)
    assert all(h[(PREPARED, r)]["reason"] for r in no)
    assert all(not s["ok"] for s in thin["stages"] if s["name"] == FINISHED)


@pytest.mark.timeout(120)
def test_devnet_bundle_trace_prints_the_timeline(traced: tuple[Path, dict, dict]) -> None:  # type: ignore[type-arg]
    d, good, thin = traced
    p = _devnet(d, "bundle", "trace", thin["id"], "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["state"] == "aborted"
    # Heights and outcomes are consensus data: the command agrees with the library.
    same = [(s["name"], s["rollup"], s["height"], s["ok"], s["code"]) for s in out["stages"]]
    assert same == [
        (s["name"], s["rollup"], s["height"], s["ok"], s["code"]) for s in thin["stages"]
    ]

    text = _devnet(d, "bundle", "trace", thin["id"])
    assert text.returncode == 0, text.stderr
    decided = next(s for s in thin["stages"] if s["name"] == DECIDED)
    assert f"bundle {thin['id']}: aborted" in text.stdout
    assert "decided" in text.stdout and "abort" in text.stdout and "margin" in text.stdout
    assert str(decided["height"]) in text.stdout
    assert all(r in text.stdout for r in ("alpha", "beta"))

    ok = _devnet(d, "bundle", "trace", good["id"], "--wait", "5")
    assert ok.returncode == 0 and "committed" in ok.stdout and "commit" in ok.stdout

    unknown = _devnet(d, "bundle", "trace", "07" * 32)
    assert unknown.returncode == 1
    assert unknown.stderr.strip().count("\n") == 0 and unknown.stderr.startswith("error:")
    assert "no submission" in unknown.stderr and "Traceback" not in unknown.stderr

    bad = _devnet(d, "bundle", "trace", "xyz")
    assert bad.returncode == 2, bad.stderr
    assert bad.stderr.strip().count("\n") == 0 and bad.stderr.startswith("error:")

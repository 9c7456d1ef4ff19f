"""The explorer on a real devnet (sequencer, proxy, alpha, beta and the explorer
as processes, started by devnet.network.start_devnet as `devnet up` does), over
HTTP: every page and its /api twin answer 200 with their content; a bad id is a
400 page, an unknown one a 404; search finds each kind; a paused node is shown
down and the pages still render; an explorer given endpoints alone works and
exits 0 on SIGTERM; `devnet down` stops it."""

from __future__ import annotations

import html
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from explorersupport import Options, explorer_url, get, open_options, run, wait_indexed

from devnet import faults, launcher, network
from devnet.manifest import Manifest
from xrollup.client import Client, NodeClient
from xrollup.keys import derive_dev_account, encode_address

UNKNOWN = "ab" * 32


@dataclass(frozen=True)
class Net:
    dir: Path
    manifest: Manifest
    base: str
    options: Options
    transfer: str  # id of a 5 USDC transfer on alpha, hex
    transfer_height: int


async def _transfer(manifest: Manifest) -> tuple[str, int]:
    seq, alpha = manifest.get("sequencer"), manifest.get("alpha")
    assert seq and alpha
    async with Client(seq.endpoint) as c, NodeClient(alpha.endpoint) as a:
        tx = await c.build_transfer(
            derive_dev_account(0), "alpha", derive_dev_account(1).address, "USDC", 5_000_000
        )
        ack = await c.submit_tx(tx)
        assert (await a.wait_for_receipt(ack.id)).ok
        return ack.id.hex(), ack.height


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    data_dir = tmp_path_factory.mktemp("explorer") / "dn"
    manifest = network.start_devnet(data_dir)
    try:
        base = explorer_url(manifest)
        transfer, height = run(_transfer(manifest))
        options = run(open_options(manifest))
        wait_indexed(base, [options.committed, options.aborted])
        yield Net(data_dir, manifest, base, options, transfer, height)
    finally:
        network.stop_devnet(data_dir, grace=5.0)


def test_home_shows_the_head_rates_processes_and_latest_bundles(net: Net) -> None:
    first = get(net.base + "/api/home").json()
    page = get(net.base + "/")
    second = get(net.base + "/api/home").json()

    assert page.status == 200
    assert 'id="head"' in page.body and "Latest bundles" in page.body
    assert "/static/explorer.js" in page.body and "/static/style.css" in page.body
    assert second["head"] > first["head"] > 0, "the head height moves on"
    assert second["rates"]["blocks_per_s"] > 0
    rows = {p["name"]: p for p in second["processes"]}
    assert {"sequencer", "proxy", "alpha", "beta", "explorer"} <= rows.keys()
    assert all(r["up"] for r in rows.values()), rows
    assert rows["alpha"]["connected"] is True and rows["alpha"]["height"] > 0
    assert second["faults"] == []
    states = {b["id"]: b["state"] for b in second["latest_bundles"]}
    assert states[net.options.committed] == "committed"
    assert states[net.options.aborted] == "aborted"
    assert net.options.committed in page.body  # in the title and link of the short id
    assert get(net.base + "/static/style.css").status == 200
    assert get(net.base + "/healthz").json()["ok"] is True


def test_every_page_and_its_api_answer_with_their_content(net: Net) -> None:
    o = net.options
    ordered = get(f"{net.base}/api/bundle/{o.committed}").json()["height"]
    pages = {
        f"/block/{ordered}": [
            "Block",
            "Verified as a node verifies it",
            "leader term",
            "Bundles (1)",
            o.committed,
        ],
        f"/tx/{net.transfer}": ["Receipt on alpha", "5 USDC", f"block {net.transfer_height}"],
        f"/bundle/{o.committed}": ["committed", "lock <b>5,600 USDC</b>", 'data-stage="decided"'],
        f"/bundle/{o.aborted}": ["aborted", html.escape(o.aborted_reason), "abort"],
        f"/option/{o.committed}": ["Option", "2,800 USDC per ETH", "Lien 1 of 1, on alpha"],
        f"/lien/{o.committed}": ["Lien", "5,600 USDC", o.writer],
        f"/account/{o.writer}": ["Balances", "USDC", o.committed, "written by this account"],
    }
    for path, snippets in pages.items():
        r = get(net.base + path)
        assert r.status == 200, (path, r.body[:500])
        for s in snippets:
            assert s in r.body, f"{path}: {s!r} missing"

    block = get(f"{net.base}/api/block/{ordered}").json()
    assert block["verified"] is True and block["note"] == ""
    assert block["term"] == 0  # a single sequencer's
    assert [e["id"] for e in block["groups"]["bundles"]] == [o.committed]
    tx = get(f"{net.base}/api/tx/{net.transfer}").json()
    assert tx["entry"]["action"] == {
        "type": "transfer",
        "to": encode_address(derive_dev_account(1).address),
        "asset": "USDC",
        "amount": "5000000",
    }
    assert [(r["node"], r["status"]) for r in tx["receipts"]] == [("alpha", "ok")]
    committed = get(f"{net.base}/api/bundle/{o.committed}").json()
    stages = [s["name"] for s in committed["trace"]["stages"]]
    assert stages[:2] == ["submitted", "ordered"] and "decided" in stages
    decided = next(s for s in committed["trace"]["stages"] if s["name"] == "decided")
    assert decided["ok"] is True
    aborted = get(f"{net.base}/api/bundle/{o.aborted}").json()
    decided = next(s for s in aborted["trace"]["stages"] if s["name"] == "decided")
    assert decided["ok"] is False and o.aborted_reason in decided["reason"]
    option = get(f"{net.base}/api/option/{o.committed}").json()
    assert option["rollup"] == "beta" and option["option"]["status"] == "open"
    assert option["option"]["strike"] == str(2_800 * 10**6)
    [backing] = option["liens"]
    assert backing["rollup"] == "alpha" and backing["lien"]["status"] == "locked"
    assert backing["lien"]["owner"] == o.writer
    lien = get(f"{net.base}/api/lien/{o.committed}").json()
    assert lien["rollup"] == "alpha" and lien["lien"]["amount"] == str(5_600 * 10**6)
    account = get(f"{net.base}/api/account/{o.writer}").json()
    assert [b["rollup"] for b in account["balances"]] == ["alpha", "beta"]
    assert {(p["kind"], p["id"]) for p in account["positions"]} == {
        ("option", o.committed),
        ("lien", o.committed),
    }
    assert {e["id"] for e in account["entries"]} == {o.committed, o.aborted}


def test_bad_ids_are_400_and_unknown_ids_404(net: Net) -> None:
    for path in ("/tx/xyz", "/bundle/12ab", "/option/0x12", "/lien/" + "g" * 64):
        for prefix in ("", "/api"):
            r = get(net.base + prefix + path)
            assert r.status == 400, (prefix + path, r.body[:300])
            assert "64 hex digits" in r.body
    assert get(net.base + "/block/abc").status == 400
    assert get(net.base + "/block/0").status == 400
    assert get(net.base + "/account/0x1234").status == 400
    for kind in ("tx", "bundle", "option", "lien"):
        r = get(f"{net.base}/{kind}/{UNKNOWN}")
        assert r.status == 404, (kind, r.body[:300])
        assert UNKNOWN in r.body
    assert get(f"{net.base}/api/block/999999999").status == 404
    assert get(f"{net.base}/no/such/page").status == 404


def test_search_finds_blocks_ids_and_accounts(net: Net) -> None:
    o = net.options
    cases = {
        "7": "/block/7",
        net.transfer: f"/tx/{net.transfer}",
        o.committed: f"/bundle/{o.committed}",
        "0x" + o.aborted: f"/bundle/{o.aborted}",
        o.writer: f"/account/{o.writer}",
        o.writer.removeprefix("0x").upper(): f"/account/{o.writer}",
    }
    for q, path in cases.items():
        r = get(f"{net.base}/search?q={q}")
        assert (r.status, r.url) == (200, net.base + path), q
        assert get(f"{net.base}/api/search?q={q}").json() == {"url": path}
    missing = get(f"{net.base}/search?q={UNKNOWN}")
    assert missing.status == 404 and "Nothing has id" in missing.body
    assert get(f"{net.base}/search?q=hello").status == 400


def test_faults_in_force_are_listed_and_a_paused_node_is_shown_down(net: Net) -> None:
    faults.pause(net.dir, "beta")
    faults.delay(net.dir, "alpha", 5)
    try:
        deadline = time.monotonic() + 5  # the process state settles, the health cache expires
        while True:
            home = get(net.base + "/api/home").json()
            beta = next(p for p in home["processes"] if p["name"] == "beta")
            if (beta["up"], beta["paused"]) == (False, True) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert (beta["up"], beta["paused"]) == (False, True)
        assert home["faults"] == ["alpha: link delay 5 ms", "beta: paused"]
        page = get(net.base + "/")
        assert page.status == 200 and "beta: paused" in page.body
        account = get(f"{net.base}/api/account/{net.options.writer}").json()
        assert {b["rollup"]: b["up"] for b in account["balances"]} == {
            "alpha": True,
            "beta": False,
        }
        assert get(f"{net.base}/account/{net.options.writer}").status == 200
        bundle = get(f"{net.base}/bundle/{net.options.committed}")
        assert bundle.status == 200 and "Not reachable: beta" in bundle.body
        option = get(f"{net.base}/option/{net.options.committed}")
        assert option.status == 503 and "beta down" in option.body
    finally:
        faults.resume(net.dir, "beta")
        faults.heal(net.dir, "alpha")


def test_an_explorer_given_endpoints_alone_works_and_exits_0_on_sigterm(
    net: Net, tmp_path: Path
) -> None:
    m = net.manifest
    seq, alpha, beta = m.get("sequencer"), m.get("alpha"), m.get("beta")
    assert seq and alpha and beta
    ready = tmp_path / "explorer.ready"
    argv = [sys.executable, "-m", "devnet.explorer", "--sequencer", seq.endpoint]
    argv += ["--node", f"alpha={alpha.endpoint}", "--node", f"beta={beta.endpoint}"]
    argv += ["--genesis", str(net.dir / "genesis.json"), "--listen", "127.0.0.1:0"]
    argv += ["--ready-file", str(ready)]
    p = launcher.start_process(
        "explorer2", "explorer", None, argv, tmp_path, tmp_path / "e.log", ready, 20, False, False
    )
    try:
        assert p.info["url"] == f"http://{p.endpoint}/"
        home = get(p.info["url"] + "api/home").json()
        assert [x["name"] for x in home["processes"]] == ["sequencer", "alpha", "beta"]
        assert all(x["up"] for x in home["processes"]) and home["faults"] == []
        r = get(f"{p.info['url']}bundle/{net.options.committed}")
        assert r.status == 200 and "committed" in r.body
    finally:
        assert launcher.stop_pid(p.pid, grace=10, popen=p.popen)
    assert p.popen is not None and p.popen.returncode == 0
    assert "explorer stopped" in (tmp_path / "e.log").read_text()


def test_devnet_down_stops_the_explorer(net: Net) -> None:  # last: it stops the devnet
    rec = net.manifest.get("explorer")
    assert rec is not None and launcher.is_alive(rec.pid, rec.argv)

    stopped = network.stop_devnet(net.dir, grace=10.0)

    assert "explorer" in stopped
    assert not launcher.is_alive(rec.pid, rec.argv)
    assert "explorer stopped" in Path(rec.log).read_text()  # SIGTERM, not SIGKILL


def test_up_without_the_explorer_starts_none(tmp_path: Path) -> None:
    """`devnet up --no-explorer` (start_devnet(explorer=False), as the benchmarks
    run): no explorer process, and status says there is none."""
    d = tmp_path / "dn"
    devnet = str(Path(sys.executable).parent / "devnet")
    try:
        up = subprocess.run(
            [devnet, "up", "--no-explorer", "--data-dir", str(d)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert up.returncode == 0, up.stderr
        assert "explorer:" not in up.stdout
        status = subprocess.run(
            [devnet, "status", "--json", "--data-dir", str(d)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        doc = json.loads(status.stdout)
        assert doc["explorer"] is None
        assert network.EXPLORER not in {p["name"] for p in doc["processes"]}
    finally:
        network.stop_devnet(d, grace=5.0)

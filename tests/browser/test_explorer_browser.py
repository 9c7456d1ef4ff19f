"""The explorer in a real browser: headless Chromium from Debian (/usr/bin/chromium)
driven by Playwright, against a real devnet. The home page's head height moves
by itself (no reload); an option-open bundle that commits and an
under-collateralized one that aborts are followed to their bundle pages (search
box, then a link of the home page) and their timelines say commit, and abort
with beta's reason; then the block, account and option pages. Writes a
full-page screenshot of each page and the home page's navigation timing
(timing.json) to the test's output directory, printed at the start (pytest -s
shows it). The load time is measured, not asserted."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from explorersupport import explorer_url, open_options, run, wait_indexed

from devnet import network

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed: pip install -e '.[test]'"
)

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 10_000  # every wait of the test is bounded by this
NAVIGATION_TIMING = """() => {
  const n = performance.getEntriesByType('navigation')[0];
  const ms = (t) => Math.round(t * 10) / 10;
  return {
    response_end_ms: ms(n.responseEnd),
    dom_content_loaded_ms: ms(n.domContentLoadedEventEnd),
    load_ms: ms(n.loadEventEnd),
    transfer_bytes: n.transferSize,
  };
}"""


@pytest.fixture(scope="module")
def chromium() -> Path:
    """Debian's Chromium: `make system-deps` installs it when it is missing; the
    test is skipped only when it is still missing after that."""
    if not CHROMIUM.exists():
        subprocess.run(["make", "-s", "system-deps"], cwd=ROOT, timeout=900, check=False)
    if not CHROMIUM.exists():
        pytest.skip(
            f"{CHROMIUM} is missing and `make system-deps` could not install Debian's chromium"
        )
    return CHROMIUM


@pytest.mark.timeout(180)
def test_the_explorer_live_and_both_bundle_timelines_in_a_browser(
    chromium: Path, tmp_path: Path
) -> None:
    out = tmp_path / "screenshots"
    out.mkdir()
    print(f"\nexplorer screenshots and timing.json in {out}")
    manifest = network.start_devnet(tmp_path / "dn")
    try:
        base = explorer_url(manifest)
        o = run(open_options(manifest))
        wait_indexed(base, [o.committed, o.aborted])
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(chromium), args=ARGS, timeout=30_000)
            try:
                page = browser.new_page(viewport={"width": 1366, "height": 900})
                page.set_default_timeout(WAIT_MS)
                page.set_default_navigation_timeout(WAIT_MS)

                # Home: the load time, then the head height moves with no reload.
                page.goto(base + "/", wait_until="load")
                timing = page.evaluate(NAVIGATION_TIMING)
                print(f"home page navigation timing (ms from navigation start): {timing}")
                (out / "timing.json").write_text(json.dumps({"home": timing}, indent=2) + "\n")
                page.evaluate("window.__sameDocument = true")
                before = int(page.text_content("#head") or "0")
                page.wait_for_function(
                    "h => Number(document.getElementById('head').textContent) > h",
                    arg=before,
                    timeout=WAIT_MS,
                )
                assert page.evaluate("window.__sameDocument === true"), "the page reloaded"
                assert page.evaluate("performance.getEntriesByType('navigation').length") == 1
                page.wait_for_selector(f'#latest-bundles a[href="/bundle/{o.aborted}"]')
                page.screenshot(path=str(out / "home.png"), full_page=True)

                # The committed bundle, found with the search box.
                page.fill("form.search input[name=q]", o.committed)
                with page.expect_navigation():
                    page.press("form.search input[name=q]", "Enter")
                assert page.url == f"{base}/bundle/{o.committed}"
                decided = page.locator('#timeline li[data-stage="decided"]')
                assert decided.get_attribute("data-ok") == "true"
                assert "commit" in decided.inner_text().lower()
                assert page.locator('#timeline li[data-stage="prepared"]').count() == 2
                page.screenshot(path=str(out / "bundle-committed.png"), full_page=True)

                # The aborted one, from its link on the home page.
                page.goto(base + "/")
                page.click(f'#latest-bundles a[href="/bundle/{o.aborted}"]')
                page.wait_for_url(f"{base}/bundle/{o.aborted}")
                decided = page.locator('#timeline li[data-stage="decided"]')
                assert decided.get_attribute("data-ok") == "false"
                text = decided.inner_text()
                assert "ABORT" in text.upper() and o.aborted_reason in text, text
                no = page.locator('#timeline li[data-stage="prepared"][data-ok="false"]')
                assert "beta" in no.inner_text() and o.aborted_reason in no.inner_text()
                page.screenshot(path=str(out / "bundle-aborted.png"), full_page=True)

                # The block that ordered it, the writer's account, the option and its lien.
                page.click('table.kv a[href^="/block/"]')
                page.wait_for_url(f"{base}/block/*")
                assert "Verified as a node verifies it" in page.inner_text("#verification")
                page.screenshot(path=str(out / "block.png"), full_page=True)
                page.goto(f"{base}/bundle/{o.committed}")
                page.locator(f'a[href="/account/{o.writer}"]').first.click()
                page.wait_for_url(f"{base}/account/{o.writer}")
                assert "written by this account" in page.inner_text("main")
                page.screenshot(path=str(out / "account.png"), full_page=True)
                page.locator(f'a[href="/option/{o.committed}"]').first.click()
                page.wait_for_url(f"{base}/option/{o.committed}")
                body = page.inner_text("main")
                assert "Lien 1 of 1, on alpha" in body and "2,800 USDC per ETH" in body
                page.screenshot(path=str(out / "option.png"), full_page=True)
            finally:
                browser.close()
    finally:
        network.stop_devnet(tmp_path / "dn", grace=5.0)
    shots = sorted(p.name for p in out.glob("*.png"))
    assert shots == [
        "account.png",
        "block.png",
        "bundle-aborted.png",
        "bundle-committed.png",
        "home.png",
        "option.png",
    ]

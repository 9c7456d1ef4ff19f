"""The shared metrics pieces (xrollup/metrics.py): a block's observations in one
call land in the same buckets, count and sum as one at a time with the stock
client's Histogram; the server binds port 0 and says where; the launcher pins the
bound metrics port for a restart."""

from __future__ import annotations

import random
import urllib.request
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram

from devnet.launcher import pin_metrics_listen, sequencer_argv
from xrollup.metrics import SECONDS_BUCKETS, BlockHistogram, new_registry, serve_metrics


def test_observe_many_matches_the_stock_histogram(seed: int) -> None:
    rng = random.Random(seed)
    values = [rng.choice([0.0, 0.02, 0.05, 10.0, 11.0]) for _ in range(50)]
    values += [rng.expovariate(40) for _ in range(500)]
    registry = CollectorRegistry()
    stock = Histogram("stock_seconds", "d", buckets=SECONDS_BUCKETS, registry=registry)
    ours = BlockHistogram("ours_seconds", "d", SECONDS_BUCKETS, registry)
    one = BlockHistogram("one_seconds", "d", SECONDS_BUCKETS, registry)
    for v in values:
        stock.observe(v)
        one.observe(v)
    for i in range(0, len(values), 97):  # blocks of up to 97 observations
        ours.observe_many(values[i : i + 97])
    ours.observe_many([])

    for le in [*(repr(float(b)) for b in SECONDS_BUCKETS), "+Inf"]:
        want = registry.get_sample_value("stock_seconds_bucket", {"le": le})
        assert registry.get_sample_value("ours_seconds_bucket", {"le": le}) == want, le
        assert registry.get_sample_value("one_seconds_bucket", {"le": le}) == want, le
    for name in ("ours_seconds", "one_seconds"):
        assert registry.get_sample_value(f"{name}_count") == len(values)
        total = registry.get_sample_value(f"{name}_sum")
        assert total is not None and abs(total - sum(values)) < 1e-9


def test_server_binds_any_free_port_and_serves_its_registry_only() -> None:
    first, second = new_registry("sequencer"), new_registry("node")
    Counter("xrollup_sequencer_things", "d", registry=first).inc(3)
    server = serve_metrics(first, "127.0.0.1:0")
    try:
        assert server.url.startswith("http://127.0.0.1:") and server.url.endswith("/metrics")
        assert not server.url.startswith("http://127.0.0.1:0/")
        with urllib.request.urlopen(server.url, timeout=5) as r:
            text = r.read().decode()
        assert "xrollup_sequencer_things_total 3.0" in text
        assert "xrollup_sequencer_process_cpu_seconds_total" in text
        assert "xrollup_node_" not in text  # another process's registry is its own
    finally:
        server.stop()
    assert second.get_sample_value("xrollup_node_process_cpu_seconds_total") is not None


def test_restart_argv_pins_the_bound_metrics_port(tmp_path: Path) -> None:
    argv = sequencer_argv("127.0.0.1:0", tmp_path, tmp_path / "r", None)
    assert argv[-2:] == ["--metrics-listen", "127.0.0.1:0"]
    pinned = pin_metrics_listen(argv, {"metrics": "http://127.0.0.1:41234/metrics"})
    assert pinned[-2:] == ["--metrics-listen", "127.0.0.1:41234"]
    assert pin_metrics_listen(argv, {}) == argv
    off = sequencer_argv("127.0.0.1:0", tmp_path, tmp_path / "r", None, metrics_listen=None)
    assert "--metrics-listen" not in off

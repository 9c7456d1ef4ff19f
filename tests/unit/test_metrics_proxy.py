"""The fault proxy's metrics read its routes at scrape time: connections, bytes
by direction and the faults in force, one series per route and kind."""

from __future__ import annotations

from devnet.proxy import TO_NODE, TO_SEQUENCER, Route, apply_faults
from devnet.proxy_metrics import FAULT_KINDS, ProxyMetrics


def test_routes_are_read_at_scrape_time() -> None:
    alpha, beta = Route("alpha", "127.0.0.1:0"), Route("beta", "127.0.0.1:0")
    metrics = ProxyMetrics([alpha, beta])
    sample = metrics.registry.get_sample_value

    def faults(route: str) -> dict[str, float | None]:
        return {
            k: sample("xrollup_proxy_faults_in_force", {"route": route, "kind": k})
            for k in FAULT_KINDS
        }

    assert faults("alpha") == dict.fromkeys(FAULT_KINDS, 0)
    assert sample("xrollup_proxy_connections_open", {"route": "alpha"}) == 0

    alpha.accepted += 2
    alpha.relayed[TO_SEQUENCER] += 100
    alpha.relayed[TO_NODE] += 5_000
    apply_faults(
        [alpha, beta],
        {"alpha": {"partitioned": True}, "beta": {"delay_ms": 250, "byzantine": "corrupt"}},
    )

    assert sample("xrollup_proxy_connections_accepted_total", {"route": "alpha"}) == 2
    assert sample("xrollup_proxy_connections_accepted_total", {"route": "beta"}) == 0
    relayed = "xrollup_proxy_relayed_bytes_total"
    assert sample(relayed, {"route": "alpha", "direction": TO_SEQUENCER}) == 100
    assert sample(relayed, {"route": "alpha", "direction": TO_NODE}) == 5_000
    assert faults("alpha") == {k: 1 if k == "partition" else 0 for k in FAULT_KINDS}
    assert faults("beta") == {k: 1 if k in ("delay", "corrupt") else 0 for k in FAULT_KINDS}
    assert sample("xrollup_proxy_delay_seconds", {"route": "beta"}) == 0.25
    assert sample("xrollup_proxy_process_cpu_seconds_total") is not None

    apply_faults([alpha, beta], {})  # healed
    assert faults("alpha") == faults("beta") == dict.fromkeys(FAULT_KINDS, 0)

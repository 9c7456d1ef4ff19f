"""The fault proxy's Prometheus metrics (`xrollup_proxy_*`), on when
`python -m devnet.proxy` is given `--metrics-listen`. Everything is read at
scrape time from the proxy's routes (devnet/proxy.py): the connection and byte
counts they keep anyway, and the faults in force as last read from the fault file."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from devnet.tamper import MODES
from xrollup.metrics import Scraped, new_registry

if TYPE_CHECKING:
    from devnet.proxy import Route

PREFIX = "xrollup_proxy_"
PARTITION, DELAY = "partition", "delay"
FAULT_KINDS = (PARTITION, DELAY, *MODES)  # the `kind` label: one per fault a route can have


class ProxyMetrics:
    def __init__(self, routes: Sequence[Route], registry: CollectorRegistry | None = None) -> None:
        self.routes = routes
        self.registry = registry if registry is not None else new_registry("proxy")
        Scraped(self._collect, self.registry)

    def _collect(self) -> Iterable[Metric]:
        open_ = GaugeMetricFamily(
            PREFIX + "connections_open", "TCP connections being relayed", labels=["route"]
        )
        accepted = CounterMetricFamily(
            PREFIX + "connections_accepted",
            "TCP connections accepted (those refused at once while partitioned too)",
            labels=["route"],
        )
        relayed = CounterMetricFamily(
            PREFIX + "relayed_bytes",
            "Bytes relayed, by direction (to_sequencer, to_node)",
            labels=["route", "direction"],
        )
        faults = GaugeMetricFamily(
            PREFIX + "faults_in_force",
            "1 while the fault `kind` (partition, delay or a byzantine mode) is in force",
            labels=["route", "kind"],
        )
        delay = GaugeMetricFamily(
            PREFIX + "delay_seconds", "Delay added each way (seconds)", labels=["route"]
        )
        for r in self.routes:
            open_.add_metric([r.name], len(r.connections))
            accepted.add_metric([r.name], r.accepted)
            for direction, n in list(r.relayed.items()):
                relayed.add_metric([r.name, direction], n)
            in_force = {PARTITION: r.partitioned, DELAY: r.delay_ms > 0}
            for kind in FAULT_KINDS:
                on = in_force.get(kind, r.byzantine == kind)
                faults.add_metric([r.name, kind], 1 if on else 0)
            delay.add_metric([r.name], r.delay_ms / 1000)
        yield from (open_, accepted, relayed, faults, delay)

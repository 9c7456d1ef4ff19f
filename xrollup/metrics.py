"""Prometheus metrics, the part every process shares: the HTTP server that serves
one process's registry on a side port of loopback, the bucket sets, and two small
pieces the stock client lacks.

Each process defines its own metrics (sequencer/metrics.py, rollup_node/metrics.py,
devnet/proxy_metrics.py) in a CollectorRegistry of its own, never the client's
global one, so several in one interpreter (tests) do not collide. Names are
`xrollup_<process>_<what>_<unit>`.

Two ways a value gets into a scrape, chosen for what the hot path pays:
- read at scrape time (`Scraped`): heights, pool sizes, subscribers, counts a
  process keeps anyway are read by the server's thread when Prometheus asks, so
  the sequencer's and node's loops pay nothing for them;
- pushed when it happens: counters with labels (prometheus_client's Counter) and
  histograms. `BlockHistogram` takes a whole block's observations in one call
  (`observe_many`: one sort and one bisect per bucket) where the stock Histogram
  costs ~0.9 us per observation here, in a Python loop over its buckets."""

from __future__ import annotations

import argparse
import threading
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, ProcessCollector, start_http_server
from prometheus_client.core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from xrollup.errors import InvalidInput

# Latencies and intervals around a 20 ms block interval, from 1 ms to 10 s.
SECONDS_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.015,
    0.02,
    0.025,
    0.03,
    0.04,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    10.0,
)
# Entries per block, up to limits.max_block_entries (5,000).
ENTRY_BUCKETS = (0, 1, 5, 10, 50, 100, 250, 500, 1000, 2000, 3000, 4000, 5000)
# Bytes per block, up to limits.max_block_bytes (2 MiB).
BYTE_BUCKETS = tuple(float(2**k) for k in range(8, 22))  # 256 B .. 2 MiB
# Heights apart, e.g. a bundle's decision after its prepare (deadline 50 blocks).
BLOCK_BUCKETS = (0, 1, 2, 3, 4, 5, 7, 10, 15, 20, 30, 40, 50, 75, 100)


def new_registry(process: str) -> CollectorRegistry:
    """A registry of one's own for process `process` (sequencer, node, proxy), with
    the client's process collector (`xrollup_<process>_process_cpu_seconds_total`,
    `..._resident_memory_bytes`, ...: read from /proc at scrape time)."""
    registry = CollectorRegistry()
    ProcessCollector(namespace=f"xrollup_{process}", registry=registry)
    return registry


def add_metrics_argument(parser: argparse.ArgumentParser) -> None:
    """The `--metrics-listen` flag every process takes, worded once."""
    parser.add_argument(
        "--metrics-listen",
        default=None,
        metavar="HOST:PORT",
        help="serve Prometheus metrics on http://HOST:PORT/metrics (port 0: any free port;"
        " default: no metrics)",
    )


@dataclass(frozen=True)
class MetricsServer:
    """A running metrics endpoint; `url` is where Prometheus scrapes it."""

    url: str
    _stop: Callable[[], None]

    def stop(self) -> None:
        self._stop()


def serve_metrics(registry: CollectorRegistry, listen: str) -> MetricsServer:
    """Serve `registry` over HTTP on `listen` (HOST:PORT; port 0: any free port)
    from a daemon thread; returns the bound URL http://HOST:PORT/metrics."""
    host, _, port_text = listen.rpartition(":")
    if not host or not port_text.isdigit():
        raise InvalidInput(f"--metrics-listen {listen!r}: want HOST:PORT")
    try:
        httpd, thread = start_http_server(int(port_text), host, registry)
    except OSError as e:
        raise InvalidInput(f"--metrics-listen {listen!r}: could not bind: {e}") from None
    port = httpd.server_address[1]

    def stop() -> None:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)

    return MetricsServer(f"http://{host}:{port}/metrics", stop)


class Scraped(Collector):
    """Metric families computed at scrape time by `collect_fn`, on the HTTP
    server's thread: it must only read (plain attribute and len() reads are
    atomic under the GIL) and be cheap."""

    def __init__(self, collect_fn: Callable[[], Iterable[Metric]], registry: CollectorRegistry):
        self._collect_fn = collect_fn
        registry.register(self)

    def collect(self) -> Iterable[Metric]:
        return self._collect_fn()


class BlockHistogram(Collector):
    """A histogram without labels whose observations may come a block at a time.
    Exposed as the usual `<name>_bucket{le}`, `<name>_sum`, `<name>_count`."""

    def __init__(
        self,
        name: str,
        documentation: str,
        buckets: Sequence[float],
        registry: CollectorRegistry,
    ) -> None:
        assert list(buckets) == sorted(set(buckets)), "buckets ascend, no repeats"
        self.name = name
        self.documentation = documentation
        self._bounds = [float(b) for b in buckets]
        self._counts = [0] * (len(self._bounds) + 1)  # per bucket, the last is +Inf
        self._sum = 0.0
        self._lock = threading.Lock()
        registry.register(self)

    def observe(self, value: float) -> None:
        i = bisect_left(self._bounds, value)  # the first bound >= value: le semantics
        with self._lock:
            self._counts[i] += 1
            self._sum += value

    def observe_many(self, values: Sequence[float]) -> None:
        """Observe every value of `values` (say a block's ack latencies) at once."""
        if not values:
            return
        ordered = sorted(values)
        below = [bisect_right(ordered, b) for b in self._bounds]  # cumulative, le semantics
        total = sum(ordered)
        with self._lock:
            prev = 0
            for i, n in enumerate(below):
                self._counts[i] += n - prev
                prev = n
            self._counts[-1] += len(ordered) - prev
            self._sum += total

    @property
    def count(self) -> int:
        return sum(self._counts)

    @property
    def sum(self) -> float:
        return self._sum

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            counts, total = list(self._counts), self._sum
        cumulative: list[tuple[str, float]] = []
        running = 0
        for bound, n in zip([*self._bounds, float("inf")], counts, strict=True):
            running += n
            cumulative.append((_le(bound), running))
        yield HistogramMetricFamily(
            self.name, self.documentation, buckets=cumulative, sum_value=total
        )


def _le(bound: float) -> str:
    if bound == float("inf"):
        return "+Inf"
    return repr(float(bound))

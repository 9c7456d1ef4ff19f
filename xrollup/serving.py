"""What every gRPC process shares: a grpc.aio server on loopback with message
limits, the standard health service and server reflection, a ready file that
says where it listens, and graceful shutdown on SIGTERM (health NOT_SERVING,
stop with a grace period, then the caller closes storage)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from grpc import aio
from grpc_health.v1 import _async as health_aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from xrollup.errors import InvalidInput
from xrollup.grpc_status import DecodeErrors

log = logging.getLogger(__name__)


# Clients ping every second to learn that a server is paused (xrollup/client.py
# KEEPALIVE_OPTIONS). By default a server takes a ping that comes sooner than 5
# minutes after the last one, while it sends no data, as a "strike", and after 2
# closes the connection with GOAWAY too_many_pings: accept pings at any rate, also
# with no call in flight. (min_ping_interval_without_data_ms is the channel arg
# of gRPC's GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS.)
KEEPALIVE_OPTIONS: list[tuple[str, int]] = [
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 500),
    ("grpc.http2.max_ping_strikes", 0),  # 0: no limit
]


def build_server(max_message_bytes: int) -> aio.Server:
    return aio.server(
        interceptors=[DecodeErrors()],
        options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.so_reuseport", 0),
            *KEEPALIVE_OPTIONS,
        ],
    )


def add_health_and_reflection(
    server: aio.Server, service_names: Sequence[str]
) -> health_aio.HealthServicer:
    servicer = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    reflection.enable_server_reflection(
        [*service_names, health.SERVICE_NAME, reflection.SERVICE_NAME], server
    )
    return servicer


async def set_serving(
    servicer: health_aio.HealthServicer, service_names: Sequence[str], serving: bool
) -> None:
    status = (
        health_pb2.HealthCheckResponse.SERVING
        if serving
        else health_pb2.HealthCheckResponse.NOT_SERVING
    )
    for name in ("", *service_names):
        await servicer.set(name, status)


def bind(server: aio.Server, listen: str) -> str:
    """Bind `listen` (host:port, port 0 for any free one) and return the endpoint."""
    host, _, port_text = listen.rpartition(":")
    if not host or not port_text.isdigit():
        raise InvalidInput(f"--listen {listen!r}: want HOST:PORT")
    port = server.add_insecure_port(listen)
    if port == 0:
        raise InvalidInput(f"--listen {listen!r}: could not bind (port in use?)")
    return f"{host}:{port}"


def write_ready_file(path: Path | None, endpoint: str, metrics: str = "") -> None:
    """Atomically write {"endpoint", "pid"} so a launcher knows where we listen,
    and "metrics" (the metrics URL) when this process serves metrics."""
    if path is None:
        return
    info: dict[str, str | int] = {"endpoint": endpoint, "pid": os.getpid()}
    if metrics:
        info["metrics"] = metrics
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(info))
    tmp.replace(path)


async def wait_for_termination(*workers: asyncio.Task[None]) -> BaseException | None:
    """Return on SIGTERM or SIGINT (None), or when a worker task ends: then its
    exception, so the process stops visibly instead of serving stale answers."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    waiter = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait({waiter, *workers}, return_when=asyncio.FIRST_COMPLETED)
    if waiter in done:
        return None
    waiter.cancel()
    for task in done:
        err = task.exception() if not task.cancelled() else None
        log.critical("%s stopped: %r", task.get_name(), err, exc_info=err)
        return err or RuntimeError(f"{task.get_name()} stopped")
    return None


def setup_logging(name: str, level: str = "INFO") -> None:
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format=f"%(asctime)s {name}[%(process)d] %(levelname)s %(name)s: %(message)s",
    )

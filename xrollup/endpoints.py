"""Server addresses as the command lines and clients take them: one HOST:PORT,
or a comma-separated list of replicas ("127.0.0.1:5001,127.0.0.1:5002"), and
the gRPC channel target and load-balancing policy for them. Pure: no grpc, no
sockets, no name lookups.

One endpoint is the channel target exactly as given (gRPC resolves a name
itself). Several become one multi-address target, `ipv4:A,B,C` (or `ipv6:`),
which gRPC C-core resolves to that fixed list, so the channel moves to another
replica when the one it is on breaks: `pick_first` connects to the first
address that accepts and stays there (a stream and a client's submissions keep
their order on one replica); `round_robin` (spread) keeps a connection to
every replica and sends each call to the next ready one. The ipv4:/ipv6:
schemes take IP literals only, so in a list every host must be one."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Sequence

from xrollup.errors import InvalidInput

# A target already in gRPC's URI syntax (doc/naming.md) passes through as it is.
GRPC_SCHEMES = ("dns:", "ipv4:", "ipv6:", "unix:", "unix-abstract:", "vsock:", "xds:")
PICK_FIRST, ROUND_ROBIN = "pick_first", "round_robin"


def is_grpc_uri(text: str) -> bool:
    return text.strip().lower().startswith(GRPC_SCHEMES)


def split_endpoint(endpoint: str) -> tuple[str, int]:
    """(host, port) of HOST:PORT; an IPv6 host is written in brackets,
    [::1]:5001, and returned without them. Raises InvalidInput."""
    text = endpoint.strip()
    host, sep, port = text.rpartition(":")
    if not sep or not port:
        raise InvalidInput(f"endpoint {text!r} has no port: want HOST:PORT")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidInput(f"endpoint {text!r}: port {port!r} is not a number from 1 to 65535")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        if not _is_ip(host, 6):
            raise InvalidInput(f"endpoint {text!r}: {host!r} in brackets is not an IPv6 address")
    elif ":" in host:
        raise InvalidInput(f"endpoint {text!r}: write an IPv6 host in brackets, [::1]:{port}")
    if not host:
        raise InvalidInput(f"endpoint {text!r} has no host: want HOST:PORT")
    return host, int(port)


def parse_endpoints(endpoints: str | Sequence[str]) -> tuple[str, ...]:
    """The endpoints of "A" or "A,B,C" (or of a sequence of single ones), each
    HOST:PORT, surrounding spaces dropped. One string in gRPC's URI syntax
    (dns:, ipv4:, unix:, ...) is kept whole as the only endpoint. In a list of
    several, every host is an IP address of one family and none repeats.
    Raises InvalidInput, naming the item that is wrong."""
    if isinstance(endpoints, str):
        if is_grpc_uri(endpoints):
            return (endpoints.strip(),)
        items = endpoints.split(",")
        shown = endpoints
    else:
        items = list(endpoints)
        shown = ",".join(items)
        if len(items) == 1 and is_grpc_uri(items[0]):
            return (items[0].strip(),)
    out = tuple(item.strip() for item in items)
    if not any(out):
        raise InvalidInput("no endpoint given: want HOST:PORT[,HOST:PORT...]")
    if not all(out):
        raise InvalidInput(
            f"endpoint list {shown!r} has an empty item: want HOST:PORT[,HOST:PORT...]"
        )
    hosts = [split_endpoint(item)[0] for item in out]
    if len(out) > 1:
        for item, host in zip(out, hosts, strict=True):
            if not (_is_ip(host, 4) or _is_ip(host, 6)):
                raise InvalidInput(
                    f"endpoint {item!r}: in a list of several, each host must be an IP"
                    f" address (gRPC does not look names up in a fixed list): {shown!r}"
                )
        if len({_is_ip(h, 4) for h in hosts}) > 1:
            raise InvalidInput(f"endpoint list {shown!r} mixes IPv4 and IPv6 addresses")
        seen: set[str] = set()
        for item in out:
            if item in seen:
                raise InvalidInput(f"endpoint list {shown!r} names {item!r} twice")
            seen.add(item)
    return out


def compute_channel_target(endpoints: Sequence[str]) -> str:
    """The channel target of parsed endpoints (parse_endpoints): one as it is;
    several as one `ipv4:`/`ipv6:` list in their order."""
    assert endpoints, "parse_endpoints never returns an empty list"
    if len(endpoints) == 1:
        return endpoints[0]
    scheme = "ipv4" if _is_ip(split_endpoint(endpoints[0])[0], 4) else "ipv6"
    return f"{scheme}:{','.join(endpoints)}"


def compute_service_config(policy: str) -> str:
    """The channel's service config (the `grpc.service_config` option) that
    selects the load-balancing `policy`: PICK_FIRST or ROUND_ROBIN."""
    assert policy in (PICK_FIRST, ROUND_ROBIN), policy
    return json.dumps({"loadBalancingConfig": [{policy: {}}]}, separators=(",", ":"))


def _is_ip(host: str, version: int) -> bool:
    try:
        return ipaddress.ip_address(host).version == version
    except ValueError:
        return False

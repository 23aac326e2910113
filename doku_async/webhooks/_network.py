"""Which source addresses may deliver notifications: an allow-list of networks, with an
optional proxy header trusted only from trusted proxies."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from .._exceptions import ConfigurationError

__all__ = ["NetworkAllowList"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
NetworkSpec = str | IPNetwork

_MAX_HOPS = 32  # a longer X-Forwarded-For chain is refused rather than walked


def _networks(name: str, specs: Iterable[NetworkSpec]) -> tuple[IPNetwork, ...]:
    if isinstance(specs, str | bytes):
        raise ConfigurationError(f"{name}: give a list of networks, not one string")
    out: list[IPNetwork] = []
    for spec in specs:
        try:
            network = spec if not isinstance(spec, str) else ipaddress.ip_network(spec.strip())
        except ValueError as exc:
            raise ConfigurationError(f"{name}: {spec!r} is not a network ({exc})") from None
        out.append(network)
    return tuple(out)


def _address(text: str) -> IPAddress | None:
    """An IP address, IPv4-mapped IPv6 folded to IPv4; ``None`` if ``text`` is not one."""
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _within(address: IPAddress, networks: Sequence[IPNetwork]) -> bool:
    return any(address.version == net.version and address in net for net in networks)


class NetworkAllowList:
    """Admit notifications only from ``allowed`` networks.

    The source is the TCP peer (``request.remote``). When the peer is one of
    ``trusted_proxies`` the ``header`` (``X-Forwarded-For`` by default) is read from the right:
    the first address that is not itself a trusted proxy is the source. From any other peer the
    header is ignored, so a sender cannot pick its own address. A source that cannot be read
    (no peer address, a malformed or overlong header from a trusted proxy) is refused.

    Args:
        allowed: networks in CIDR form (``"103.10.128.0/22"``) or ``ipaddress`` networks; a
            bare address is a one-address network.
        trusted_proxies: your own reverse proxies or load balancers, in the same form.
        header: the header those proxies append the client address to.
    """

    __slots__ = ("_allowed", "_header", "_proxies")

    def __init__(
        self,
        allowed: Iterable[NetworkSpec],
        *,
        trusted_proxies: Iterable[NetworkSpec] = (),
        header: str = "X-Forwarded-For",
    ) -> None:
        self._allowed = _networks("allowed_networks", allowed)
        if not self._allowed:
            raise ConfigurationError("allowed_networks: give at least one network, or None")
        self._proxies = _networks("trusted_proxies", trusted_proxies)
        if not header.strip():
            raise ConfigurationError("proxy_header: must name a header")
        self._header = header

    def __repr__(self) -> str:
        allowed = [str(n) for n in self._allowed]
        proxies = [str(n) for n in self._proxies]
        return f"NetworkAllowList(allowed={allowed!r}, trusted_proxies={proxies!r})"

    def source(self, peer: str | None, forwarded: Sequence[str]) -> IPAddress | None:
        """The address a request comes from, or ``None`` when it cannot be established.

        ``peer`` is the TCP peer; ``forwarded`` the values of the proxy header (each may hold
        a comma-separated list), consulted only when the peer is a trusted proxy.
        """
        address = None if peer is None else _address(peer)
        if address is None:
            return None
        if not self._proxies or not _within(address, self._proxies):
            return address
        hops = [part for value in forwarded for part in value.split(",")]
        if len(hops) > _MAX_HOPS:
            return None
        for hop in reversed(hops):
            hop_address = _address(hop)
            if hop_address is None:
                return None  # a trusted proxy would not write this: refuse rather than guess
            address = hop_address
            if not _within(address, self._proxies):
                break
        return address

    def allows(self, peer: str | None, forwarded: Sequence[str]) -> bool:
        """Whether the request's source (see :meth:`source`) is in an allowed network."""
        address = self.source(peer, forwarded)
        return address is not None and _within(address, self._allowed)

    @property
    def header(self) -> str:
        """The proxy header read from trusted proxies."""
        return self._header

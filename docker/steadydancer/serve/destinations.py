"""Where a job's input may be fetched from: public addresses only, checked once and connected to.

A serverless endpoint is called by whoever holds its URL, so an input URL is hostile: it
must not reach ComfyUI on 127.0.0.1 (another caller's files), cloud metadata at
169.254.169.254, or the pod's private network. The rules, each named when it refuses:

- http and https only; a redirect from https to http is refused;
- the host is resolved once; every address it resolves to must be globally routable
  (not loopback, private, link-local, shared/CGNAT, multicast, reserved, unspecified, nor
  an IPv6 address carrying an IPv4 one); an IPv4 literal must be spelled a.b.c.d;
- the connection goes to the checked address: the URL handed to httpx carries it, and the
  original host travels in the Host header and as the TLS server name (httpx's documented
  sni_hostname extension), so the certificate is still checked against the host. httpx
  has no other way to say "connect here", and no maintained library pins the address
  for httpx, hence this module;
- each redirect hop is checked the same way, at most MAX_REDIRECTS of them.

STEADYDANCER_FETCH_ALLOW (comma-separated networks, e.g. 10.0.0.0/8) admits addresses a
private deployment or a test serves from; it is empty by default.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_REDIRECTS = 5
ALLOW_VARIABLE = "STEADYDANCER_FETCH_ALLOW"
SHARED = ipaddress.ip_network("100.64.0.0/10")
"""RFC 6598 shared (carrier-grade NAT) space: inside a provider's network, not the internet."""
NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


class Refused(ValueError):
    """A destination the policy does not fetch from; the text names the rule."""


@dataclass(frozen=True)
class Destination:
    """A URL whose host was resolved and checked; `address` is where to connect."""

    url: str
    scheme: str
    host: str
    port: int
    address: IPAddress

    @property
    def pinned_url(self) -> str:
        """The URL with the checked address in place of the host (userinfo dropped)."""
        parts = urllib.parse.urlsplit(self.url)
        literal = f"[{self.address}]" if self.address.version == 6 else str(self.address)
        return urllib.parse.urlunsplit(
            (self.scheme, f"{literal}:{self.port}", parts.path or "/", parts.query, "")
        )

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = {"http": 80, "https": 443}[self.scheme]
        return host if self.port == default else f"{host}:{self.port}"


def allowed_networks(env: Mapping[str, str] = os.environ) -> tuple[IPNetwork, ...]:
    """The networks STEADYDANCER_FETCH_ALLOW admits; a bad entry stops the worker by name."""
    networks = []
    for item in env.get(ALLOW_VARIABLE, "").split(","):
        if not item.strip():
            continue
        try:
            networks.append(ipaddress.ip_network(item.strip(), strict=False))
        except ValueError:
            raise ValueError(
                f"{ALLOW_VARIABLE}: {item.strip()!r} is not a network (e.g. 10.0.0.0/8)"
            ) from None
    return tuple(networks)


def rule_broken(address: IPAddress) -> str | None:
    """Why an address is not one to fetch from (the rule's name), or None for a public one."""
    if isinstance(address, ipaddress.IPv6Address) and (
        address.ipv4_mapped
        or address.sixtofour
        or address.teredo
        or any(address in net for net in NAT64)
    ):
        return "an IPv6 address carrying an IPv4 one"
    checks = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("shared (carrier-grade NAT)", address.version == 4 and address in SHARED),
        ("multicast", address.is_multicast),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
        ("not globally routable", not address.is_global),
    )
    name = next((name for name, broken in checks if broken), None)
    if name is None:
        return None
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name} address"


def literal_address(host: str) -> IPAddress | None:
    """The address a host names by itself; other spellings of IPv4 (2130706433, 0x7f.1,
    0177.0.0.1, 127.1) are refused rather than guessed at."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        socket.inet_aton(host)
    except OSError:
        return None
    raise Refused(f"host {host!r} is an IPv4 address not spelled a.b.c.d")


def check(url: str, env: Mapping[str, str] = os.environ) -> Destination:
    """Resolve and check `url`'s host once; Refused names the rule, nothing is connected to."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        raise Refused("not a well-formed URL") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise Refused(f"scheme {scheme or '(none)'!r}: only http and https are fetched")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise Refused("the URL names no host")
    port = port or (443 if scheme == "https" else 80)
    literal = literal_address(host)
    if literal is not None:
        addresses = [literal]
    else:
        try:
            host.encode("idna")
            found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            raise Refused(f"host {host!r} does not resolve") from None
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in found]
        if not addresses:
            raise Refused(f"host {host!r} does not resolve")
    allowed = allowed_networks(env)
    for address in addresses:
        if any(address in network for network in allowed):
            continue
        broken = rule_broken(address)
        if broken:
            said = repr(host) if literal is not None else f"{host!r} resolves to {address}, which"
            raise Refused(f"{said} is {broken}: only public addresses are fetched")
    return Destination(url, scheme, host, port, addresses[0])


def redirect_target(current: Destination, location: str, env: Mapping[str, str]) -> Destination:
    """The next hop of a redirect, checked as the first was; https never drops to http."""
    following = urllib.parse.urljoin(current.url, location)
    target = check(following, env)
    if current.scheme == "https" and target.scheme != "https":
        raise Refused("a redirect from https to http")
    return target

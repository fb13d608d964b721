"""Where the judge, the teacher and the teacher check may send requests: the one policy, Django-free, that
the web app's forms (a clear message beside the field) and the training layer's clients (at connect time)
both use.

A URL people type is aimed at a server of their choosing, from our machines. So: http(s) only; no user
name or password in it; no #fragment (the path requested is the one the form shows); and the addresses
it resolves to are checked every time a connection is made, then that checked address is the one
connected to, so a name that resolves to a public address for the form and to 127.0.0.1 a second later
gets nothing. Link-local (cloud metadata at 169.254.169.254 among them), 0.0.0.0/8, multicast, broadcast
and reserved addresses are refused always; private and loopback ones unless an administrator allows them
(ATELIER_OUTBOUND_ALLOW: CIDRs or host:port, comma-separated). Atelier's own gateway
(ATELIER_GATEWAY_URL) is always allowed, so a project's endpoint can be a judge or a teacher.
"""

from __future__ import annotations

import http.client
import ipaddress
import os
import socket
import urllib.request
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit

ALLOW_ENV = "ATELIER_OUTBOUND_ALLOW"
GATEWAY_ENV = "ATELIER_GATEWAY_URL"
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Refused even when an administrator's list names them: nothing a judge or teacher should be is there.
NEVER = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",  # "this network": 0.0.0.0 reaches the local machine on Linux
        "169.254.0.0/16",  # link-local: cloud metadata services (169.254.169.254)
        "fe80::/10",
        "100.100.100.200/32",  # Alibaba Cloud's metadata service
        "fd00:ec2::254/128",  # AWS's metadata service over IPv6
        "224.0.0.0/4",  # multicast
        "ff00::/8",
        "240.0.0.0/4",  # reserved, with the broadcast address 255.255.255.255
        "::/128",
    )
)


class OutboundRefused(ValueError):
    """This URL or address may not be requested; the message says why, for people."""


def _address(text: str) -> Address:
    address = ipaddress.ip_address(text.split("%", 1)[0])  # an IPv6 zone ("fe80::1%eth0") is no escape
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    return address


@dataclass(frozen=True)
class Policy:
    networks: tuple[Network, ...] = ()
    endpoints: frozenset[tuple[str, int]] = frozenset()

    @classmethod
    def parse(cls, text: str, gateway_url: str = "") -> Policy:
        """From "10.0.0.0/8, 127.0.0.1:8000, judge.internal:443" and the gateway's URL (always allowed)."""
        networks: list[Network] = []
        endpoints: set[tuple[str, int]] = set()
        for item in (i.strip() for i in (text or "").split(",")):
            if not item:
                continue
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
                continue
            except ValueError:
                pass
            host, _, port = item.rpartition(":")
            host = host.strip("[]").lower()
            if not host or not port.isdigit():
                raise ValueError(f"{ALLOW_ENV}: {item!r} is neither a CIDR (10.0.0.0/8) nor host:port.")
            endpoints.add((host, int(port)))
        if gateway_url:
            parts = urlsplit(gateway_url)
            if parts.hostname:
                endpoints.add((parts.hostname.lower(), parts.port or _default_port(parts.scheme)))
        return cls(tuple(networks), frozenset(endpoints))

    @classmethod
    def from_env(cls) -> Policy:
        """The policy the runner hands to a training process (and an administrator sets for workers)."""
        return cls.parse(os.environ.get(ALLOW_ENV, ""), os.environ.get(GATEWAY_ENV, ""))

    def as_text(self) -> str:
        """The policy back as ATELIER_OUTBOUND_ALLOW's text, for a training process's environment."""
        items = [str(n) for n in self.networks]
        items += [f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in sorted(self.endpoints)]
        return ",".join(items)

    def problem(self, address: Address, host: str, port: int) -> str | None:
        """Why `address` (what `host` resolved to) may not be connected to on `port`, or None."""
        where = f"{host} is" if host.strip("[]") == str(address) else f"{host} is at {address},"
        if any(address in n for n in NEVER if n.version == address.version):
            return f"{where} a link-local, metadata or reserved address, which is never requested"
        if address.is_global:
            return None
        if (host.lower(), port) in self.endpoints or (str(address), port) in self.endpoints:
            return None
        if any(address in n for n in self.networks if n.version == address.version):
            return None
        return f"{where} a private or loopback address; an administrator can allow it with {ALLOW_ENV}"


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


def check_url(url: str, *, base: bool = False) -> str:
    """The URL, if its form is one we request: http(s), a host, no user name or password, no fragment;
    a `base` URL (that paths such as /chat/completions are appended to) no ?query either, which would
    turn them into a query. Addresses are checked when connecting (`resolve`, `urlopen`)."""
    text = (url or "").strip()
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise OutboundRefused(f"{text!r} is not a URL we can use: {exc}.") from exc
    if parts.scheme.lower() not in ("http", "https"):
        shown = f"{parts.scheme}://" if parts.scheme else "no scheme"
        raise OutboundRefused(f"Only http:// and https:// URLs can be used (this one has {shown}).")
    if "@" in parts.netloc:
        raise OutboundRefused(
            "A URL cannot hold a user name or password: save the API key as a project secret instead."
        )
    if "#" in text:
        raise OutboundRefused("A URL cannot have a #fragment: the path requested must be the one shown.")
    if base and "?" in text:
        raise OutboundRefused("A base URL cannot have a ?query: paths such as /models are added to it.")
    if not parts.hostname:
        raise OutboundRefused(f"{text} names no host.")
    if port == 0:
        raise OutboundRefused(f"{text}: port 0 cannot be requested.")
    return text


def resolve(host: str, port: int, policy: Policy) -> list[tuple[Any, Any]]:
    """Every (family, socket address) that `host` resolves to, each checked; OutboundRefused when any
    one is refused (a name that answers with one public and one internal address gets nothing)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise OutboundRefused(f"{host} cannot be found ({exc}).") from exc
    checked = []
    for family, _, _, _, sockaddr in infos:
        problem = policy.problem(_address(str(sockaddr[0])), host, port)
        if problem:
            raise OutboundRefused(problem + ".")
        checked.append((family, sockaddr))
    if not checked:
        raise OutboundRefused(f"{host} resolves to no address.")
    return checked


def check_url_addresses(url: str, policy: Policy, *, base: bool = True) -> str:
    """check_url, and the addresses its host resolves to now (for a form; connections check again)."""
    text = check_url(url, base=base)
    parts = urlsplit(text)
    resolve(parts.hostname or "", parts.port or _default_port(parts.scheme.lower()), policy)
    return text


def _connector(policy: Policy) -> Any:
    def create_connection(
        address: tuple[str, int], timeout: Any = None, source_address: Any = None
    ) -> socket.socket:
        host, port = address
        error: OSError | None = None
        for family, sockaddr in resolve(host, port, policy):
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                if isinstance(timeout, int | float):  # urllib always passes the request's timeout
                    sock.settimeout(timeout)
                sock.connect(sockaddr)  # the address just checked, never a second lookup
                return sock
            except OSError as exc:
                sock.close()
                error = exc
        raise error or OSError(f"cannot connect to {host}")

    return create_connection


class _CheckedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, *args: Any, policy: Policy, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._create_connection = _connector(policy)


class _CheckedHTTPSConnection(http.client.HTTPSConnection):
    # HTTPSConnection.connect makes the TCP connection with _create_connection, then wraps it in TLS
    # for the host's name: the certificate is still checked against the name, not the address.
    def __init__(self, *args: Any, policy: Policy, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._create_connection = _connector(policy)


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, policy: Policy) -> None:
        super().__init__()
        self.policy = policy

    def http_open(self, req: urllib.request.Request) -> Any:
        return self.do_open(cast(Any, _CheckedHTTPConnection), req, policy=self.policy)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, policy: Policy) -> None:
        super().__init__()
        self.policy = policy

    def https_open(self, req: urllib.request.Request) -> Any:
        context = self._context  # type: ignore[attr-defined]
        return self.do_open(cast(Any, _CheckedHTTPSConnection), req, context=context, policy=self.policy)


def urlopen(request: urllib.request.Request, timeout: float, policy: Policy | None = None) -> Any:
    """urllib's urlopen for a user's URL: checked as above, no proxies, no other schemes, and no
    redirects followed (a 3xx is an HTTPError: a redirect is another URL nobody checked in the form)."""
    check_url(request.full_url)
    policy = policy if policy is not None else Policy.from_env()
    opener = urllib.request.OpenerDirector()
    for handler in (
        _HTTPHandler(policy),
        _HTTPSHandler(policy),
        urllib.request.HTTPDefaultErrorHandler(),
        urllib.request.HTTPErrorProcessor(),
    ):
        opener.add_handler(handler)
    return opener.open(request, timeout=timeout)

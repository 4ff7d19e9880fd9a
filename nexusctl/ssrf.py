"""Keeping requests to user-supplied URLs away from internal networks (SSRF).

A kernel module (it imports nothing of ours but errors), so every layer may use
it. Every URL a user supplies goes through it: webhook URLs, a WooCommerce
store URL, a Shopify shop host (when the endpoints put the shop in the host),
media URLs of publish runs. Without it a request could be aimed at loopback,
the LAN, or the cloud metadata service (169.254.169.254). Only the operator's
own provider endpoints (``<PROVIDER>_*_URL``) skip it. Two layers:

- ``check_url`` runs when a URL is stored: scheme, userinfo, host form and,
  for IP literals, the address. No DNS: a name's addresses can change later.
- ``guarded_connector`` (aiohttp) and ``connect_addresses`` (a client that connects itself, the delivery
  worker's) check at connect time. Each name is resolved once,
  every address is checked, and aiohttp connects to exactly those vetted
  addresses (no second lookup, so DNS rebinding between check and connect has
  no window). IP-literal hosts, which aiohttp never sends to its resolver, are
  checked too (security.md §6).

Redirects: callers send with ``allow_redirects=False`` (3xx counts as a failed
delivery, as in Standard Webhooks and Svix). Should one ever be followed, its
connection still goes through the connector, so its target is checked as well.
Proxies: with ``proxy=`` only the proxy's address is checked, not the target's;
keep ``trust_env=False`` (aiohttp's default) so HTTP(S)_PROXY is not picked up.

``allowed_networks`` (WEBHOOK_ALLOWED_NETWORKS, like Svix's whitelist_subnets)
exempts exactly the listed addresses, for every user-supplied URL alike (one
guard, one allow-list), e.g. ``127.0.0.1/32`` for a local receiver or store in
development and tests. It is a security hole in production.

Messages name the user's own input (the host, what a numeric host means) but
never what a name resolves to: that would let a caller map internal DNS.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import unicodedata
from collections.abc import Iterable
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

from nexusctl.errors import ConfigError, UsageProblem

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
_net = ipaddress.ip_network

# Checked in order, the first match names the refusal. The lists are explicit
# rather than relying on ``is_global`` alone: this interpreter (3.11.7) predates
# the gh-113171 range fixes, and even fixed versions call multicast (bpo-37749),
# 192.0.0.9, 192.88.99/24, 2002::/16, 64:ff9b::/96 and 5f00::/16 "global".
_V4: tuple[tuple[Network, str], ...] = (
    (_net("169.254.169.254/32"), "the cloud metadata address"),
    (_net("0.0.0.0/32"), "the unspecified address"),  # connects to this host on Linux
    (_net("255.255.255.255/32"), "the broadcast address"),
    (_net("0.0.0.0/8"), "a 'this network' address (0.0.0.0/8)"),
    (_net("10.0.0.0/8"), "a private address (RFC 1918)"),
    (_net("100.64.0.0/10"), "a shared CGNAT address (100.64.0.0/10)"),
    (_net("127.0.0.0/8"), "a loopback address"),
    (_net("169.254.0.0/16"), "a link-local address"),
    (_net("172.16.0.0/12"), "a private address (RFC 1918)"),
    (_net("192.0.0.0/24"), "an IETF protocol assignment (192.0.0.0/24)"),
    (_net("192.0.2.0/24"), "a documentation address"),
    (_net("192.88.99.0/24"), "a 6to4 relay anycast address"),
    (_net("192.168.0.0/16"), "a private address (RFC 1918)"),
    (_net("198.18.0.0/15"), "a benchmarking address (198.18.0.0/15)"),
    (_net("198.51.100.0/24"), "a documentation address"),
    (_net("203.0.113.0/24"), "a documentation address"),
    (_net("224.0.0.0/4"), "a multicast address"),
    (_net("240.0.0.0/4"), "a reserved address (240.0.0.0/4)"),
)
_V6: tuple[tuple[Network, str], ...] = (
    (_net("::/128"), "the unspecified address"),
    (_net("::1/128"), "a loopback address"),
    (_net("::ffff:0:0:0/96"), "an IPv4-translated address"),
    (_net("64:ff9b::/96"), "a NAT64 address"),  # reaches any v4 host via a gateway
    (_net("64:ff9b:1::/48"), "a NAT64 address"),
    (_net("100::/64"), "a discard-only address"),
    (_net("2001:db8::/32"), "a documentation address"),
    (_net("2001::/32"), "a Teredo address"),  # tunnels to an embedded v4 address
    (_net("2002::/16"), "a 6to4 address"),  # likewise
    (_net("3fff::/20"), "a documentation address"),
    (_net("5f00::/16"), "an SRv6 SID address"),
    (_net("fc00::/7"), "a unique-local (private) address"),
    (_net("fe80::/10"), "a link-local address"),
    (_net("fec0::/10"), "a site-local address"),
    (_net("ff00::/8"), "a multicast address"),
)
_V4_COMPATIBLE = _net("::/96")  # deprecated ::a.b.c.d (RFC 4291); :: and ::1 matched above
_HEX_LABEL = re.compile(r"0[xX][0-9a-fA-F]*")


class BlockedAddress(OSError):
    """A connection was refused by the SSRF policy.

    An OSError, so aiohttp reports it as a connect error (ClientConnectorError
    with this as ``os_error``), exactly like an unreachable host.
    """


def parse_networks(text: str | None) -> tuple[Network, ...]:
    """``"127.0.0.1/32, 10.0.0.0/8"`` -> networks (commas and/or spaces)."""
    networks = []
    for entry in re.split(r"[\s,]+", text or ""):
        if not entry:
            continue
        try:
            # strict: "10.0.0.1/8" has host bits set and is most likely a typo.
            networks.append(ipaddress.ip_network(entry))
        except ValueError as exc:
            raise ConfigError(
                f"WEBHOOK_ALLOWED_NETWORKS: {entry!r} is not a network in CIDR form ({exc})",
                variable="WEBHOOK_ALLOWED_NETWORKS",
            ) from None
    return tuple(networks)


def _networks(allowed: Iterable[Network | str]) -> tuple[Network, ...]:
    if isinstance(allowed, str):  # the raw setting passed by mistake: parse it, don't iterate characters
        return parse_networks(allowed)
    return tuple(n if isinstance(n, ipaddress._BaseNetwork) else ipaddress.ip_network(n) for n in allowed)


def _kind(ip: Address) -> str | None:
    """Why ``ip`` is refused (e.g. "a loopback address"), or None if it is public."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            # ::ffff:a.b.c.d *is* the v4 address on a dual-stack socket: judge that.
            inner = _kind(ip.ipv4_mapped)
            return inner and f"{inner} (IPv4-mapped {ip.ipv4_mapped})"
        for network, kind in _V6:
            if ip in network:
                return kind
        if ip in _V4_COMPATIBLE:
            v4 = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
            inner = _kind(v4)
            return f"{inner} (IPv4-compatible {v4})" if inner else "a deprecated IPv4-compatible address"
    else:
        for network, kind in _V4:
            if ip in network:
                return kind
    # Whatever the explicit lists miss but ipaddress knows is not public.
    if ip.is_multicast:
        return "a multicast address"
    if not ip.is_global or ip.is_reserved or ip.is_unspecified:
        return "a non-public address"
    return None


def _parse(ip: str | ipaddress._BaseAddress) -> Address | None:
    if isinstance(ip, ipaddress._BaseAddress):
        return ip  # type: ignore[return-value]
    try:
        return ipaddress.ip_address(str(ip).strip("[]"))
    except ValueError:
        return None


def _refusal(ip: str | ipaddress._BaseAddress, allowed: Iterable[Network | str]) -> str | None:
    """None if ``ip`` may be connected to, else why not."""
    address = _parse(ip)
    if address is None:
        return "not an IP address"
    candidates = [address]
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        candidates.append(address.ipv4_mapped)  # 127.0.0.1/32 also exempts ::ffff:127.0.0.1
    if any(c in n for n in _networks(allowed) for c in candidates):
        return None
    return _kind(address)


def address_allowed(ip: str | ipaddress._BaseAddress, allowed_networks: Iterable[Network | str] = ()) -> bool:
    """True if a delivery may connect to ``ip``. Fails closed: a non-address is False."""
    return _refusal(ip, allowed_networks) is None


def _numeric_host_problem(host: str) -> str | None:
    """A message if ``host`` is an IPv4 literal in a non-canonical form, else None.

    Policy: *refuse* such hosts rather than normalise them. ``2130706433``,
    ``0177.0.0.1``, ``0x7f.1`` and ``127.1`` are read differently by
    different parsers (inet_aton, browsers' WHATWG rules, yarl, aiohttp), and
    a check that normalises one way while the connection is made another way
    is how filters get bypassed. A host "ends in a number" (WHATWG's test)
    when its last label is decimal or 0x-hex; such a host must be a dotted quad.
    """
    if ":" in host:
        return None  # IPv6: ipaddress accepts only well-formed literals
    labels = host.split(".")
    if len(labels) > 1 and labels[-1] == "":
        labels.pop()
    last = labels[-1]
    if not (last.isascii() and (last.isdigit() or _HEX_LABEL.fullmatch(last))):
        return None
    try:
        ipaddress.IPv4Address(host)
        return None  # canonical dotted quad: checked as an address by the caller
    except ValueError:
        pass
    try:
        meaning = socket.inet_ntoa(socket.inet_aton(".".join(labels)))
        return f"{host} is a non-canonical IPv4 address (it means {meaning}); write it as a dotted quad"
    except OSError:
        return f"{host} is not a valid IPv4 address"


WEBHOOK = ("url", "Webhook URL")  # (field, label) of the webhook URL, the default


def _problem(message: str, field: str = WEBHOOK[0], label: str = WEBHOOK[1]) -> UsageProblem:
    return UsageProblem(f"{label} refused: {message}", field=field)


ASCII_BLANKS = " \t\r\n\f\v"  # what a URL given may have around it, and no other character: str.strip() takes more
# Cc: C0, DEL and C1 controls; Cf: format characters (bidi controls, zero-width ones); Zl, Zp: U+2028, U+2029.
_CONTROL_CATEGORIES = ("Cc", "Cf", "Zl", "Zp")


def authority_problem(url: str) -> str | None:
    """What is wrong with the host[:port] part's syntax, or None.

    The parsers disagree on ports: yarl takes ``1_0`` and fullwidth ``８０``
    (Python's int() does), urllib.parse refuses them, and each raised its own
    ValueError (a 500) where a caller reached for ``.port``. A port here is
    ASCII digits, at most 65535; an IPv6 host has its closing bracket.
    """
    rest = url.split("//", 1)[1] if "//" in url else ""
    authority = re.split(r"[/?#\\]", rest, maxsplit=1)[0].rsplit("@", 1)[-1]
    if authority.startswith("["):
        end = authority.find("]")
        if end < 0:
            return "the IPv6 address has no closing ']'"
        after = authority[end + 1 :]
        if after and not after.startswith(":"):
            return "nothing may follow the IPv6 address but a :port"
        port = after[1:]
    elif "[" in authority or "]" in authority:
        return "a bracket outside an IPv6 address"
    else:
        port = authority.partition(":")[2]
    if not port:
        return None
    if not (port.isascii() and port.isdigit()):
        return f"the port {port!r} is not a number"
    if int(port) > 65535:
        return f"the port {port} is out of range (1-65535)"
    return None


def check_url(
    url: str,
    *,
    production: bool,
    allowed_networks: Iterable[Network | str] = (),
    field: str = WEBHOOK[0],
    label: str = WEBHOOK[1],
) -> str:
    """Static checks of a user-supplied URL (no DNS); returns it stripped or raises UsageProblem naming ``field``."""

    def problem(message: str) -> UsageProblem:
        return _problem(message, field, label)

    # ASCII blanks around it only (a pasted URL's newline): str.strip() also took U+0085, U+2028 and the like off
    # the ends, so "https://host/a\u0085" was stored and called as ".../a" where the same character mid-URL is
    # refused.
    url = (url or "").strip(ASCII_BLANKS)
    if not url:
        raise problem("a URL is required")
    if any(c.isspace() or unicodedata.category(c) in _CONTROL_CATEGORIES for c in url):
        # yarl silently drops tabs/newlines (as WHATWG does): refuse instead. Beyond them the C1 controls, the
        # line and paragraph separators and the format characters (the bidi controls of logtext.CONTROLS, which
        # make a URL read other than it is, among them).
        raise problem("it contains whitespace or control characters")
    try:
        # yarl is the parser aiohttp itself uses, so we check the host it will dial.
        parsed = URL(url)
        port = parsed.explicit_port
    except (ValueError, TypeError) as exc:
        raise problem(f"not a valid URL ({exc})") from None
    if parsed.scheme not in ("http", "https"):
        raise problem("the scheme must be http or https")
    if production and parsed.scheme != "https":
        raise problem("https is required in production")
    # yarl drops an empty userinfo ("http://@host/"), so look at the raw text too.
    if parsed.raw_user is not None or parsed.raw_password is not None or "@" in url.split("//", 1)[-1].split("/", 1)[0]:
        raise problem("credentials (user:pass@) are not allowed in the URL")
    if message := authority_problem(url):
        raise problem(message)
    host = parsed.raw_host
    if not host:
        raise problem("the URL has no host")
    if port == 0:
        raise problem("port 0 is not valid")
    if ":" in host:  # IPv6 literal (yarl strips the brackets)
        if "%" in host:
            # Zone ids only make sense for link-local addresses, which are refused anyway.
            raise problem(f"{host} has an IPv6 zone id, which is not allowed")
        why = _refusal(host, allowed_networks)
        if why:
            raise problem(f"{host} is {why}")
        return url
    if message := _numeric_host_problem(host):
        raise problem(message)
    if _parse(host) is not None:
        why = _refusal(host, allowed_networks)
        if why:
            raise problem(f"{host} is {why}")
    elif host.rstrip(".") == "localhost" or host.rstrip(".").endswith(".localhost"):
        # RFC 6761: always loopback, so refuse it without DNS unless loopback is allowed.
        if not (address_allowed("127.0.0.1", allowed_networks) or address_allowed("::1", allowed_networks)):
            raise problem(f"{host} is a loopback name")
    return url


async def resolve_checked(
    host: str,
    port: int,
    allowed_networks: Iterable[Network | str] = (),
    *,
    field: str = WEBHOOK[0],
    label: str = WEBHOOK[1],
) -> list[str]:
    """Resolve ``host`` once; the allowed addresses, or UsageProblem if there are none.

    The message never says what the name resolved to (no mapping of internal DNS through our errors)."""
    host = host.strip("[]")
    if message := _numeric_host_problem(host):
        raise _problem(message, field, label)
    if _parse(host) is not None and (why := _refusal(host, allowed_networks)):
        raise _problem(f"{host} is {why}", field, label)  # the caller's own literal: say what it is
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise _problem(f"{host} does not resolve", field, label) from None
    allowed: list[str] = []
    refused: list[tuple[str, str]] = []
    for *_, sockaddr in infos:
        address = str(sockaddr[0])
        why = _refusal(address, allowed_networks)
        if why is None:
            if address not in allowed:
                allowed.append(address)
        else:
            refused.append((address, why))
    if not allowed:
        if not refused:
            raise _problem(f"{host} does not resolve", field, label)
        raise _problem(f"{host} resolves to an address that is not allowed", field, label)
    return allowed


async def check_url_resolving(
    url,
    *,
    production: bool,
    allowed_networks: Iterable[Network | str] = (),
    field: str = WEBHOOK[0],
    label: str = WEBHOOK[1],
) -> str:
    """``check_url``, then one resolution of its host: every address the name has must be allowed.

    What is checked when a URL is given; the connection itself goes through ``guarded_connector``."""
    if not isinstance(url, str):
        raise UsageProblem(f"{field} must be a string", field=field)
    url = check_url(url, production=production, allowed_networks=allowed_networks, field=field, label=label)
    parsed = URL(url)  # check_url proved it parses, with a valid port
    await resolve_checked(parsed.raw_host or "", parsed.port or 80, allowed_networks, field=field, label=label)
    return url


async def connect_addresses(host: str, port: int, allowed_networks: Iterable[Network | str] = ()) -> list[str]:
    """The addresses a connection to ``host`` may be made to, for a client that connects itself (the delivery
    worker's): ``host`` resolved once, every address checked, the refused ones dropped; BlockedAddress (the
    messages ``GuardedConnector`` gives) when none is left. Connect only to what this returns: no second
    lookup, so DNS rebinding between the check and the connection has no window. socket.gaierror when the
    name does not resolve."""
    allowed = _networks(allowed_networks)
    host = host.strip("[]")
    if message := _numeric_host_problem(host):
        raise BlockedAddress(message)  # e.g. 127.1 or 0x7f.1, which getaddrinfo would accept
    if _parse(host) is not None:  # a literal: no lookup
        if why := _refusal(host, allowed):
            raise BlockedAddress(f"{host} is {why}; refused by the SSRF policy")
        return [host]
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    kept: list[str] = []
    for *_, sockaddr in infos:
        address = str(sockaddr[0])
        if _refusal(address, allowed) is None and address not in kept:
            kept.append(address)
    if not kept:
        # Not the address: this message reaches the user (a delivery's error).
        what = "an address that is not allowed" if infos else "no address"
        raise BlockedAddress(f"{host} resolves to {what}; refused by the SSRF policy")
    return kept


class GuardedResolver(AbstractResolver):
    """Wraps aiohttp's resolver and drops refused addresses (Svix's approach).

    aiohttp connects to the addresses returned here (and caches them), so the
    checked addresses are the dialled ones: one lookup, no rebinding window.
    """

    def __init__(self, allowed_networks: Iterable[Network | str] = (), resolver: AbstractResolver | None = None):
        self._allowed = _networks(allowed_networks)
        self._resolver = resolver if resolver is not None else DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if message := _numeric_host_problem(host):
            raise BlockedAddress(message)  # e.g. 0x7f.1, which getaddrinfo would accept
        if _parse(host) is not None and (why := _refusal(host, self._allowed)):
            raise BlockedAddress(f"{host} is {why}; refused by the SSRF policy")
        results = await self._resolver.resolve(host, port, family)
        kept = [r for r in results if _refusal(r["host"], self._allowed) is None]
        if not kept:
            # Not the address: this message reaches the user (a delivery's error, a provider error).
            what = "an address that is not allowed" if results else "no address"
            raise BlockedAddress(f"{host} resolves to {what}; refused by the SSRF policy")
        return kept

    async def close(self) -> None:
        await self._resolver.close()


class GuardedConnector(aiohttp.TCPConnector):
    """TCPConnector that never connects to a refused address.

    aiohttp's ``_resolve_host`` returns IP-literal hosts as-is and never asks
    the resolver, so the GuardedResolver alone would let ``http://127.0.0.1/``
    through. We override ``_resolve_host`` (rather than a TraceConfig
    on_request_start hook) because it sits on the connection path itself: it
    also covers redirects and callers that forget the hook, and it sees the
    exact host string aiohttp dials. It is a private method, so the tests make
    real requests by IP literal to prove the override still takes effect, and
    ``_wrap_create_connection`` re-checks every address just before the socket
    is opened as a last line of defence should aiohttp's internals change.
    """

    def __init__(self, allowed_networks: Iterable[Network | str] = (), **kwargs: Any):
        self._allowed = _networks(allowed_networks)
        kwargs.setdefault("resolver", GuardedResolver(self._allowed))
        super().__init__(**kwargs)

    async def _resolve_host(self, host: str, port: int, traces: Any = None) -> list[ResolveResult]:
        if message := _numeric_host_problem(host):
            raise BlockedAddress(message)  # e.g. 127.1 or 2130706433
        if ":" in host or _parse(host) is not None:  # what aiohttp would not resolve
            why = _refusal(host, self._allowed)
            if why:
                raise BlockedAddress(f"{host} is {why}; refused by the SSRF policy")
        return await super()._resolve_host(host, port, traces=traces)

    async def _wrap_create_connection(
        self,
        *args: Any,
        addr_infos: list[Any],
        req: Any,
        client_error: Any = aiohttp.ClientConnectorError,
        **kwargs: Any,
    ) -> Any:
        for info in addr_infos:
            address = str(info[4][0])
            why = _refusal(address, self._allowed)
            if why:
                # The dialled address may come from DNS: not named (see the module's docstring).
                raise client_error(
                    req.connection_key,
                    BlockedAddress(
                        f"{req.host} resolves to an address that is not allowed; refused by the SSRF policy"
                    ),
                )
        return await super()._wrap_create_connection(
            *args, addr_infos=addr_infos, req=req, client_error=client_error, **kwargs
        )


def guarded_connector(
    allowed_networks: Iterable[Network | str] = (), *, limit: int = 100, limit_per_host: int = 0
) -> aiohttp.TCPConnector:
    """A connector whose every connection goes only to checked addresses (call inside a running loop)."""
    return GuardedConnector(allowed_networks, limit=limit, limit_per_host=limit_per_host)

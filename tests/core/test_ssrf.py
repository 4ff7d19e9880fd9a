"""SSRF guard for webhook URLs: address table, URL checks, resolution, real aiohttp requests.

No internet here: only ``localhost`` and IP literals are ever resolved or dialled;
"public" paths are exercised with public literals (93.184.216.34, ...).
"""

from __future__ import annotations

import ipaddress

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver

from nexusctl import ssrf
from nexusctl.errors import ConfigError, UsageProblem
from nexusctl.ssrf import (
    BlockedAddress,
    GuardedResolver,
    address_allowed,
    check_url,
    guarded_connector,
    parse_networks,
    resolve_checked,
)

LOCAL = parse_networks("127.0.0.1/32")

# (address, substring of the refusal reason, or None when it must be allowed)
ADDRESSES = [
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("10.1.2.3", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.255", "private"),
    ("192.168.1.1", "private"),
    ("169.254.169.254", "metadata"),
    ("169.254.1.1", "link-local"),
    ("0.0.0.0", "unspecified"),
    ("0.1.2.3", "0.0.0.0/8"),
    ("255.255.255.255", "broadcast"),
    ("240.0.0.1", "reserved"),
    ("100.64.0.1", "CGNAT"),
    ("100.127.255.254", "CGNAT"),
    ("192.0.0.9", "192.0.0.0/24"),  # is_global says True for this one
    ("192.0.0.170", "192.0.0.0/24"),
    ("198.18.0.1", "benchmarking"),
    ("198.19.255.255", "benchmarking"),
    ("192.0.2.1", "documentation"),
    ("198.51.100.7", "documentation"),
    ("203.0.113.9", "documentation"),
    ("224.0.0.1", "multicast"),  # bpo-37749: is_global says True
    ("239.255.255.250", "multicast"),
    ("192.88.99.1", "6to4"),
    ("::", "unspecified"),
    ("::1", "loopback"),
    ("fe80::1", "link-local"),
    ("fe80::1%eth0", "link-local"),
    ("fc00::1", "unique-local"),
    ("fd12:3456::1", "unique-local"),
    ("ff02::1", "multicast"),
    ("ff0e::1", "multicast"),
    ("fec0::1", "site-local"),
    ("::ffff:127.0.0.1", "loopback address (IPv4-mapped 127.0.0.1)"),
    ("::ffff:7f00:1", "loopback"),
    ("::ffff:169.254.169.254", "metadata"),
    ("::ffff:10.0.0.1", "private"),
    ("::127.0.0.1", "loopback address (IPv4-compatible 127.0.0.1)"),
    ("::8.8.8.8", "IPv4-compatible"),
    ("::ffff:0:7f00:1", "IPv4-translated"),
    ("64:ff9b::7f00:1", "NAT64"),
    ("64:ff9b::808:808", "NAT64"),
    ("64:ff9b:1::1", "NAT64"),
    ("2002:7f00:1::1", "6to4"),
    ("2001::1", "Teredo"),
    ("2001:db8::1", "documentation"),
    ("3fff::1", "documentation"),
    ("100::1", "discard"),
    ("5f00::1", "SRv6"),
    ("not-an-ip", "not an IP address"),
    ("93.184.216.34", None),
    ("8.8.8.8", None),
    ("1.1.1.1", None),
    ("172.32.0.1", None),
    ("100.128.0.1", None),
    ("192.0.1.1", None),
    ("2606:4700:4700::1111", None),
    ("2001:4860:4860::8888", None),
    ("::ffff:93.184.216.34", None),  # mapped: judged as the v4 address it is
]


@pytest.mark.parametrize(("address", "reason"), ADDRESSES)
def test_address_table(address, reason):
    assert address_allowed(address) is (reason is None)
    why = ssrf._refusal(address, ())
    if reason is None:
        assert why is None
    else:
        assert reason in why
        # and the same verdict through a URL
        if address != "not-an-ip" and "%" not in address:
            host = f"[{address}]" if ":" in address else address
            with pytest.raises(UsageProblem) as caught:
                check_url(f"https://{host}/hook", production=True)
            assert reason in caught.value.message
            assert caught.value.details == {"field": "url"}


def test_address_objects_are_accepted():
    assert not address_allowed(ipaddress.ip_address("127.0.0.1"))
    assert address_allowed(ipaddress.ip_address("93.184.216.34"))


# Refused URLs: (url, substring of the message)
REFUSED_URLS = [
    ("http://2130706433/", "non-canonical IPv4 address (it means 127.0.0.1)"),
    ("http://017700000001/", "it means 127.0.0.1"),
    ("http://0177.0.0.1/", "it means 127.0.0.1"),
    ("http://0x7f.0.0.1/", "it means 127.0.0.1"),
    ("http://0x7f.1/", "it means 127.0.0.1"),
    ("http://127.1/", "it means 127.0.0.1"),
    ("http://127.0.0.1./", "it means 127.0.0.1"),
    ("http://0xa9fea9fe/", "it means 169.254.169.254"),
    ("http://1.2.3.4.5/", "not a valid IPv4 address"),
    ("http://①②⑦.0.0.1/", "127.0.0.1 is a loopback address"),  # IDNA folds to 127.0.0.1
    ("http://127。0。0。1/", "127.0.0.1 is a loopback address"),
    ("http://127.0.0.1/", "127.0.0.1 is a loopback address"),
    ("http://127.0.0.1:8080/hook", "127.0.0.1 is a loopback address"),
    ("http://[::1]/", "::1 is a loopback address"),
    ("http://[::ffff:127.0.0.1]/", "loopback"),
    ("http://[0:0:0:0:0:ffff:7f00:1]/", "loopback"),
    ("http://[fe80::1%25eth0]/", "zone id"),
    ("http://[2606:4700:4700::1111%25eth0]/", "zone id"),
    ("http://169.254.169.254/latest/meta-data/", "metadata"),
    ("http://localhost/", "localhost is a loopback name"),
    ("http://api.localhost:8080/", "loopback name"),
    ("http://user:pass@example.com/", "credentials"),
    ("http://user@example.com/", "credentials"),
    ("http://@example.com/", "credentials"),
    ("http://example.com\\@127.0.0.1/", "not a valid URL"),
    ("ftp://example.com/", "http or https"),
    ("file:///etc/passwd", "http or https"),
    ("//example.com/", "http or https"),
    ("http:///hook", "no host"),
    ("http://example.com:0/", "port 0"),
    ("http://example.com:99999/", "not a valid URL"),
    ("http://exa mple.com/", "whitespace"),
    ("http://example.com\t/", "whitespace"),
    ("", "required"),
]


@pytest.mark.parametrize(("url", "reason"), REFUSED_URLS)
def test_refused_urls(url, reason):
    with pytest.raises(UsageProblem) as caught:
        check_url(url, production=False)
    assert reason in caught.value.message
    assert caught.value.details == {"field": "url"}


@pytest.mark.parametrize(
    "url",
    [
        "https://93.184.216.34/hook",
        "https://example.com/hook?x=1#f",
        "https://example.com:8443/hook",
        "https://[2606:4700:4700::1111]:443/",
        "https://[::ffff:93.184.216.34]/",
        "https://xn--bcher-kva.example/",
        "https://bücher.example/",
        "HTTPS://Example.COM/Hook",
        "https://10.example.com/",  # a name, not a number: checked at connect time
    ],
)
def test_allowed_urls_are_returned_stripped(url):
    assert check_url(f"  {url}\n", production=True) == url


def test_https_is_required_in_production():
    assert check_url("http://93.184.216.34/hook", production=False) == "http://93.184.216.34/hook"
    with pytest.raises(UsageProblem, match="https is required in production"):
        check_url("http://93.184.216.34/hook", production=True)
    with pytest.raises(UsageProblem, match="https is required in production"):
        check_url("http://example.com/hook", production=True)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://example.com:1_0/", "the port '1_0' is not a number"),  # yarl reads 10, urllib.parse raises
        ("https://example.com:８０/", "the port '８０' is not a number"),  # fullwidth: int() accepts it
        ("https://example.com:99999/", "not a valid URL"),
        ("https://example.com:-1/", "not a valid URL"),
        ("https://[::1/", "not a valid URL"),  # unclosed IPv6 host
        ("https://[2606:4700::1]x/", "not a valid URL"),
    ],
)
def test_odd_ports_and_hosts_are_refused_naming_the_field(url, reason):
    with pytest.raises(UsageProblem) as caught:
        check_url(url, production=False, field="storeUrl", label="storeUrl")
    assert caught.value.details == {"field": "storeUrl"} and reason in caught.value.message
    assert caught.value.message.startswith("storeUrl refused: ")


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://h:1_0/", "the port '1_0' is not a number"),
        ("http://h:８０/", "the port '８０' is not a number"),
        ("http://h:99999/", "the port 99999 is out of range (1-65535)"),
        ("http://[::1", "no closing ']'"),
        ("http://[::1]x/", "nothing may follow"),
        ("http://h]/", "bracket"),
        ("http://h:443/a:b?c=:d#:e", None),
        ("http://[::1]:8080/", None),
        ("https://h/", None),
    ],
)
def test_authority_problem(url, problem):
    found = ssrf.authority_problem(url)
    assert (found is None) if problem is None else (problem in found), found


def test_userinfo_is_refused_even_for_public_hosts():
    for url in ("https://a:b@93.184.216.34/", "https://token@example.com/", "https://:@example.com/"):
        with pytest.raises(UsageProblem, match="credentials"):
            check_url(url, production=True)


def test_parse_networks():
    assert parse_networks(None) == ()
    assert parse_networks("  ") == ()
    assert parse_networks("127.0.0.1/32, 10.0.0.0/8") == (
        ipaddress.ip_network("127.0.0.1/32"),
        ipaddress.ip_network("10.0.0.0/8"),
    )
    assert parse_networks("::1/128 fd00::/8,127.0.0.1") == (
        ipaddress.ip_network("::1/128"),
        ipaddress.ip_network("fd00::/8"),
        ipaddress.ip_network("127.0.0.1/32"),
    )
    for bad in ("127.0.0.1/32, nope", "10.0.0.1/8", "10.0.0.0/33"):
        with pytest.raises(ConfigError) as caught:
            parse_networks(bad)
        assert "WEBHOOK_ALLOWED_NETWORKS" in caught.value.message
        assert bad.split(", ")[-1] in caught.value.message


def test_allowed_networks_exempt_exactly_what_they_list():
    assert address_allowed("127.0.0.1", LOCAL)
    assert address_allowed("::ffff:127.0.0.1", LOCAL)  # the same address
    for other in ("127.0.0.2", "::1", "0.0.0.0", "10.0.0.1", "169.254.169.254", "192.168.0.1"):
        assert not address_allowed(other, LOCAL), other

    private = parse_networks("10.0.0.0/8")
    assert address_allowed("10.255.1.2", private)
    assert not address_allowed("172.16.0.1", private)
    assert not address_allowed("127.0.0.1", private)
    assert address_allowed("93.184.216.34", private)  # public stays allowed
    assert address_allowed("10.0.0.1", ["10.0.0.0/8"])  # CIDR strings work too

    assert check_url("http://127.0.0.1:8080/hook", production=False, allowed_networks=LOCAL)
    assert check_url("http://localhost:8080/hook", production=False, allowed_networks=LOCAL)
    with pytest.raises(UsageProblem, match="127.0.0.2 is a loopback"):
        check_url("http://127.0.0.2:8080/hook", production=False, allowed_networks=LOCAL)
    with pytest.raises(UsageProblem, match="non-canonical"):  # odd forms stay refused
        check_url("http://127.1:8080/hook", production=False, allowed_networks=LOCAL)
    with pytest.raises(UsageProblem, match="https is required"):
        check_url("http://127.0.0.1/", production=True, allowed_networks=LOCAL)


async def test_resolve_checked_localhost():
    with pytest.raises(UsageProblem) as caught:
        await resolve_checked("localhost", 80)
    # Not what it resolves to (127.0.0.1): an error must not map internal names to addresses.
    assert caught.value.message == "Webhook URL refused: localhost resolves to an address that is not allowed"
    assert "127.0.0.1" not in caught.value.message and "loopback" not in caught.value.message
    assert caught.value.details == {"field": "url"}
    assert await resolve_checked("localhost", 80, LOCAL) == ["127.0.0.1"]


async def test_resolve_checked_literals_and_failures():
    with pytest.raises(UsageProblem, match="loopback"):
        await resolve_checked("127.0.0.1", 80)
    with pytest.raises(UsageProblem, match="metadata"):
        await resolve_checked("169.254.169.254", 80)
    with pytest.raises(UsageProblem, match="non-canonical"):
        await resolve_checked("0x7f.1", 80, LOCAL)
    assert await resolve_checked("93.184.216.34", 443) == ["93.184.216.34"]
    with pytest.raises(UsageProblem, match="does not resolve"):
        await resolve_checked("no-such-host.invalid", 80)


class StubResolver(AbstractResolver):
    """Answers every name with fixed addresses (a name that rebinds to internal ones)."""

    def __init__(self, *hosts: str):
        self.hosts = hosts
        self.calls = 0

    async def resolve(self, host, port=0, family=0):
        self.calls += 1
        return [
            {"hostname": host, "host": h, "port": port, "family": 10 if ":" in h else 2, "proto": 0, "flags": 0}
            for h in self.hosts
        ]

    async def close(self):
        pass


async def test_guarded_resolver_drops_refused_addresses():
    mixed = GuardedResolver(resolver=StubResolver("10.0.0.5", "93.184.216.34", "::1", "2606:4700::1"))
    assert [r["host"] for r in await mixed.resolve("hook.example", 443)] == ["93.184.216.34", "2606:4700::1"]

    internal = GuardedResolver(resolver=StubResolver("169.254.169.254", "10.0.0.5"))
    with pytest.raises(BlockedAddress) as caught:
        await internal.resolve("hook.example", 443)
    # What the name resolves to stays out of the message (it reaches the user as a delivery's error).
    assert str(caught.value) == "hook.example resolves to an address that is not allowed; refused by the SSRF policy"
    with pytest.raises(BlockedAddress, match="non-canonical"):
        await internal.resolve("0x7f.1", 443)

    exempt = GuardedResolver(LOCAL, resolver=StubResolver("127.0.0.1", "127.0.0.2"))
    assert [r["host"] for r in await exempt.resolve("hook.example", 443)] == ["127.0.0.1"]


@pytest.fixture
async def receiver(aiohttp_server):
    """A local webhook receiver on 127.0.0.1 that counts the requests it gets."""
    hits = []

    async def hook(request):
        hits.append(request.path)
        return web.Response(text="ok")

    async def redirect(request):
        raise web.HTTPFound(f"http://169.254.169.254:{request.url.port}/hook")

    app = web.Application()
    app.router.add_post("/hook", hook)
    app.router.add_post("/redirect", redirect)
    server = await aiohttp_server(app, host="127.0.0.1")
    return server.port, hits


async def _post(url, connector, **kwargs):
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.post(url, json={"a": 1}, timeout=aiohttp.ClientTimeout(total=5), **kwargs) as response:
            return response.status


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
async def test_real_request_is_refused_unless_allowed(receiver, host):
    """By name (resolver path) and by IP literal (aiohttp's resolver bypass): both closed."""
    port, hits = receiver
    with pytest.raises(aiohttp.ClientConnectorError) as caught:
        await _post(f"http://{host}:{port}/hook", guarded_connector())
    assert isinstance(caught.value.os_error, BlockedAddress)
    # An IP literal is named for what it is; a name's addresses are not told (no DNS mapping through errors).
    assert ("loopback" if host == "127.0.0.1" else "resolves to an address that is not allowed") in str(
        caught.value.os_error
    )
    assert hits == []

    assert await _post(f"http://{host}:{port}/hook", guarded_connector(LOCAL)) == 200
    assert hits == ["/hook"]


@pytest.mark.parametrize("host", ["[::ffff:127.0.0.1]", "127.1", "2130706433", "0x7f.0.0.1"])
async def test_real_request_by_odd_literal_is_refused(receiver, host):
    port, hits = receiver
    with pytest.raises(aiohttp.ClientError):
        await _post(f"http://{host}:{port}/hook", guarded_connector())
    assert hits == []


async def test_redirect_targets_are_checked_too(receiver):
    port, hits = receiver
    # The caller never follows redirects ...
    assert await _post(f"http://127.0.0.1:{port}/redirect", guarded_connector(LOCAL), allow_redirects=False) == 302
    # ... and if one were followed, the connector still refuses the new target.
    with pytest.raises(aiohttp.ClientConnectorError) as caught:
        await _post(f"http://127.0.0.1:{port}/redirect", guarded_connector(LOCAL))
    assert "metadata" in str(caught.value.os_error)
    assert hits == []


async def test_last_check_before_connect_catches_an_unguarded_resolver(receiver):
    """Even with a plain resolver that returns loopback, the socket is never opened."""
    port, hits = receiver
    stub = StubResolver("127.0.0.1")
    connector = ssrf.GuardedConnector((), resolver=stub)
    with pytest.raises(aiohttp.ClientConnectorError) as caught:
        await _post(f"http://rebinding.example:{port}/hook", connector)
    assert isinstance(caught.value.os_error, BlockedAddress)
    assert stub.calls == 1 and hits == []


async def test_ip_literals_are_checked_where_aiohttp_skips_the_resolver():
    """The _resolve_host override on its own (the connect-time re-check is a second layer)."""
    connector = guarded_connector()
    try:
        for host in ("127.0.0.1", "::1", "::ffff:7f00:1", "169.254.169.254", "10.0.0.1", "127.1"):
            with pytest.raises(BlockedAddress):
                await connector._resolve_host(host, 80)
        assert [r["host"] for r in await connector._resolve_host("93.184.216.34", 80)] == ["93.184.216.34"]
    finally:
        await connector.close()


def test_allowed_networks_given_as_raw_text_are_parsed():
    assert address_allowed("127.0.0.1", "127.0.0.1/32")
    assert not address_allowed("127.0.0.2", "127.0.0.1/32")


async def test_connect_addresses_checks_every_address_and_keeps_only_the_allowed():
    """The delivery worker's own connections: what it may connect to, with the connector's messages."""
    assert await ssrf.connect_addresses("127.0.0.1", 80, ["127.0.0.1/32"]) == ["127.0.0.1"]
    assert await ssrf.connect_addresses("localhost", 80, ["127.0.0.1/32"]) == ["127.0.0.1"]  # not ::1
    for host, message in (
        ("127.0.0.1", "127.0.0.1 is a loopback address; refused by the SSRF policy"),
        ("[::1]", "::1 is a loopback address; refused by the SSRF policy"),
        ("localhost", "localhost resolves to an address that is not allowed; refused by the SSRF policy"),
        ("127.1", "127.1 is a non-canonical IPv4 address (it means 127.0.0.1); write it as a dotted quad"),
    ):
        with pytest.raises(ssrf.BlockedAddress) as caught:
            await ssrf.connect_addresses(host, 80)
        assert str(caught.value) == message

"""What the services calling a stack's daemon (support.stack) do: connect an integration as its user, sign that
user's bearer token, call the proxy route, send a request whose target goes on the wire exactly as written, and
start a proxied download left unread (or read within a block that hangs up at its end).

Used by the proxy's suites and by the ones that stop a daemon with proxied calls in flight (tests/oauth).
"""

from __future__ import annotations

import contextlib
import http.client
import urllib.parse
import uuid

from support.tokens import mint


def tenant_of(stack, provider: str) -> dict:
    """What a connect of ``provider`` names besides the user: the Shopify shop, the WooCommerce store."""
    if provider == "SHOPIFY":
        return {"shop": "demo-store.myshopify.com"}
    if provider == "WOOCOMMERCE":
        return {"storeUrl": stack.emulators.woocommerce_store_url}
    return {}


def connected(stack, provider: str, user=None) -> tuple[uuid.UUID, str]:
    """(user, integration id) of a new connection of ``provider``, made the way users make it (the browser-style
    OAuth flow; SendGrid's API key pasted)."""
    user = user or uuid.uuid4()
    if provider == "SENDGRID":
        made = stack.api(
            "POST",
            "/integrations/api-key",
            user=user,
            body={"userId": str(user), "provider": "SENDGRID", "apiKey": stack.emulators.sendgrid_key()},
        )
        assert made.status == 201, made.text
        return user, made.json()["data"]["id"]
    result = stack.connect(provider, user, **tenant_of(stack, provider))
    assert result["status"] == "success", result
    return user, result["integrationId"]


def bearer(stack, user, *roles) -> str:
    """The Authorization value of ``user`` (with ``roles``) for this stack's daemon."""
    return "Bearer " + mint(user, *roles, secret=stack.env["JWT_SECRET"])


def proxy(
    stack, integration: str, method: str, path: str, *, user=None, roles=(), query: str = "", body=None, headers=None
):
    """``method`` ``path`` (a provider path) through the daemon's proxy route, as ``stack.api`` answers it."""
    url = f"/integrations/{integration}/proxy{path}" + (f"?{query}" if query else "")
    return stack.api(method, url, user=user, roles=roles, body=body, headers=headers)


def _connection(stack, timeout: float) -> http.client.HTTPConnection:
    parts = urllib.parse.urlsplit(stack.base)
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)


def raw_request(stack, method: str, target: str, *, user, headers=None, body: bytes | None = None):
    """(status, headers, body) of a request whose target goes on the wire exactly as written (no client
    normalising it); ``headers`` a dict, or (name, value) pairs for a header sent on several lines."""
    conn = _connection(stack, 60)
    try:
        conn.putrequest(method, target, skip_accept_encoding=True)
        pairs = headers.items() if isinstance(headers, dict) else headers or ()
        for name, value in [("Authorization", bearer(stack, user)), *pairs]:
            conn.putheader(name, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders()
        if body is not None:
            conn.send(body)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def file_target(integration: str, file_id: str) -> str:
    """The proxy route's target for a Salesforce file (the emulator's ``add_file``), as its request line logs it."""
    return f"/integrations/{integration}/proxy/services/data/v62.0/sobjects/ContentVersion/{file_id}/VersionData"


def _open_download(stack, user, integration: str, file_id: str, timeout: float):
    """(connection, response) of a proxied GET of ``file_id``, answered 200 and unread."""
    conn = _connection(stack, timeout)
    try:
        conn.request("GET", file_target(integration, file_id), headers={"Authorization": bearer(stack, user)})
        response = conn.getresponse()
        assert response.status == 200, response.status
    except BaseException:
        conn.close()
        raise
    return conn, response


def download(stack, user, integration: str, file_id: str, timeout: float = 60) -> http.client.HTTPResponse:
    """A proxied GET of a Salesforce file (the emulator's ``add_file``), answered 200 and left for the caller to
    read (and close) at its own pace."""
    return _open_download(stack, user, integration, file_id, timeout)[1]


@contextlib.contextmanager
def downloading(stack, user, integration: str, file_id: str, timeout: float = 60):
    """``download`` whose connection is closed when the block ends, also when it fails: the caller reads as much
    as it wants (all of a cut-short answer, or a part before it hangs up)."""
    conn, response = _open_download(stack, user, integration, file_id, timeout)
    try:
        yield response
    finally:
        conn.close()

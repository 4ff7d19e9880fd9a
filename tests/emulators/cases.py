"""How a correct client starts and finishes each provider's code flow, as data for the tests.

``authorize_request(emu, name)`` builds a valid authorization request;
``exchange(emu, name, query, verifier)`` redeems the code the way that
provider wants (its client-id parameter, body vs Basic, form vs JSON);
``succeeded(name, resp)`` knows which providers report errors with HTTP 200.
"""

from __future__ import annotations

from nexusctl.providers.registry import SPECS
from nexusctl.providers.spec import ConnectKind

from .testkit import REDIRECT, Resp, call, consent, pkce

SHOP = "demo.myshopify.com"

SCOPES = {
    "TIKTOK": "user.info.basic,video.list",
    "INSTAGRAM": "instagram_business_basic,instagram_business_content_publish",
    "FACEBOOK": "public_profile,email",
    "META_ADS": "ads_read,ads_management,business_management",
    "YOUTUBE": "https://www.googleapis.com/auth/youtube.readonly",
    "GOOGLE_ADS": "openid email https://www.googleapis.com/auth/adwords",
    "TWITTER": "tweet.read tweet.write users.read offline.access",
    "LINKEDIN": "openid profile email",
    "HUBSPOT": "oauth crm.objects.contacts.read",
    "SALESFORCE": "api refresh_token",
    "SHOPIFY": "read_products,read_orders",
    "STRIPE": "read_write",
    "PAYPAL": "openid profile email",
    "ZAPIER": "profile zap",
    "SLACK": "chat:write,channels:read",
    "DISCORD": "identify guilds",
}
SCOPE_SEP = {name: ("," if "," in scope else " ") for name, scope in SCOPES.items()}
SCOPE_EITHER = {"INSTAGRAM", "FACEBOOK", "META_ADS"}  # Meta accepts comma or space
PKCE = {"FACEBOOK", "META_ADS", "YOUTUBE", "GOOGLE_ADS", "TWITTER", "HUBSPOT", "SALESFORCE", "DISCORD"}
# Every provider connected by an OAuth code flow, from the service's provider specs: a new provider is covered
# here without anyone remembering to list it.
OAUTH = [provider.value for provider, spec in SPECS.items() if spec.kind is ConnectKind.OAUTH2]
# Providers whose token request repeats redirect_uri and checks it.
CHECKS_REDIRECT = set(OAUTH) - {"SHOPIFY", "TIKTOK_ADS", "STRIPE", "PAYPAL"}


def auth_url(emu, name: str) -> str:
    return emu.env()[f"{name}_AUTH_URL"].replace("{shop}", SHOP)


def token_url(emu, name: str) -> str:
    return emu.env()[f"{name}_TOKEN_URL"].replace("{shop}", SHOP)


def api_url(emu, name: str) -> str:
    return emu.env()[f"{name}_API_URL"].replace("{shop}", SHOP)


def authorize_request(emu, name: str, state: str = "state-123", challenge: str | None = None) -> tuple[str, dict]:
    cid = emu[name].client_id
    params = {"client_id": cid, "response_type": "code", "redirect_uri": REDIRECT, "state": state}
    if name in SCOPES:
        params["scope"] = SCOPES[name]
    if name == "TIKTOK":
        params["client_key"] = params.pop("client_id")
    elif name == "TIKTOK_ADS":
        params = {"app_id": cid, "state": state, "redirect_uri": REDIRECT}
    elif name in ("SHOPIFY", "SLACK", "HUBSPOT"):
        params.pop("response_type")
    elif name in ("YOUTUBE", "GOOGLE_ADS"):
        params.update(access_type="offline", prompt="consent")
    elif name == "PAYPAL":
        params["flowEntry"] = "static"
    elif name == "ZAPIER":
        params["response_mode"] = "query"
    if challenge:
        params.update(code_challenge=challenge, code_challenge_method="S256")
    return auth_url(emu, name), params


def start(emu, name: str, state: str = "state-123") -> tuple[dict, str | None]:
    """Run authorize (with PKCE where the provider supports it); return (redirect query, verifier)."""
    verifier, challenge = pkce() if name in PKCE else (None, None)
    url, params = authorize_request(emu, name, state, challenge)
    return consent(url, params), verifier


def exchange(
    emu, name: str, query: dict, verifier: str | None = None, *, redirect_uri: str = REDIRECT, secret: str | None = None
) -> Resp:
    p = emu[name]
    cid, secret = p.client_id, secret if secret is not None else p.client_secret
    url, code = token_url(emu, name), query.get("code")
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "client_id": cid,
        "client_secret": secret,
    }
    if verifier:
        form["code_verifier"] = verifier
    if name == "TIKTOK":
        form["client_key"] = form.pop("client_id")
    elif name in ("FACEBOOK", "META_ADS"):
        form.pop("grant_type")
        return call("GET", url, params=form)
    elif name == "TIKTOK_ADS":
        return call("POST", url, json_body={"app_id": cid, "secret": secret, "auth_code": query["auth_code"]})
    elif name == "SHOPIFY":
        return call("POST", url, form={"client_id": cid, "client_secret": secret, "code": code, "expiring": "1"})
    elif name == "STRIPE":
        return call("POST", url, form={"grant_type": "authorization_code", "code": code, "client_secret": secret})
    elif name in ("TWITTER", "PAYPAL", "DISCORD"):
        form.pop("client_id")
        form.pop("client_secret")
        if name == "PAYPAL":
            form.pop("redirect_uri")
        return call("POST", url, form=form, auth=(cid, secret))
    elif name == "SLACK":
        form.pop("grant_type")
    return call("POST", url, form=form)


def succeeded(name: str, resp: Resp) -> bool:
    if resp.status != 200:
        return False
    body = resp.json()
    if name == "TIKTOK_ADS":
        return body.get("code") == 0
    if name == "SLACK":
        return body.get("ok") is True
    return "access_token" in body


def access_token(name: str, resp: Resp) -> str:
    body = resp.json()
    return body["data"]["access_token"] if name == "TIKTOK_ADS" else body["access_token"]

"""Shopify (GraphQL connections) and WooCommerce (page numbers, HTTP Basic keys) against their emulators."""

from __future__ import annotations

import datetime as dt
import secrets

import pytest
from support import clock
from support.ports import closed_port
from synckit import read_all

from nexusctl.enums import Provider
from nexusctl.errors import ProviderError, RateLimited, TokenExpired
from nexusctl.providers.http import Reply, retry_after
from nexusctl.providers.scopes import requested

SHOP = "demo-shop.myshopify.com"


def shopify_token(emulators, scope=None, shop=SHOP) -> str:
    """A token of a new grant of ``scope``: by default what the service requests (no scope beyond it here)."""
    emu = emulators["SHOPIFY"]
    asked = requested(Provider.SHOPIFY, emu.approved)
    scope = list(asked) if scope is None else scope
    assert set(scope) <= set(asked), f"{sorted(set(scope) - set(asked))} are not requested by the service"
    return emu.issue(emu.new_grant(scope, shop=shop), "access", 3600, value="shpat_" + secrets.token_hex(16)).value


def _ago(days: float, emulators) -> str:
    """``days`` before the shared clock's now (earlier tests may have moved it on)."""
    return (clock.now(emulators) - dt.timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _products(n):
    return [
        {
            "id": f"gid://shopify/Product/{1000 + i}",
            "title": f"Product {i}",
            "handle": f"product-{i}",
            "status": "ACTIVE" if i % 3 else "DRAFT",
            "vendor": "Acme",
            "productType": "Widget",
            "tags": [f"t{i % 4}"],
            "totalInventory": i * 2,
            "createdAt": "2026-01-01T00:00:00Z",
            "updatedAt": f"2026-02-{1 + i % 28:02d}T00:00:00Z",
            "descriptionHtml": "<p>" + "x" * 500 + "</p>",
        }
        for i in range(n)
    ]


def test_shopify_products_read_every_page_in_order(fresh_emulators):
    fresh_emulators["SHOPIFY"].set_records("products", _products(520))
    pages, calls = read_all(
        fresh_emulators, "SHOPIFY", "fetch_products", token=shopify_token(fresh_emulators), tenant=SHOP
    )
    assert calls == 3 and fresh_emulators["SHOPIFY"].calls["products"] == 3
    assert [len(p.items) for p in pages] == [250, 250, 20]
    assert [i.external_id for p in pages for i in p.items] == [f"gid://shopify/Product/{1000 + i}" for i in range(520)]
    assert pages[0].resume and pages[1].resume and pages[2].resume is None
    item = pages[1].items[3]  # product 253
    assert item.data["title"] == "Product 253" and item.data["status"] == "ACTIVE" and item.data["tags"] == ["t1"]
    assert item.data["totalInventory"] == 506 and "descriptionHtml" not in item.data


def _orders(ages, emulators):
    return [
        {
            "id": f"gid://shopify/Order/{i}",
            "name": f"#{1000 + i}",
            "createdAt": _ago(age, emulators),
            "updatedAt": _ago(age, emulators),
            "cancelledAt": None,
            "displayFinancialStatus": "PAID",
            "displayFulfillmentStatus": "UNFULFILLED",
            "currentTotalPriceSet": {"shopMoney": {"amount": "1.00", "currencyCode": "EUR"}},
        }
        for i, age in enumerate(ages)
    ]


def test_shopify_orders_older_than_60_days_need_the_approved_read_all_orders(fresh_emulators):
    emu = fresh_emulators["SHOPIFY"]
    emu.set_records("orders", _orders([1, 30, 59, 61, 200], fresh_emulators))
    recent, _ = read_all(fresh_emulators, "SHOPIFY", "fetch_orders", token=shopify_token(fresh_emulators), tenant=SHOP)
    assert [i.data["name"] for p in recent for i in p.items] == ["#1000", "#1001", "#1002"]  # Shopify's silent cut
    with pytest.raises(ValueError, match="approve"):  # Shopify grants it only to apps it approved
        emu.new_grant(["read_orders", "read_all_orders"], shop=SHOP)
    emu.approve_scopes("read_all_orders")  # the operator's app was approved (SHOPIFY_APPROVED_SCOPES)
    every, _ = read_all(fresh_emulators, "SHOPIFY", "fetch_orders", token=shopify_token(fresh_emulators), tenant=SHOP)
    assert len([i for p in every for i in p.items]) == 5


def test_shopify_products_resume_after_a_stored_cursor(fresh_emulators):
    fresh_emulators["SHOPIFY"].set_records("products", _products(520))
    token = shopify_token(fresh_emulators)
    first, _ = read_all(fresh_emulators, "SHOPIFY", "fetch_products", token=token, tenant=SHOP, max_pages=1)
    rest, calls = read_all(
        fresh_emulators, "SHOPIFY", "fetch_products", token=token, tenant=SHOP, resume=first[0].resume
    )
    assert calls == 2 and [len(p.items) for p in rest] == [250, 20]
    assert rest[0].items[0].external_id == "gid://shopify/Product/1250"


def test_shopify_orders_and_inventory(fresh_emulators):
    emu = fresh_emulators["SHOPIFY"]
    emu.set_records(
        "orders",
        [
            {
                "id": f"gid://shopify/Order/{i}",
                "name": f"#{1000 + i}",
                "createdAt": _ago(5, fresh_emulators),
                "updatedAt": _ago(4, fresh_emulators),
                "cancelledAt": None,
                "displayFinancialStatus": "PAID",
                "displayFulfillmentStatus": "UNFULFILLED",
                "currentTotalPriceSet": {"shopMoney": {"amount": f"{i}.50", "currencyCode": "EUR"}},
            }
            for i in range(1, 151)
        ],
    )
    locations = [{"id": f"gid://shopify/Location/{j}", "name": f"Store {j}"} for j in range(12)]
    emu.set_records(
        "inventory",
        [
            {
                "id": f"gid://shopify/InventoryItem/{i}",
                "sku": f"SKU-{i}",
                "tracked": True,
                "createdAt": "2026-01-01T00:00:00Z",
                "updatedAt": "2026-01-02T00:00:00Z",
                "inventoryLevels": {
                    "pageInfo": {"hasNextPage": i == 0},
                    "nodes": [
                        {
                            "location": loc,
                            "quantities": [
                                {"name": "available", "quantity": i},
                                {"name": "on_hand", "quantity": i + 1},
                            ],
                        }
                        for loc in locations[: 10 if i == 0 else 2]
                    ],
                },
            }
            for i in range(45)
        ],
    )
    token = shopify_token(fresh_emulators)
    orders, calls = read_all(fresh_emulators, "SHOPIFY", "fetch_orders", token=token, tenant=SHOP)
    assert calls == 2 and [len(p.items) for p in orders] == [100, 50] and orders[-1].resume is None
    assert orders[1].items[0].data["total"] == {"amount": "101.50", "currency": "EUR"}
    assert orders[1].items[0].data["name"] == "#1101" and orders[1].items[0].data["financialStatus"] == "PAID"
    inventory, calls = read_all(fresh_emulators, "SHOPIFY", "fetch_inventory", token=token, tenant=SHOP)
    assert calls == 3 and [len(p.items) for p in inventory] == [20, 20, 5]
    first, later = inventory[0].items[0].data, inventory[2].items[4].data
    assert first["levelsTruncated"] is True and len(first["levels"]) == 10
    assert later["sku"] == "SKU-44" and later["levels"][1] == {
        "locationId": "gid://shopify/Location/1",
        "location": "Store 1",
        "available": 44,
        "onHand": 45,
    }
    assert "levelsTruncated" not in later


def test_shopify_refused_token_missing_scope_and_throttling(fresh_emulators):
    emu = fresh_emulators["SHOPIFY"]
    emu.set_records("products", _products(3))
    with pytest.raises(TokenExpired):
        read_all(fresh_emulators, "SHOPIFY", "fetch_products", token="shpat_" + "0" * 32, tenant=SHOP)
    with pytest.raises(TokenExpired):  # a token of another shop is refused the same way
        read_all(
            fresh_emulators,
            "SHOPIFY",
            "fetch_products",
            token=shopify_token(fresh_emulators, shop="other.myshopify.com"),
            tenant=SHOP,
        )
    with pytest.raises(ProviderError) as caught:
        read_all(
            fresh_emulators,
            "SHOPIFY",
            "fetch_orders",
            token=shopify_token(fresh_emulators, ["read_products"]),
            tenant=SHOP,
        )
    assert "read_orders" in caught.value.message and "ACCESS_DENIED" in caught.value.message
    assert not isinstance(caught.value, (TokenExpired, RateLimited))
    emu.rate_limit_next("products", retry_after=7)
    with pytest.raises(RateLimited) as limited:  # HTTP 200 THROTTLED; the wait from the cost extension
        read_all(fresh_emulators, "SHOPIFY", "fetch_products", token=shopify_token(fresh_emulators), tenant=SHOP)
    assert limited.value.retry_after == 7
    emu.rate_limit_next("inventory", retry_after=40)
    with pytest.raises(RateLimited) as limited:
        read_all(fresh_emulators, "SHOPIFY", "fetch_inventory", token=shopify_token(fresh_emulators), tenant=SHOP)
    assert limited.value.retry_after == 40
    emu.fail_next("products", 502)
    with pytest.raises(ProviderError):
        read_all(fresh_emulators, "SHOPIFY", "fetch_products", token=shopify_token(fresh_emulators), tenant=SHOP)


def woo_key(emulators) -> str:
    emu = emulators["WOOCOMMERCE"]
    key, secret = "ck_" + secrets.token_hex(20), "cs_" + secrets.token_hex(20)
    emu.issue(emu.new_grant(["read"]), "access", None, value=key, secret=secret, key_id=7)
    return f"{key}:{secret}"


# The store is the emulator on 127.0.0.1, a host the user named: the SSRF guard admits it only when
# allow-listed (WEBHOOK_ALLOWED_NETWORKS covers every user-supplied URL).
LOCAL_STORE = {"WEBHOOK_ALLOWED_NETWORKS": "127.0.0.1/32"}


def read_woo(emulators, action, *, env=LOCAL_STORE, **kwargs):
    return read_all(emulators, "WOOCOMMERCE", action, env=env, **kwargs)


def _woo_products(n):
    # Stored newest first, as the store lists them by default: ids descending.
    return [
        {
            "id": 10 + i,
            "name": f"Woo {i}",
            "slug": f"woo-{i}",
            "sku": f"W{i}",
            "type": "simple",
            "status": "publish",
            "price": f"{i}.00",
            "regular_price": f"{i}.00",
            "sale_price": "",
            "stock_status": "instock",
            "stock_quantity": i,
            "date_created_gmt": "2026-01-01T00:00:00",
            "date_modified_gmt": "2026-01-02T00:00:00",
            "description": "y" * 3000,
        }
        for i in reversed(range(230))
    ]


def test_woocommerce_products_every_page_by_id_with_basic_keys(fresh_emulators):
    fresh_emulators["WOOCOMMERCE"].set_records("products", _woo_products(230))
    store = fresh_emulators.woocommerce_store_url
    pages, calls = read_woo(fresh_emulators, "fetch_products", token=woo_key(fresh_emulators), tenant=store)
    assert calls == 3 and fresh_emulators["WOOCOMMERCE"].calls["products"] == 3
    assert [len(p.items) for p in pages] == [100, 100, 30]
    assert [i.external_id for p in pages for i in p.items] == [str(10 + i) for i in range(230)]
    assert [p.resume for p in pages] == [{"page": 2}, {"page": 3}, None]
    assert pages[2].items[0].data["sku"] == "W200" and pages[2].items[0].data["stockQuantity"] == 200
    assert "description" not in pages[2].items[0].data


def test_woocommerce_orders_resume_from_a_page_number(fresh_emulators):
    fresh_emulators["WOOCOMMERCE"].set_records(
        "orders",
        [
            {
                "id": 500 - i,
                "number": str(500 - i),
                "status": "processing",
                "currency": "EUR",
                "total": "9.99",
                "customer_id": 3,
                "line_items": [{"id": 1}, {"id": 2}],
                "date_created_gmt": "2026-01-01T00:00:00",
                "date_modified_gmt": "2026-01-01T00:00:00",
                "date_paid_gmt": None,
            }
            for i in range(250)
        ],
    )
    store, key = fresh_emulators.woocommerce_store_url, woo_key(fresh_emulators)
    rest, calls = read_woo(fresh_emulators, "fetch_orders", token=key, tenant=store, resume={"page": 2})
    assert calls == 2 and [len(p.items) for p in rest] == [100, 50] and rest[-1].resume is None
    assert rest[0].items[0].external_id == "351" and rest[0].items[0].data["items"] == 2
    empty, calls = read_woo(fresh_emulators, "fetch_products", token=key, tenant=store)
    assert calls == 1 and len(empty) == 1 and empty[0].items == [] and empty[0].resume is None


def test_woocommerce_refused_keys_throttling_and_errors(fresh_emulators):
    store, key = fresh_emulators.woocommerce_store_url, woo_key(fresh_emulators)
    fresh_emulators["WOOCOMMERCE"].set_records("products", _woo_products(5))
    with pytest.raises(TokenExpired) as refused:
        read_woo(fresh_emulators, "fetch_products", token=key.split(":")[0] + ":cs_wrong", tenant=store)
    assert "cs_wrong" not in refused.value.message
    fresh_emulators["WOOCOMMERCE"].rate_limit_next("products", retry_after=12)
    with pytest.raises(RateLimited) as limited:
        read_woo(fresh_emulators, "fetch_products", token=key, tenant=store)
    assert limited.value.retry_after == 12
    fresh_emulators["WOOCOMMERCE"].fail_next(
        "orders",
        404,
        {
            "code": "rest_no_route",
            "message": ("No route was found matching the URL and request method."),
            "data": {"status": 404},
        },
    )
    with pytest.raises(ProviderError) as caught:
        read_woo(fresh_emulators, "fetch_orders", token=key, tenant=store)
    assert "404" in caught.value.message and "rest_no_route" in caught.value.message
    assert key.split(":")[1] not in caught.value.message


def test_a_woocommerce_sync_never_reaches_a_store_on_an_internal_address(fresh_emulators):
    """The store URL is the user's: without the allow-list, a store on loopback gets no request, by IP or by a
    name resolving there, and the error reads the same whether the port is open (the emulator) or closed."""
    emu = fresh_emulators["WOOCOMMERCE"]
    emu.set_records("products", _woo_products(3))
    key, store = woo_key(fresh_emulators), fresh_emulators.woocommerce_store_url
    port = store.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1]
    closed = closed_port()
    messages = []
    for tenant in (
        store,
        store.replace("127.0.0.1", "localhost"),
        f"http://127.0.0.1:{closed}/shop",
        f"http://localhost:{closed}/shop",
    ):
        with pytest.raises(ProviderError) as refused:
            read_woo(fresh_emulators, "fetch_products", token=key, tenant=tenant, env=None)
        messages.append(refused.value.message.replace(port, "PORT").replace(str(closed), "PORT"))
    assert emu.calls["products"] == 0
    assert messages[0] == messages[2] and messages[1] == messages[3], messages  # open or closed: the same
    assert all(m.startswith("WOOCOMMERCE: could not reach") for m in messages), messages
    # The control: allow-listed, the same sync reads the store.
    pages, _ = read_woo(fresh_emulators, "fetch_products", token=key, tenant=store, max_pages=1)
    assert pages[0].items and emu.calls["products"] == 1


def test_retry_after_in_decimal_seconds_as_shopify_rest_sends_it():
    assert retry_after(Reply(429, {"Retry-After": "2.0"}, None)) == 2
    assert retry_after(Reply(429, {"Retry-After": "0.5"}, None)) == 1  # rounded up: never sooner than asked
    assert retry_after(Reply(429, {"Retry-After": "7"}, None)) == 7

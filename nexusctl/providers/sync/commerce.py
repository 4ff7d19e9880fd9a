"""Shopify (fetch_products, fetch_orders, fetch_inventory) and WooCommerce (fetch_products, fetch_orders).

Shopify is GraphQL-only for new public apps: ``POST {shop}/admin/api/{ver}/
graphql.json`` with a connection query ``products(first: $first, after:
$after) { pageInfo { hasNextPage endCursor } nodes { ... } }``; the resume
state is the last ``endCursor``. Errors come as HTTP 200 with ``errors[]``:
``THROTTLED`` is turned into RateLimited by the adapter (the wait computed
from ``extensions.cost.throttleStatus``), anything else (``ACCESS_DENIED`` for
a missing scope ...) is a ProviderError naming the first error. Query cost
bounds the page sizes: a connection costs ``first`` + 2 points and one query
may cost at most 1,000, so nested inventory levels keep the inventory page
small. Orders older than 60 days need the ``read_all_orders`` scope.

WooCommerce is REST with the consumer key/secret as HTTP Basic on the store's
own host (the tenant): ``GET {store}/wp-json/wc/v3/products?per_page=100&
page=N``; ``X-WP-TotalPages`` and ``Link: <...>; rel="next"`` tell whether
another page follows. Lists are read in ascending id order (``orderby=id&
order=asc``): the default newest-first order shifts every page when an item
is added mid-sync, so a stored page number would skip or repeat items.
"""

from __future__ import annotations

from nexusctl.errors import ProviderError
from nexusctl.providers.adapters.commerce import SHOPIFY_API_VERSION
from nexusctl.providers.sync.base import Item, Page, SyncAction

SHOPIFY_GRAPHQL = f"admin/api/{SHOPIFY_API_VERSION}/graphql.json"
WOO_PAGE = 100  # the REST API's maximum per_page

_CONNECTION = """query Sync($first: Int!, $after: String) {
  %s(first: $first, after: $after) {
    pageInfo { hasNextPage endCursor }
    nodes { %s }
  }
}"""

PRODUCT_FIELDS = "id title handle status vendor productType tags totalInventory createdAt updatedAt"
ORDER_FIELDS = (
    "id name createdAt updatedAt cancelledAt displayFinancialStatus displayFulfillmentStatus "
    "currentTotalPriceSet { shopMoney { amount currencyCode } }"
)
INVENTORY_LEVELS = 10
INVENTORY_FIELDS = (
    "id sku tracked createdAt updatedAt inventoryLevels(first: %d) { pageInfo { hasNextPage } "
    'nodes { location { id name } quantities(names: ["available", "on_hand"]) { name quantity } } }' % INVENTORY_LEVELS
)


def _shopify_data(reply, connection: str) -> dict:
    body = reply.body if isinstance(reply.body, dict) else {}
    errors = body.get("errors")
    if errors:
        first = errors[0] if isinstance(errors, list) and errors else errors
        message = first.get("message") if isinstance(first, dict) else str(first)
        code = (first.get("extensions") or {}).get("code") if isinstance(first, dict) else None
        raise ProviderError(
            f"SHOPIFY: the {connection} query failed: {str(message)[:200]}{f' ({code})' if code else ''}",
            provider="SHOPIFY",
        )
    data = (body.get("data") or {}).get(connection)
    if not isinstance(data, dict):
        raise ProviderError(f"SHOPIFY: the {connection} query answered without data", provider="SHOPIFY")
    return data


def _shopify_pages(connection: str, fields: str, first: int, to_item):
    query = _CONNECTION % (connection, fields)

    async def pages(api, resume):
        after = (resume or {}).get("cursor")
        while True:
            reply = await api.post(
                SHOPIFY_GRAPHQL, json_body={"query": query, "variables": {"first": first, "after": after}}
            )
            data = _shopify_data(reply, connection)
            items = [to_item(n) for n in data.get("nodes") or [] if isinstance(n, dict) and n.get("id")]
            info = data.get("pageInfo") or {}
            after = info.get("endCursor") if info.get("hasNextPage") else None
            yield Page(items, {"cursor": after} if after else None)
            if not after:
                return

    return pages


def _money(value) -> dict | None:
    shop = (value or {}).get("shopMoney") if isinstance(value, dict) else None
    return {"amount": shop.get("amount"), "currency": shop.get("currencyCode")} if isinstance(shop, dict) else None


def _product(n: dict) -> Item:
    return Item(
        str(n["id"]),
        {
            "id": n["id"],
            "title": n.get("title"),
            "handle": n.get("handle"),
            "status": n.get("status"),
            "vendor": n.get("vendor"),
            "productType": n.get("productType"),
            "tags": n.get("tags") or [],
            "totalInventory": n.get("totalInventory"),
            "createdAt": n.get("createdAt"),
            "updatedAt": n.get("updatedAt"),
        },
    )


def _order(n: dict) -> Item:
    return Item(
        str(n["id"]),
        {
            "id": n["id"],
            "name": n.get("name"),
            "createdAt": n.get("createdAt"),
            "updatedAt": n.get("updatedAt"),
            "cancelledAt": n.get("cancelledAt"),
            "financialStatus": n.get("displayFinancialStatus"),
            "fulfillmentStatus": n.get("displayFulfillmentStatus"),
            "total": _money(n.get("currentTotalPriceSet")),
        },
    )


def _inventory_item(n: dict) -> Item:
    levels_conn = n.get("inventoryLevels") or {}
    levels = []
    for level in levels_conn.get("nodes") or []:
        if not isinstance(level, dict):
            continue
        location = level.get("location") or {}
        quantities = {q.get("name"): q.get("quantity") for q in level.get("quantities") or [] if isinstance(q, dict)}
        levels.append(
            {
                "locationId": location.get("id"),
                "location": location.get("name"),
                "available": quantities.get("available"),
                "onHand": quantities.get("on_hand"),
            }
        )
    data = {
        "id": n["id"],
        "sku": n.get("sku"),
        "tracked": n.get("tracked"),
        "createdAt": n.get("createdAt"),
        "updatedAt": n.get("updatedAt"),
        "levels": levels,
    }
    if (levels_conn.get("pageInfo") or {}).get("hasNextPage"):
        data["levelsTruncated"] = True  # more than INVENTORY_LEVELS locations: only the first ones are here
    return Item(str(n["id"]), data)


def _header(reply, name: str) -> str | None:
    lower = name.lower()
    return next((v for k, v in reply.headers.items() if k.lower() == lower), None)


def _has_next(reply, page: int) -> bool:
    link = _header(reply, "Link") or ""
    if any('rel="next"' in part or "rel=next" in part for part in link.split(",")):
        return True
    total = _header(reply, "X-WP-TotalPages")
    return bool(total and total.strip().isascii() and total.strip().isdigit() and page < int(total))


def _woo_pages(kind: str, to_item):
    async def pages(api, resume):
        store = (api.tenant or "").rstrip("/")
        if not store:
            raise ProviderError("WOOCOMMERCE: the integration has no store URL", provider="WOOCOMMERCE")
        page = int((resume or {}).get("page") or 1)
        while True:
            reply = await api.get(
                f"{store}/wp-json/wc/v3/{kind}",
                params={"per_page": WOO_PAGE, "page": page, "orderby": "id", "order": "asc"},
            )
            if not isinstance(reply.body, list):
                raise ProviderError(f"WOOCOMMERCE: {kind} answered something other than a list", provider="WOOCOMMERCE")
            items = [to_item(r) for r in reply.body if isinstance(r, dict) and r.get("id") is not None]
            more = bool(reply.body) and _has_next(reply, page)
            yield Page(items, {"page": page + 1} if more else None)
            if not more:
                return
            page += 1

    return pages


def _woo_product(r: dict) -> Item:
    return Item(
        str(r["id"]),
        {
            "id": r["id"],
            "name": r.get("name"),
            "slug": r.get("slug"),
            "sku": r.get("sku"),
            "type": r.get("type"),
            "status": r.get("status"),
            "price": r.get("price"),
            "regularPrice": r.get("regular_price"),
            "salePrice": r.get("sale_price"),
            "stockStatus": r.get("stock_status"),
            "stockQuantity": r.get("stock_quantity"),
            "createdAt": r.get("date_created_gmt"),
            "updatedAt": r.get("date_modified_gmt"),
        },
    )


def _woo_order(r: dict) -> Item:
    return Item(
        str(r["id"]),
        {
            "id": r["id"],
            "number": r.get("number"),
            "status": r.get("status"),
            "currency": r.get("currency"),
            "total": r.get("total"),
            "customerId": r.get("customer_id"),
            "items": len(r.get("line_items") or []),
            "createdAt": r.get("date_created_gmt"),
            "updatedAt": r.get("date_modified_gmt"),
            "paidAt": r.get("date_paid_gmt"),
        },
    )


ACTIONS = {
    "SHOPIFY": [
        SyncAction(
            "fetch_products",
            "product",
            _shopify_pages("products", PRODUCT_FIELDS, 250, _product),
            description="Products (GraphQL products connection)",
        ),
        SyncAction(
            "fetch_orders",
            "order",
            _shopify_pages("orders", ORDER_FIELDS, 100, _order),
            description="Orders (GraphQL orders connection; older than 60 days needs read_all_orders)",
        ),
        SyncAction(
            "fetch_inventory",
            "inventory_item",
            _shopify_pages("inventoryItems", INVENTORY_FIELDS, 20, _inventory_item),
            description=f"Inventory items with their levels at up to {INVENTORY_LEVELS} locations",
        ),
    ],
    "WOOCOMMERCE": [
        SyncAction(
            "fetch_products",
            "product",
            _woo_pages("products", _woo_product),
            description="Products (wc/v3/products, by id)",
        ),
        SyncAction(
            "fetch_orders", "order", _woo_pages("orders", _woo_order), description="Orders (wc/v3/orders, by id)"
        ),
    ],
}

"""Stripe (fetch_charges) and PayPal (fetch_transactions).

Stripe: ``GET /v1/charges?limit=100&starting_after={last id}`` with the
connected account's token; the list is newest first and ``has_more`` says
whether another page follows, so the resume state is the last id read. A
charge changes after it is listed (refunds, disputes, captures): an
incremental run that stops at the first page with nothing new sees those
changes only on recent charges.

PayPal: Transaction Search, ``GET /v1/reporting/transactions?start_date=
&end_date=&page_size=500&page=N&fields=transaction_info`` (``total_pages``).
One call may span at most 31 days, so a run walks 30-day windows (a day under
the limit) from ``PAYPAL_LOOKBACK_DAYS`` ago up to the run's start, oldest
first, each window page by page; windows are inclusive of both ends, so the
next starts one second after the previous ends. The resume state is the
window, the page and the run's end: a resumed run finishes the same range.
PayPal lists at most three years back, shows a transaction up to three hours
after it happens (the next run's window covers it) and needs Transaction
Search enabled on the app (403 NOT_AUTHORIZED otherwise; reading another
merchant's transactions needs PayPal partner status). A transaction id is not
unique in the reporting system (a balance-affecting and a non-affecting
entry may share it), so an item's id is ``{transaction_id}:{event code}``.
"""

from __future__ import annotations

import datetime as dt

from nexusctl import clock
from nexusctl.errors import ProviderError
from nexusctl.providers.sync.base import Item, Page, SyncAction

STRIPE_PAGE = 100  # Stripe's maximum limit
PAYPAL_PAGE = 500  # Transaction Search's maximum page_size
PAYPAL_WINDOW = dt.timedelta(days=30)
PAYPAL_LOOKBACK_DAYS = 90
_PAYPAL_TIME = "%Y-%m-%dT%H:%M:%SZ"


async def stripe_charges(api, resume):
    after = (resume or {}).get("startingAfter")
    while True:
        reply = await api.get("v1/charges", params={"limit": STRIPE_PAGE, "starting_after": after})
        body = reply.body if isinstance(reply.body, dict) else {}
        if not isinstance(body.get("data"), list):
            raise ProviderError("STRIPE: /v1/charges answered without data", provider="STRIPE")
        items = [_charge(c) for c in body["data"] if isinstance(c, dict) and c.get("id")]
        more = bool(body.get("has_more")) and bool(items)
        after = items[-1].external_id if items else after
        yield Page(items, {"startingAfter": after} if more else None)
        if not more:
            return


def _charge(c: dict) -> Item:
    outcome = c.get("outcome") or {}
    return Item(
        str(c["id"]),
        {
            "id": c["id"],
            "amount": c.get("amount"),
            "currency": c.get("currency"),
            "status": c.get("status"),
            "paid": c.get("paid"),
            "captured": c.get("captured"),
            "refunded": c.get("refunded"),
            "amountRefunded": c.get("amount_refunded"),
            "disputed": c.get("disputed"),
            "created": c.get("created"),
            "customer": c.get("customer"),
            "paymentIntent": c.get("payment_intent"),
            "description": c.get("description"),
            "failureCode": c.get("failure_code"),
            "outcome": outcome.get("type"),
            "livemode": c.get("livemode"),
        },
    )


def _time(value: str) -> dt.datetime:
    return dt.datetime.strptime(value, _PAYPAL_TIME).replace(tzinfo=dt.timezone.utc)


def _text(value: dt.datetime) -> str:
    return value.astimezone(dt.timezone.utc).strftime(_PAYPAL_TIME)


async def paypal_transactions(api, resume):
    if resume and resume.get("from") and resume.get("until"):
        start, until, page = _time(resume["from"]), _time(resume["until"]), int(resume.get("page") or 1)
    else:
        until = clock.now().replace(microsecond=0)
        start, page = until - dt.timedelta(days=PAYPAL_LOOKBACK_DAYS), 1
    while True:
        end = min(start + PAYPAL_WINDOW, until)
        reply = await api.get(
            "v1/reporting/transactions",
            params={
                "start_date": _text(start),
                "end_date": _text(end),
                "fields": "transaction_info",
                "page_size": PAYPAL_PAGE,
                "page": page,
            },
        )
        body = reply.body if isinstance(reply.body, dict) else {}
        rows = body.get("transaction_details")
        if not isinstance(rows, list):
            raise ProviderError(
                "PAYPAL: /v1/reporting/transactions answered without transaction_details", provider="PAYPAL"
            )
        items = [
            _transaction(r["transaction_info"])
            for r in rows
            if isinstance(r, dict)
            and isinstance(r.get("transaction_info"), dict)
            and r["transaction_info"].get("transaction_id")
        ]
        total_pages = body.get("total_pages") if isinstance(body.get("total_pages"), int) else 0
        if rows and page < total_pages:
            following = {"from": _text(start), "until": _text(until), "page": page + 1}
        elif end < until:
            following = {"from": _text(end + dt.timedelta(seconds=1)), "until": _text(until), "page": 1}
        else:
            following = None
        yield Page(items, following, meta={"window": [_text(start), _text(end)], "page": page})
        if following is None:
            return
        start, page = _time(following["from"]), following["page"]


def _money(value) -> dict | None:
    return {"amount": value.get("value"), "currency": value.get("currency_code")} if isinstance(value, dict) else None


def _transaction(t: dict) -> Item:
    code = t.get("transaction_event_code") or ""
    return Item(
        f"{t['transaction_id']}:{code}" if code else str(t["transaction_id"]),
        {
            "id": t["transaction_id"],
            "eventCode": code or None,
            "status": t.get("transaction_status"),
            "amount": _money(t.get("transaction_amount")),
            "fee": _money(t.get("fee_amount")),
            "initiatedAt": t.get("transaction_initiation_date"),
            "updatedAt": t.get("transaction_updated_date"),
            "invoiceId": t.get("invoice_id"),
            "referenceId": t.get("paypal_reference_id"),
        },
    )


ACTIONS = {
    "STRIPE": [
        SyncAction(
            "fetch_charges",
            "charge",
            stripe_charges,
            newest_first=True,
            description="Charges (v1/charges, newest first)",
        )
    ],
    "PAYPAL": [
        SyncAction(
            "fetch_transactions",
            "transaction",
            paypal_transactions,
            description=f"Transactions of the last {PAYPAL_LOOKBACK_DAYS} days (Transaction Search, 30-day windows)",
        )
    ],
}
